"""Admin screens of the reviews app (importing the modules registers them)."""

from . import inbox, operations  # noqa: F401
