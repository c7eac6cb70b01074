"""`application` for WSGI servers other than the built-in waitress (gunicorn, mod_wsgi).

Configured from the file named by ISPYB_FALCON_CONFIG and the environment.
"""

from __future__ import annotations

from .app import create_app, settle
from .cli import configure_logging
from .config import load_settings

_settings = load_settings()
configure_logging(_settings)
application = create_app(_settings)
settle()
