"""Prices in storage, on SQLite, PostgreSQL and the fake: stored exactly, replaced, overridden per
operation and deleted."""

from __future__ import annotations

from voxmeter.domain.tenancy import Operation
from voxmeter.service.context import Context
from voxmeter.service.prices import delete_price, list_prices, set_price
from voxmeter.service.tenancy import create_operation


def test_prices_round_trip_and_operations_override_the_default(ctx: Context, op: Operation) -> None:
    other = create_operation(ctx, "globex", "9901")
    default = set_price(ctx, None, "ivr_minutes", "USD", unit_price="0.000001", included="0.5")
    graduated = set_price(ctx, op, "ivr_minutes", "USD", tiers=["1000:0.05", "inf:0.03"])
    volume = set_price(
        ctx, None, "rsync", "USD", volume_tiers=["0.5:2", "999999.999999:1", "inf:0"]
    )
    set_price(ctx, None, "rsync", "COP", unit_price="1200")
    assert ctx.storage.prices_for(op.id, "USD") == {"ivr_minutes": graduated, "rsync": volume}
    assert ctx.storage.prices_for(other.id, "USD") == {"ivr_minutes": default, "rsync": volume}
    assert set(ctx.storage.prices_for(other.id, "COP")) == {"rsync"}
    assert ctx.storage.prices_for(other.id, "EUR") == {}

    replaced = set_price(ctx, None, "ivr_minutes", "USD", unit_price="7")
    assert ctx.storage.prices_for(other.id, "USD")["ivr_minutes"] == replaced
    assert [scope for scope, _ in list_prices(ctx, None)] == [None, None, None, op.id]
    assert [p for scope, p in list_prices(ctx, op) if scope == op.id] == [graduated]
    assert [scope for scope, _ in list_prices(ctx, other)] == [None, None, None]

    delete_price(ctx, op, "ivr_minutes", "USD")
    assert ctx.storage.prices_for(op.id, "USD")["ivr_minutes"] == replaced
    with ctx.storage.write() as tx:
        assert not tx.delete_price(op.id, "ivr_minutes", "USD")
