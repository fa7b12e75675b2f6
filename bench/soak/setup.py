"""The run's set-up: the code version, the operation timezone, the tenants."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.soak.ledger import BIG_LICENSES, SERVER, SMALL_LICENSES
from voxmeter import bootstrap
from voxmeter.config import Settings
from voxmeter.service import tenancy

# --- set-up and report ---------------------------------------------------------------------------


def code_version() -> str:
    """The commit the server ran, and any uncommitted change under src/ (it runs from the tree)."""
    repo = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    files = sorted(line[3:] for line in changed if line.strip())
    return f"commit {head}" + (f" + uncommitted changes to {', '.join(files)}" if files else "")


def zone_near_noon() -> ZoneInfo:
    """A fixed-offset zone where it is about noon, so the run never crosses a local midnight
    (the quota day) or a month boundary."""
    offset = 12 - datetime.now(UTC).hour
    name = "Etc/GMT" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"
    return ZoneInfo(name)


def make_tenants(db: str, zone: ZoneInfo) -> tuple[dict[str, str], str]:
    """The soak operation with one token per kind of traffic, and the small-quota operation."""
    ctx = bootstrap.context(Settings(database_url=db))
    big = tenancy.create_operation(ctx, "soak", SERVER, zone.key, BIG_LICENSES)
    small = tenancy.create_operation(ctx, "soak-quota", SERVER, zone.key, SMALL_LICENSES)
    names = ("ingest", "billing", "info", "listing", "void", "bad", "probe")
    tokens = {name: tenancy.create_token(ctx, big, f"soak {name}", [])[1] for name in names}
    tokens["readonly"] = tenancy.create_token(ctx, big, "soak read-only", ["billing:read"])[1]
    quota_token = tenancy.create_token(ctx, small, "soak quota", [])[1]
    ctx.storage.close()
    return tokens, quota_token
