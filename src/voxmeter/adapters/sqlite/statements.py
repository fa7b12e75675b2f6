"""The SQL of the event tables: multi-row inserts in chunks, and where stored ids are found."""

from __future__ import annotations

import sqlite3
from functools import lru_cache
from hashlib import blake2b

import msgspec

_encode = msgspec.json.Encoder().encode
# Events are inserted as multi-row VALUES with bound parameters, in chunks: SQLite does the
# per-row work in C, and binding is cheaper than JSON (json_each re-parses each element for
# every column it extracts). Rows keep the batch's order, so the i-th event gets the first
# seq + i. Ids are unique per operation through the id tables below, not an index here.
# Statements of 4,096 events, and the rest in power-of-two sizes (10,000 = 2 x 4,096 + 1,024 +
# 512 + 256 + 16): a prepared statement of thousands of rows holds a megabyte or more, and
# the connection caches every statement it ran, so only 13 distinct sizes may ever exist, in
# two shapes: a chunk without subjects writes NULL in the statement instead of binding None
# per event (the driver looks None up as a type to adapt, a few thousand instructions each).
_CHUNK = 4096  # 5 parameters per event, far below SQLite's 32,766
_ROW = "(?1,?2,?,?,?,?,?)"  # each bare ? takes the next number after ?2
_ROW_WITHOUT_SUBJECT = "(?1,?2,?,?,?,?,NULL)"
_INSERT_ROWS = (
    "INSERT INTO events (operation_id, received, id, product_id, time, quantity, subject) VALUES "
)
# Where stored ids are found (schema v2). Ids that sort after every id the operation stored
# before (time-ordered ids) are appended to `event_ids`, keyed by the id itself. Any other id
# gets a 64-bit key (_id_key) in the levels `event_keys_0` (small: a random batch dirties
# only its few pages), `event_keys_1` and `event_keys_2` (the rest). A level over its size is
# merged into the next in key order, so the big level gets runs of neighbouring keys per
# page instead of a random page per event. Every id is in exactly one table.
_LEVELS = (0, 1, 2)
_LEVEL_SIZES = {0: 50_000, 1: 1_000_000}  # the most keys a level holds before it is merged


def _in_every_level(select: str) -> str:
    """`select` (with `{level}` for the table suffix) over every level, as one UNION ALL."""
    return " UNION ALL ".join(select.format(level=level) for level in _LEVELS)


# Lookups that may match thousands of rows answer in one row (a JSON array): stepping row by
# row would hand the GIL back and forth once per row while other requests run Python.
_ORDERED_KNOWN = (
    "SELECT json_group_array(id) FROM event_ids"
    " WHERE operation_id = ?1 AND id IN (SELECT value FROM json_each(?2))"
)
_SEQS_OF_KEYS = (
    "SELECT json_group_array(seq) FROM ("  # noqa: S608
    + _in_every_level(
        "SELECT seq FROM event_keys_{level} WHERE key IN (SELECT value FROM json_each(?1))"
    )
    + ")"
)
# The operation's highest stored id and the highest seq of all, in one statement.
_HIGHEST_ID_AND_SEQ = (
    "SELECT (SELECT id FROM event_id_highest WHERE operation_id = ?),"
    " (SELECT coalesce(max(seq), 0) FROM events)"
)
_METERS_OF_KEYS = (
    "SELECT json_group_array(json_array(product_id, month, total, last_time, last_value))"
    " FROM meters WHERE operation_id = ?1"
    " AND (product_id, month) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?2))"
)
_SAVE_METERS = (
    "INSERT OR REPLACE INTO meters"
    " (operation_id, product_id, month, total, last_time, last_value)"
    " SELECT ?1, value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4 FROM json_each(?2)"
)
# `+operation_id`: look events up by seq, not through events_by_time.
_IDS_OF_SEQS = (
    "SELECT json_group_array(id) FROM events"
    " WHERE seq IN (SELECT value FROM json_each(?2)) AND +operation_id = ?1"
)
_EVENT_BY_ID = (
    "SELECT seq, id, product_id, time, quantity, subject, received, voided FROM events"  # noqa: S608
    " WHERE +operation_id = ?1 AND id = ?2 AND seq IN ("
    "SELECT seq FROM event_ids WHERE operation_id = ?1 AND id = ?2 UNION ALL "
    + _in_every_level("SELECT seq FROM event_keys_{level} WHERE key = ?3")
    + ")"
)


@lru_cache(maxsize=16)
def _rows_sql(rows: int, subjects: bool = True) -> str:
    """The INSERT of `rows` events (a power of two), binding their subjects or all NULL."""
    return _INSERT_ROWS + ",".join([_ROW if subjects else _ROW_WITHOUT_SUBJECT] * rows)


def _chunk_sizes(count: int) -> list[int]:
    """`count` as full chunks and then powers of two, largest first."""
    sizes = [_CHUNK] * (count // _CHUNK)
    rest = count % _CHUNK
    sizes += [1 << bit for bit in range(rest.bit_length() - 1, -1, -1) if rest >> bit & 1]
    return sizes


def _id_key(operation_id: int, event_id: str) -> int:
    """A 64-bit key for (operation, id): small, fixed-size and evenly spread. Two ids may share
    one, so a key match is always confirmed against the event's stored id."""
    data = b"%d:%s" % (operation_id, event_id.encode("utf-8", "surrogatepass"))
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "little", signed=True)


_texts = msgspec.json.Decoder(list[str]).decode
_meter_rows = msgspec.json.Decoder(list[tuple[int, int, str, int | None, int]]).decode


def _one(conn: sqlite3.Connection, sql: str, args: tuple[object, ...]) -> str:
    """The single text value a `json_group_array` query answers."""
    return str(conn.execute(sql, args).fetchone()[0])


def _count_level(conn: sqlite3.Connection, level: int, added: int) -> int:
    """Add to a level's id count; return the new count."""
    row = conn.execute(
        "UPDATE event_key_levels SET keys = keys + ? WHERE level = ? RETURNING keys",
        (added, level),
    ).fetchone()
    return int(row[0])
