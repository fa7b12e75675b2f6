"""`voxmeter serve` and `voxmeter demo`."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import click
import uvicorn
from uvicorn.supervisors import Multiprocess

from voxmeter import bootstrap
from voxmeter.config import Settings
from voxmeter.entrypoints.cli.common import db_option, friendly, os_actor, settings_for
from voxmeter.entrypoints.cli.demo_data import load_demo
from voxmeter.entrypoints.cli.worker_metrics import worker_metrics
from voxmeter.entrypoints.http import memory
from voxmeter.entrypoints.http.app import create_app
from voxmeter.entrypoints.http.protocol import ServerConfig
from voxmeter.errors import ConfigError


def run_server(settings: Settings, banner: str | None = None) -> None:
    """Serve until SIGINT/SIGTERM; in-flight requests finish first."""
    if settings.workers < 1:
        raise ConfigError("--workers must be 1 or more")
    if settings.workers > 1:
        _run_workers(settings, banner)
        return
    memory.tune_malloc()
    sys.setswitchinterval(settings.switch_interval)
    ctx = bootstrap.context(settings)
    app = create_app(bootstrap.app_state(settings, ctx))
    _configure_logging()
    server = uvicorn.Server(_uvicorn_config(app, settings))
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


def _run_workers(settings: Settings, banner: str | None) -> None:
    """Several worker processes on one socket; uvicorn's supervisor restarts a worker that dies
    and, on SIGTERM, lets every worker finish its in-flight requests. Their metrics are summed
    through a directory of their own (worker_metrics)."""
    if not settings.redis_url:
        raise ConfigError(
            "several workers share their limits through Redis: give --redis redis://host:6379 "
            "(or VOXMETER_REDIS_URL), or use --workers 1"
        )
    # Check the database and its schema once, before any worker starts, for a clear message.
    bootstrap.open_storage(settings.database_url, cache_mib=settings.sqlite_cache_mib).close()
    os.environ.update(settings.to_env())
    _configure_logging()
    if banner:
        click.echo(banner)
    config = _uvicorn_config(
        "voxmeter.entrypoints.http.worker:create", settings, factory=True, workers=settings.workers
    )
    try:
        socket = config.bind_socket()
    except SystemExit as exc:
        raise ConfigError(f"could not listen on {settings.host}:{settings.port}") from exc
    # The workers are spawned (fresh interpreters), so they see the metrics directory set here.
    with worker_metrics(), contextlib.suppress(KeyboardInterrupt):
        Multiprocess(config, sockets=[socket]).run()


def _uvicorn_config(app: object, settings: Settings, **extra: object) -> uvicorn.Config:
    return ServerConfig(
        app,
        request_timeout=settings.request_timeout,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        access_log=False,
        log_level="info",
        timeout_graceful_shutdown=30,
        server_header=False,
        **extra,
    )


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")


def _stop_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


@click.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--redis",
    "redis_url",
    default=None,
    help="Redis URL for limits shared by every process (VOXMETER_REDIS_URL; default: none, "
    "limits kept in this process); needed for --workers > 1.",
)
@click.option(
    "--workers",
    default=None,
    type=int,
    help="Worker processes (VOXMETER_WORKERS, default 1); more than one needs --redis.",
)
@click.option(
    "--grace-days",
    default=None,
    type=int,
    help="Days after a month ends before it closes (VOXMETER_GRACE_DAYS, default 3).",
)
@click.option(
    "--max-body-bytes",
    default=None,
    type=int,
    help="Largest accepted request body, in bytes (VOXMETER_MAX_BODY_BYTES, default 16 MiB).",
)
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
    redis_url: str | None,
    workers: int | None,
    grace_days: int | None,
    max_body_bytes: int | None,
    request_timeout: float | None,
) -> None:
    """Serve the API."""
    settings = replace(settings_for(db), host=host, port=port)
    if redis_url is not None:
        settings = replace(settings, redis_url=redis_url)
    if workers is not None:
        settings = replace(settings, workers=workers)
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
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--db", default=None, help="Database URL (default: a fresh temporary database).")
@friendly
def demo(port: int, host: str, db: str | None) -> None:
    """Serve a demo operation with a month of synthetic usage; prints a ready curl line."""
    if db is None:
        folder = Path(tempfile.mkdtemp(prefix="voxmeter-demo-"))
        db = f"sqlite:///{folder / 'demo.db'}"
    settings = replace(settings_for(db), host=host, port=port)
    ctx = bootstrap.context(settings)
    secret, count = load_demo(replace(ctx, actor=os_actor()))
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
