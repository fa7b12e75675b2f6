"""The adapters are composed of role mixins whose hooks are stubs: every method of a composed
class must resolve to a real body, never to a stub that an earlier base shadows."""

from __future__ import annotations

import inspect
import textwrap

import pytest

from voxmeter.adapters.postgres import PostgresStorage
from voxmeter.adapters.postgres import storage as pg_storage
from voxmeter.adapters.sqlite import SqliteStorage
from voxmeter.adapters.sqlite import storage as sqlite_storage
from voxmeter.service import ports


def _is_stub(function: object) -> bool:
    source = textwrap.dedent(inspect.getsource(function))  # type: ignore[arg-type]
    body = [line.strip() for line in source.splitlines() if not line.lstrip().startswith("def")]
    return [b for b in body if b and not b.startswith(('"""', ")", "self,"))] == [
        "raise NotImplementedError"
    ]


def _port_methods(protocol: type) -> set[str]:
    return {
        name
        for klass in protocol.__mro__
        if klass.__module__ == ports.__name__
        for name, value in vars(klass).items()
        if callable(value) and not name.startswith("__")
    }


COMPOSED = [
    (SqliteStorage, ports.Database),
    (PostgresStorage, ports.Database),
    (sqlite_storage._Transaction, ports.WriteTransaction),
    (pg_storage._Transaction, ports.WriteTransaction),
]


@pytest.mark.parametrize(("composed", "port"), COMPOSED)
def test_every_port_method_and_hook_has_a_real_body(composed: type, port: type) -> None:
    methods = _port_methods(port) | {
        name for name in dir(composed) if name.startswith("_") and not name.startswith("__")
    }
    stubs = sorted(
        name
        for name in methods
        if inspect.isfunction(getattr(composed, name, None)) and _is_stub(getattr(composed, name))
    )
    assert stubs == []
    assert not _port_methods(port) - set(dir(composed))


def test_a_shadowed_stub_is_found() -> None:
    class Stubbed:
        def frozen_figures(self, operation_id: int, month: int) -> dict[str, int] | None:
            raise NotImplementedError

    class Shadowed(Stubbed, SqliteStorage):  # the stub comes first in the MRO
        pass

    assert _is_stub(Shadowed.frozen_figures)
    assert not _is_stub(SqliteStorage.frozen_figures)
