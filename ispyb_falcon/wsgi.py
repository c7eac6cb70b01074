"""`application` for WSGI servers other than the built-in waitress (gunicorn, mod_wsgi).

Configured from the file named by ISPYB_FALCON_CONFIG and the environment.
"""

from __future__ import annotations

import logging

from .app import create_app
from .config import load_settings

_settings = load_settings()
logging.basicConfig(level=_settings[("server", "log_level")])
application = create_app(_settings)
