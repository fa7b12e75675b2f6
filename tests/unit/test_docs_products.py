"""docs/products.md lists exactly the packaged catalog: number, code, title, unit and billing
rule of every product, so the reference cannot drift from `products.json`."""

from __future__ import annotations

import re
from pathlib import Path

from voxmeter.domain.catalog import Aggregation, Catalog

DOC = Path(__file__).resolve().parents[2] / "docs" / "products.md"

#: How docs/products.md names each billing rule.
RULE_WORDS = {
    Aggregation.SUM: "sum",
    Aggregation.SUM_ROUND_UP: "sum, round up per event",
    Aggregation.COUNT: "count",
    Aggregation.MAX: "peak level, carried forward",
    Aggregation.UNIQUE: "unique",
}

_ROW = re.compile(r"^\| (\d+) \| `([a-z0-9_]+)` \| ([^|]+?) \| ([^|]+?) \| ([^|]+?) \|$")


def documented_rows() -> list[tuple[int, str, str, str, str]]:
    """The catalog table's rows, in the page's order."""
    rows = []
    for line in DOC.read_text("utf-8").splitlines():
        match = _ROW.match(line)
        if match:
            number, api, title, unit, rule = match.groups()
            rows.append((int(number), api, title, unit, rule))
    return rows


def test_every_catalog_product_is_documented_with_its_unit_and_rule() -> None:
    expected = [
        (p.number, p.api, p.title, p.unit, RULE_WORDS[p.aggregation]) for p in Catalog.load()
    ]
    assert documented_rows() == expected


def test_every_rule_is_explained() -> None:
    """Each rule a catalog file may name has a row in the rules table (with its file value)."""
    text = DOC.read_text("utf-8")
    for aggregation, words in RULE_WORDS.items():
        assert f"| {words} | `{aggregation.value}` |" in text, aggregation
