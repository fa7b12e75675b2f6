"""The loop limiter's own encoding of Redis commands is byte for byte redis-py's."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio.connection import Connection

from voxmeter.adapters.redis_loop import _packed

ARG = st.one_of(st.text(), st.integers(min_value=-(2**63), max_value=2**63 - 1))


@given(st.sampled_from(["EVALSHA", "ZREM", "SCRIPT"]), st.lists(ARG, max_size=12))
def test_packed_commands_are_the_ones_redis_py_sends(name: str, args: list[str | int]) -> None:
    command = (name, *args)
    assert _packed(command) == b"".join(Connection().pack_command(*command))
