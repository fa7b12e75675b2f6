"""Prices (the Prices port) for both SQL adapters: one row per (scope, product, currency), the
price itself as JSON text. Scope 0 is the deployment's default; an operation's id overrides it."""

from __future__ import annotations

import json
from decimal import Decimal
from functools import lru_cache

from voxmeter.adapters.sql.tenancy import SqlStatements, SqlTransactionStatements
from voxmeter.domain.prices import Price, Scheme, Tier
from voxmeter.domain.quantities import format_micro, to_micro

DEFAULT_SCOPE = 0


def encode_price(price: Price) -> str:
    """Plain decimal strings, so the stored text reads as it was set."""
    return json.dumps(
        {
            "scheme": price.scheme.value,
            "included": format_micro(price.included),
            "tiers": [
                [None if t.upto is None else format_micro(t.upto), format_micro(t.unit_price)]
                for t in price.tiers
            ],
        },
        separators=(",", ":"),
    )


@lru_cache(maxsize=4096)
def decode_price(product: str, currency: str, text: str) -> Price:
    """A stored price (cached: statements read the same few prices over and over)."""
    doc = json.loads(text)
    tiers = tuple(
        Tier(None if upto is None else to_micro(Decimal(upto)), to_micro(Decimal(unit)))
        for upto, unit in doc["tiers"]
    )
    return Price(
        product, currency, Scheme(doc["scheme"]), tiers, to_micro(Decimal(doc["included"]))
    )


def _scope(operation_id: int | None) -> int:
    return DEFAULT_SCOPE if operation_id is None else operation_id


class SqlPriceWrites(SqlTransactionStatements):
    """Setting and deleting prices inside a write transaction, beside their audit entry."""

    def set_price(self, operation_id: int | None, price: Price) -> None:
        self._run(
            self.dialect.sql(
                "INSERT INTO prices (scope, product, currency, price) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (scope, product, currency) DO UPDATE SET price = excluded.price"
            ),
            (_scope(operation_id), price.product, price.currency, encode_price(price)),
        )

    def delete_price(self, operation_id: int | None, product: str, currency: str) -> bool:
        changed, _ = self._run(
            self.dialect.sql("DELETE FROM prices WHERE scope = ? AND product = ? AND currency = ?"),
            (_scope(operation_id), product, currency),
        )
        return changed == 1


class SqlPrices(SqlStatements):
    """Prices as committed."""

    def all_prices(self) -> list[tuple[int | None, Price]]:
        found = self._rows(
            self.dialect.sql(
                "SELECT scope, product, currency, price FROM prices"
                " ORDER BY scope, product{order}, currency{order}"
            )
        )
        return [
            (None if int(s) == DEFAULT_SCOPE else int(s), decode_price(str(p), str(c), str(t)))
            for s, p, c, t in found
        ]

    def prices_for(self, operation_id: int, currency: str) -> dict[str, Price]:
        found = self._rows(
            self.dialect.sql(
                "SELECT scope, product, price FROM prices"
                " WHERE scope IN (?, ?) AND currency = ? ORDER BY scope"
            ),
            (DEFAULT_SCOPE, operation_id, currency),
        )
        # the operation's own (a higher scope) comes last and wins
        return {str(p): decode_price(str(p), currency, str(t)) for _, p, t in found}
