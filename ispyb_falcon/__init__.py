"""ispyb-falcon: the shared REST backend for ISPyB databases."""

__version__ = "0.1.0"
