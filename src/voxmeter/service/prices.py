"""Setting, listing and deleting prices: deployment defaults and per-operation overrides."""

from __future__ import annotations

from voxmeter.domain import audit
from voxmeter.domain.money import CurrencyError, check_currency
from voxmeter.domain.prices import Price, PriceError, make_price
from voxmeter.domain.quantities import format_micro
from voxmeter.domain.tenancy import Operation
from voxmeter.errors import ConfigError
from voxmeter.service.audit import record
from voxmeter.service.context import Context
from voxmeter.service.ports import Prices, Writer


def set_price(
    ctx: Context[Writer],
    op: Operation | None,
    product: str,
    currency: str,
    unit_price: str | None = None,
    tiers: list[str] | None = None,
    volume_tiers: list[str] | None = None,
    included: str | None = None,
) -> Price:
    """Check the whole price, then store it in one write (replacing the same scope, product and
    currency): a refused price changes nothing. `op` None sets the deployment's default."""
    if product not in ctx.catalog:
        raise ConfigError(f"unknown product {product!r}")
    try:
        check_currency(currency)
        price = make_price(
            product, currency, unit_price, list(tiers or []), list(volume_tiers or []), included
        )
    except (CurrencyError, PriceError) as exc:
        raise ConfigError(str(exc)) from exc
    scope = None if op is None else op.id
    with ctx.storage.write() as tx:
        tx.set_price(scope, price)
        record(tx, ctx, audit.PRICE_SET, scope, _details(price.product, currency, price))
    return price


def _details(product: str, currency: str, price: Price | None = None) -> dict[str, object]:
    """What an audit entry of a price change says: the product, currency and (when set) the
    price as stored."""
    details: dict[str, object] = {"product": product, "currency": currency}
    if price is not None:
        details["scheme"] = price.scheme.value
        details["included"] = format_micro(price.included)
        details["tiers"] = [
            ["inf" if tier.upto is None else format_micro(tier.upto), format_micro(tier.unit_price)]
            for tier in price.tiers
        ]
    return details


def delete_price(ctx: Context[Writer], op: Operation | None, product: str, currency: str) -> None:
    """Remove one price in one write; the default applies again where an override is removed."""
    scope = None if op is None else op.id
    with ctx.storage.write() as tx:
        if not tx.delete_price(scope, product, currency):
            whose = "the deployment" if op is None else f"operation {op.name}"
            raise ConfigError(f"no price of {product} in {currency} for {whose}")
        record(tx, ctx, audit.PRICE_DELETE, scope, _details(product, currency))


def list_prices(ctx: Context[Prices], op: Operation | None) -> list[tuple[int | None, Price]]:
    """Every price (defaults first), or those that can apply to one operation: the defaults
    and its own."""
    found = ctx.storage.all_prices()
    if op is None:
        return found
    return [(scope, p) for scope, p in found if scope is None or scope == op.id]
