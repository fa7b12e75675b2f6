"""The statements of the event and meter tables, and the advisory lock levels of a write."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from voxmeter.service.ports import StoredEvent

EVENT_COLUMNS = "e.seq, e.id, p.api, e.time, e.quantity, e.subject, e.received, e.voided"
_encode = msgspec.json.Encoder().encode

# Two transaction-scoped advisory locks per operation, always taken in this order (no deadlock):
# GATE (shared by ingests, exclusive for closing a month or voiding) and METERS (exclusive around
# read-merge-save of the meters). Two batches of one operation insert their events in parallel
# and queue only for the short meter update; a close or void waits for every ingest in progress.
GATE, METERS = 1, 2
SHARED, METER, EXCLUSIVE = 1, 2, 3

# The batch arrives as one JSON array of UsageEvent rows [id, product, time, month, quantity,
# subject] (msgspec encodes 10k of them in about a millisecond, far less client CPU than COPY
# rows or array parameters) and the product ids as a JSON object {api: id}. Sequence numbers are
# drawn in arrival order, but rows go into the unique id index in id order: two transactions
# storing overlapping batches then wait for each other in one direction only, never in a cycle
# (a deadlock). Plain INSERT first: a conflict means an id stored before (a retry) or by a
# concurrent batch, and then the savepoint is rolled back and the batch goes in again skipping
# stored ids (see bench/pg_insert.py).
_BATCH_ROWS = (
    " OVERRIDING SYSTEM VALUE"
    " SELECT b.seq, %(op)s, b.e ->> 0, (%(pids)s::jsonb ->> (b.e ->> 1))::integer,"
    " (b.e ->> 2)::bigint, (b.e ->> 4)::bigint, b.e ->> 5, %(received)s"
    " FROM (SELECT nextval('events_seq_seq'::regclass) AS seq, j.e"
    "   FROM jsonb_array_elements(%(events)s::jsonb) WITH ORDINALITY AS j(e, ord)"
    "   ORDER BY j.ord OFFSET 0) AS b"
    ' ORDER BY (b.e ->> 0) COLLATE "C"'
)
_INSERT_BATCH = (
    "INSERT INTO events (seq, operation_id, id, product_id, time, quantity, subject, received)"
    + _BATCH_ROWS
)
_INSERT_FRESH = _INSERT_BATCH + " ON CONFLICT (operation_id, id) DO NOTHING RETURNING id"

# One statement, so one snapshot: closed flag ('c'), frozen figures ('f'), meter states ('s')
# and carried-in levels ('l') of a month.
_MONTH_METERS = """
SELECT 'c', NULL::text, NULL::numeric, NULL::bigint, NULL::bigint
  FROM closed_months WHERE operation_id = %(op)s AND month = %(month)s
UNION ALL
SELECT 'f', p.api, f.total, NULL, NULL
  FROM frozen_figures AS f JOIN products AS p ON p.id = f.product_id
 WHERE f.operation_id = %(op)s AND f.month = %(month)s
UNION ALL
SELECT 's', p.api, m.total, m.last_time, m.last_value
  FROM meters AS m JOIN products AS p ON p.id = m.product_id
 WHERE m.operation_id = %(op)s AND m.month = %(month)s AND p.api = ANY(%(products)s::text[])
UNION ALL
(SELECT DISTINCT ON (m.product_id) 'l', p.api, NULL, NULL, m.last_value
   FROM meters AS m JOIN products AS p ON p.id = m.product_id
  WHERE m.operation_id = %(op)s AND m.month < %(month)s AND m.last_time IS NOT NULL
    AND p.api = ANY(%(levels)s::text[])
  ORDER BY m.product_id, m.month DESC)
"""


def stored(row: Sequence[Any]) -> StoredEvent:
    return StoredEvent(
        int(row[0]),
        str(row[1]),
        str(row[2]),
        int(row[3]),
        int(row[4]),
        row[5],
        int(row[6]),
        None if row[7] is None else int(row[7]),
    )
