"""What a web page asks for that is no single table (API.md section 8): a visit's
timeline, processing at a glance.

Each module here declares one `View`; `VIEWS` lists them. A view is served when
its module is enabled and every table it reads is served by this site's database
(`needs`); the app adds its route and the OpenAPI document its description.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class View:
    path: str  # below the prefix, e.g. "/events"
    module: str  # the module (and OpenAPI tag) it belongs to: "experiments", "processing"
    needs: tuple[str, ...]  # tables it reads; served only if the site serves them all
    resource: Callable[[Any], object]  # Backend -> the Falcon resource
    describe: Callable[[int], dict]  # max_limit -> {"get": operation} for the OpenAPI document
    # The components the description names by $ref (#/components/schemas/NAME): NAME -> schema.
    schemas: Callable[[], dict] = field(default=dict)


from . import events, processing  # noqa: E402 - each view module declares its View with the class above

VIEWS: tuple[View, ...] = (events.EVENTS, processing.VIEW)
