"""What building and encoding a billing reply costs: the reply Structs against plain dicts.

The billing reply is built and encoded on every reply-cache miss. Both ways are timed
alternately in one process (best of several rounds), and their bytes compared first: the Structs
must write exactly what the dicts did.

    .venv/bin/python bench/encode_replies.py
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable

import msgspec

from voxmeter.domain.catalog import Catalog
from voxmeter.entrypoints.http.replies import Figures, UsageRow, encode

_plain = msgspec.json.Encoder().encode
MSG = "Information found for the current month"
DAY = "2026-12-02"


def as_dicts(rows: list[tuple[str, str]]) -> bytes:
    data = [{"operation": "acme", "description": t, "items": n, "date": DAY} for t, n in rows]
    return _plain({"code": 200, "error": None, "msg": MSG, "data": data})


def as_structs(rows: list[tuple[str, str]]) -> bytes:
    return encode(Figures(msg=MSG, data=[UsageRow("acme", t, n, DAY) for t, n in rows]))


def best(func: Callable[[], bytes], number: int, rounds: int) -> float:
    return min(timeit.repeat(func, number=number, repeat=rounds)) / number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    products = [(p.title, str(1_234_567 + i)) for i, p in enumerate(Catalog.load())]
    for label, rows in (("api=all", products), ("one product", products[:1])):
        assert as_dicts(rows) == as_structs(rows), "the Structs changed the reply bytes"
        dicts = best(lambda rows=rows: as_dicts(rows), args.number, args.rounds)
        structs = best(lambda rows=rows: as_structs(rows), args.number, args.rounds)
        print(
            f"{label:<12} dicts {dicts * 1e6:6.2f} µs  Structs {structs * 1e6:6.2f} µs  "
            f"Structs/dicts {structs / dicts:.2f}"
        )


if __name__ == "__main__":
    main()
