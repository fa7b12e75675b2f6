"""The app of one worker process when `voxmeter serve --workers N` runs several.

uvicorn starts each worker in a fresh interpreter and builds its app from an import string, so
the settings travel through the environment (`Settings.to_env`)."""

from __future__ import annotations

import sys

from voxmeter import bootstrap
from voxmeter.config import Settings
from voxmeter.entrypoints.http import memory
from voxmeter.entrypoints.http.app import create_app
from voxmeter.entrypoints.http.types import ASGIApp


def create() -> ASGIApp:
    """uvicorn factory: one worker's app over the shared database and Redis."""
    settings = Settings.from_env()
    memory.tune_malloc()
    sys.setswitchinterval(settings.switch_interval)
    return create_app(bootstrap.app_state(settings, bootstrap.context(settings)))
