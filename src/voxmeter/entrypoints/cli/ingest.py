"""`voxmeter ingest`: load NDJSON or CSV files with the same rules as the HTTP ingest."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from voxmeter.domain.events import MAX_BATCH, validate_batch
from voxmeter.domain.months import calendar
from voxmeter.entrypoints.cli.common import db_option, friendly, open_context
from voxmeter.errors import BadParameters
from voxmeter.service import codec, tenancy
from voxmeter.service.context import Context
from voxmeter.service.ingest import ingest_batch


def _chunks(path: Path) -> Iterator[tuple[Callable[[int], int], list[codec.EventIn]]]:
    """(index -> line number, decoded events) for each batch of a file."""
    if path.suffix.lower() == ".csv":
        rows = codec.csv_rows(path.read_text("utf-8"))
        for start in range(0, len(rows), MAX_BATCH):
            with _by_line(start + 2):
                yield (start + 2).__add__, codec.decode_csv_rows(rows[start : start + MAX_BATCH])
        return
    with path.open("rb") as handle:
        lines: list[bytes] = []
        numbers: list[int] = []
        for number, line in enumerate(handle, 1):
            if line.strip():
                lines.append(line)
                numbers.append(number)
            if len(lines) == MAX_BATCH:
                with _by_line(numbers):
                    yield numbers.__getitem__, codec.decode_ndjson(b"".join(lines))
                lines, numbers = [], []
        if lines:
            with _by_line(numbers):
                yield numbers.__getitem__, codec.decode_ndjson(b"".join(lines))


@contextmanager
def _by_line(lines: int | list[int]) -> Iterator[None]:
    """Re-label decoding problems with file line numbers."""
    try:
        yield
    except BadParameters as exc:
        labelled = []
        for problem in exc.data:
            assert isinstance(problem, dict)
            index = int(problem["index"])
            line = lines + index if isinstance(lines, int) else lines[index]
            labelled.append(f"line {line}: {problem['field']}: {problem['error']}")
        raise BadParameters("invalid events, nothing was stored", labelled) from exc


def _validate_file(ctx: Context, path: Path, tz: str) -> int:
    total = 0
    for line_of, events in _chunks(path):
        _, problems = validate_batch(events, ctx.catalog, calendar(tz), ctx.clock())  # type: ignore[arg-type]
        if problems:
            raise BadParameters(
                f"{path}: invalid events, nothing was stored",
                [f"line {line_of(p.index)}: {p.field}: {p.error}" for p in problems],
            )
        total += len(events)
    return total


@click.command()
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--operation", "operation_name", required=True)
@click.option("--server", default=None)
@db_option
@friendly
def ingest(files: tuple[Path, ...], operation_name: str, server: str | None, db: str) -> None:
    """Ingest NDJSON (one event per line) or CSV (header: id,product,time,quantity,subject).

    Every file is checked in full first: a file with any invalid event stores nothing.
    Re-running after an interruption is safe: event ids deduplicate.
    """
    ctx = open_context(db)
    op = tenancy.find_operation(ctx, operation_name, server)
    totals = {path: _validate_file(ctx, path, op.timezone) for path in files}
    accepted = duplicates = 0
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,}"),
        TimeRemainingColumn(),
        transient=False,
    ) as progress:
        for path in files:
            task = progress.add_task(path.name, total=totals[path])
            for _, events in _chunks(path):
                result = ingest_batch(ctx, op, events)  # type: ignore[arg-type]
                accepted += result.accepted
                duplicates += result.duplicates
                progress.advance(task, len(events))
    click.echo(f"{accepted} events accepted, {duplicates} duplicates")
