"""`voxmeter ingest`: load NDJSON or CSV files with the same rules as the HTTP ingest."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import click
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from voxmeter.domain.events import MAX_BATCH, IncomingEvent, Problem
from voxmeter.domain.tenancy import Operation
from voxmeter.entrypoints.cli.common import counted, db_option, friendly, open_context
from voxmeter.entrypoints.wire import codec
from voxmeter.errors import BadParameters
from voxmeter.service import tenancy
from voxmeter.service.context import Context
from voxmeter.service.ingest import InvalidBatch, all_problems, check_batch, ingest_batch
from voxmeter.service.ports import Storage


@dataclass(frozen=True, slots=True)
class Chunk:
    """Up to one batch of a file: its events, or the problems found decoding them."""

    lines: list[int]
    events: list[IncomingEvent]
    failed: InvalidBatch | None


def _decoded(lines: list[int], decode: Callable[[], list[codec.EventIn]]) -> Chunk:
    try:
        return Chunk(lines, list(decode()), None)
    except InvalidBatch as exc:
        return Chunk(lines, [], exc)


def _chunks(path: Path) -> Iterator[Chunk]:
    """The file in batches of at most 10,000 events, each with the file line of every event."""
    if path.suffix.lower() == ".csv":
        rows = codec.csv_rows(path.read_text("utf-8"))
        for start in range(0, len(rows), MAX_BATCH):
            part = rows[start : start + MAX_BATCH]
            header_offset = start + 2  # line 1 is the header
            rows_lines = list(range(header_offset, header_offset + len(part)))
            yield _decoded(rows_lines, partial(codec.decode_csv_rows, part))
        return
    with path.open("rb") as handle:
        lines: list[bytes] = []
        numbers: list[int] = []
        for number, line in enumerate(handle, 1):
            if line.strip():
                lines.append(line)
                numbers.append(number)
            if len(lines) == MAX_BATCH:
                yield _decoded(numbers, partial(codec.decode_ndjson, b"".join(lines)))
                lines, numbers = [], []
        if lines:
            yield _decoded(numbers, partial(codec.decode_ndjson, b"".join(lines)))


def _problems(ctx: Context[Storage], op: Operation, chunk: Chunk) -> list[Problem]:
    if chunk.failed is not None:
        return all_problems(ctx, op, chunk.failed)
    return check_batch(ctx, op, chunk.events)


def _check_file(ctx: Context[Storage], op: Operation, path: Path) -> int:
    """Every event of the file, checked before anything is stored; returns the event count."""
    total = 0
    report: list[str] = []
    for chunk in _chunks(path):
        for problem in _problems(ctx, op, chunk):
            report.append(f"line {chunk.lines[problem.index]}: {problem.field}: {problem.error}")
        total += len(chunk.lines)
    if report:
        raise BadParameters(f"{path}: invalid events, nothing was stored", report)
    return total


@click.command()
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--operation", "operation_name", required=True, help="The operation's name.")
@click.option(
    "--server",
    default=None,
    help="The operation's server (4 digits), when its name is used on several servers.",
)
@db_option
@friendly
def ingest(files: tuple[Path, ...], operation_name: str, server: str | None, db: str) -> None:
    """Ingest NDJSON (one event per line) or CSV (header: id,product,time,quantity,subject).

    Every file is checked in full first: a file with any invalid event stores nothing.
    Re-running after an interruption is safe: event ids deduplicate.
    """
    ctx = open_context(db)
    op = tenancy.find_operation(ctx, operation_name, server)
    totals = {path: _check_file(ctx, op, path) for path in files}
    accepted = duplicates = 0
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,}"),
        TimeRemainingColumn(),
    ) as progress:
        for path in files:
            task = progress.add_task(path.name, total=totals[path])
            for chunk in _chunks(path):
                result = ingest_batch(ctx, op, chunk.events)
                accepted += result.accepted
                duplicates += result.duplicates
                progress.advance(task, len(chunk.events))
    click.echo(f"{counted(accepted, 'event')} accepted, {counted(duplicates, 'duplicate')}")
