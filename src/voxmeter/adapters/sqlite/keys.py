"""Compact, order-preserving index keys for event ids.

Ids in the canonical lowercase UUID form (the most common choice) are stored as 16 bytes
instead of 36 characters; every other id is stored as its UTF-8 text. The first byte says
which, so two different ids never share a key and the key decodes back to the exact id. Keeping
text ids as text keeps time-ordered ids (and UUIDv7) appending at the right edge of the index.
"""

from __future__ import annotations

import uuid

_TEXT = b"\x00"
_UUID = b"\x01"


def encode(event_id: str) -> bytes:
    if len(event_id) == 36 and event_id[8] == "-":
        try:
            parsed = uuid.UUID(event_id)
        except ValueError:
            pass
        else:
            if str(parsed) == event_id:
                return _UUID + parsed.bytes
    return _TEXT + event_id.encode("utf-8")


def decode(key: bytes) -> str:
    if key[:1] == _UUID:
        return str(uuid.UUID(bytes=key[1:]))
    return key[1:].decode("utf-8")
