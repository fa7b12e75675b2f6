"""The product catalog: the 27 Billing APIs, from a data file so a new product is one entry."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path


class Aggregation(enum.StrEnum):
    """How a product's events combine into a month's figure (docs/products.md, Billing rules)."""

    SUM = "sum"
    SUM_ROUND_UP = "sum_round_up"
    COUNT = "count"
    MAX = "max"
    UNIQUE = "unique"

    @property
    def is_level(self) -> bool:
        """Levels (licences, storage) carry forward from month to month."""
        return self is Aggregation.MAX


@dataclass(frozen=True, slots=True)
class Product:
    number: int
    api: str
    title: str
    unit: str
    aggregation: Aggregation


class Catalog:
    """An ordered, read-only set of products, looked up by their `api` value."""

    def __init__(self, products: list[Product]) -> None:
        if not products:
            raise ValueError("a catalog needs at least one product")
        self._products = tuple(products)
        self._by_api = {p.api: p for p in products}
        if len(self._by_api) != len(self._products):
            raise ValueError("duplicate api value in catalog")
        if "all" in self._by_api:
            raise ValueError("'all' is reserved for the one-call summary")

    @classmethod
    def load(cls, path: Path | None = None) -> Catalog:
        """Load the packaged catalog, or a deployment's own file with the same shape."""
        if path is None:
            text = resources.files("voxmeter.domain").joinpath("products.json").read_text("utf-8")
        else:
            text = path.read_text("utf-8")
        doc = json.loads(text)
        return cls(
            [
                Product(
                    number=int(p["number"]),
                    api=str(p["api"]),
                    title=str(p["title"]),
                    unit=str(p["unit"]),
                    aggregation=Aggregation(p["aggregation"]),
                )
                for p in doc["products"]
            ]
        )

    def get(self, api: str) -> Product | None:
        return self._by_api.get(api)

    def __contains__(self, api: object) -> bool:
        return api in self._by_api

    def __iter__(self) -> Iterator[Product]:
        return iter(self._products)

    def __len__(self) -> int:
        return len(self._products)
