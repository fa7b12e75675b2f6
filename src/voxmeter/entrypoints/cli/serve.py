"""`voxmeter serve` and `voxmeter demo`."""

from __future__ import annotations

import logging
import signal
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import click
import uvicorn

from voxmeter import bootstrap
from voxmeter.config import Settings
from voxmeter.entrypoints.cli.common import db_option, friendly, settings_for
from voxmeter.entrypoints.cli.demo_data import load_demo
from voxmeter.entrypoints.http import memory
from voxmeter.entrypoints.http.app import create_app
from voxmeter.errors import ConfigError


def run_server(settings: Settings, banner: str | None = None) -> None:
    """Serve until SIGINT/SIGTERM; in-flight requests finish first."""
    if settings.workers != 1:
        raise ConfigError(
            "the embedded mode runs one process (its limits live in that process); use --workers 1"
        )
    memory.tune_malloc()
    sys.setswitchinterval(settings.switch_interval)
    ctx = bootstrap.context(settings)
    app = create_app(bootstrap.app_state(settings, ctx))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="info",
        timeout_graceful_shutdown=30,
        server_header=False,
    )
    server = uvicorn.Server(config)
    if banner:
        click.echo(banner)
    # uvicorn shuts down gracefully, then re-raises the signal that stopped it: a requested stop
    # is a clean exit (status 0) for supervisors, not a failure.
    previous = signal.signal(signal.SIGTERM, _stop_cleanly)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not server.started:
        raise ConfigError(f"could not listen on {settings.host}:{settings.port}")


def _stop_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


@click.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
@click.option(
    "--grace-days",
    default=None,
    type=int,
    help="Days after a month ends before it closes (VOXMETER_GRACE_DAYS, default 3).",
)
@click.option("--max-body-bytes", default=None, type=int, help="Largest accepted request body.")
@click.option(
    "--request-timeout",
    default=None,
    type=float,
    help="Seconds before a request is answered 504 (VOXMETER_REQUEST_TIMEOUT, default 60).",
)
@friendly
def serve(
    db: str,
    host: str,
    port: int,
    workers: int,
    grace_days: int | None,
    max_body_bytes: int | None,
    request_timeout: float | None,
) -> None:
    """Serve the API."""
    settings = replace(settings_for(db), host=host, port=port, workers=workers)
    if grace_days is not None:
        if grace_days < 0:
            raise ConfigError("--grace-days must be 0 or more")
        settings = replace(settings, grace_days=grace_days)
    if max_body_bytes is not None:
        settings = replace(settings, max_body_bytes=max_body_bytes)
    if request_timeout is not None:
        if request_timeout <= 0:
            raise ConfigError("--request-timeout must be positive")
        settings = replace(settings, request_timeout=request_timeout)
    run_server(settings)


@click.command()
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--db", default=None, help="Database URL (default: a fresh temporary database).")
@friendly
def demo(port: int, host: str, db: str | None) -> None:
    """Serve a demo operation with a month of synthetic usage; prints a ready curl line."""
    if db is None:
        folder = Path(tempfile.mkdtemp(prefix="voxmeter-demo-"))
        db = f"sqlite:///{folder / 'demo.db'}"
    settings = replace(settings_for(db), host=host, port=port)
    ctx = bootstrap.context(settings)
    secret, count = load_demo(ctx)
    url = f"http://{host}:{port}/api/v2/billing.php"
    banner = "\n".join(
        [
            f"voxmeter demo: operation 'demo' on server 9901, {count} synthetic events "
            f"this month, database {db}",
            "Try:",
            f"  curl -s -H 'wolkvox_server: 9901' -H 'wolkvox-token: {secret}' "
            f"'{url}?api=ivr_minutes'",
            f"  curl -s -H 'wolkvox-token: {secret}' '{url}?api=all'",
            "Press Ctrl+C to stop.",
        ]
    )
    run_server(settings, banner)
