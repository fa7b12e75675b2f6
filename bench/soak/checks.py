"""Server-side figures, memory and counters, reconciled with what the soak sent."""

from __future__ import annotations

import os
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from bench.common import Server
from bench.soak.ledger import LEVEL_PRODUCT, SAMPLE_SECONDS, SUM_PRODUCTS, Ledger, event_of
from bench.soak.load import Soak, Tenant

# --- server-side figures, memory, counters --------------------------------------------------------


def cpu_seconds(server: Server) -> float:
    """User + system CPU time of the server's processes so far."""
    total = 0
    for pid in server.pids():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    t: float
    rss_mib: float
    events: int
    requests: int


def sample_rss(soak: Soak, server: Server, ledger: Ledger, out: list[Sample]) -> None:
    """Server RSS every SAMPLE_SECONDS on a fixed grid from the start of the soak."""
    k = 0
    while True:
        out.append(Sample(k * SAMPLE_SECONDS, server.rss_mib(), ledger.acked, soak.requests))
        k += 1
        if soak.stop.wait(max(0.0, soak.start + k * SAMPLE_SECONDS - time.monotonic())):
            return


def final_figures(tenant: Tenant, ledger: Ledger) -> dict[str, Any]:
    """The server's figures against the ledger, product by product and in one api=all reply:
    the soak's products must match exactly and every other product must read 0."""
    expected = ledger.expected()
    with tenant.client(tenant.tokens["billing"]) as client:
        every = client.get("/api/v2/billing.php", params={"api": "all"}).json()["data"]
        single = {
            api: client.get("/api/v2/billing.php", params={"api": api}).json()["data"][0]
            for api in (*SUM_PRODUCTS, LEVEL_PRODUCT)
        }
    in_all = {row["description"]: row["items"] for row in every}
    table = [
        {
            "product": api,
            "expected": format(expected[api].normalize(), "f"),
            "server": row["items"],
            "ok": Decimal(row["items"]) == expected[api]
            and in_all.get(row["description"]) == row["items"],
        }
        for api, row in single.items()
    ]
    titles = {row["description"] for row in single.values()}
    others_zero = len(every) == 27 and all(
        items == "0" for title, items in in_all.items() if title not in titles
    )
    return {
        "products": table,
        "other_products_zero": others_zero,
        "ok": all(r["ok"] for r in table) and others_zero and not ledger.uncertain,
        "uncertain": ledger.uncertain,
    }


def reconcile(tenant: Tenant, ledger: Ledger) -> dict[str, Any]:
    """Page through today's listing: each acknowledged event exactly once, voids marked, and no
    event of a refused batch."""
    today = ledger.local_now().strftime("%Y%m%d")
    params = {"date_ini": f"{today}000000", "date_end": f"{today}235959", "limit": "60000"}
    seen = bytearray(ledger.acked)
    counts: Counter[str] = Counter()
    pages = 0
    with tenant.client(tenant.tokens["listing"], timeout=300) as client:
        cursor: str | None = None
        while True:
            reply = client.get(
                "/api/v2/events", params=params | ({"cursor": cursor} if cursor else {})
            )
            body = reply.json()
            pages += 1
            for row in body["data"]:
                event_id = row["id"]
                if event_id.startswith("soak-"):
                    seq = int(event_id[5:])
                    if seq >= len(seen) or seen[seq]:
                        counts["soak out of range or repeated"] += 1
                        continue
                    seen[seq] = 1
                    counts["soak"] += 1
                    if row["voided"]:
                        counts["soak voided"] += 1
                        if seq not in ledger.voided:
                            counts["voided but not by the soak"] += 1
                    elif seq in ledger.voided:
                        counts["void lost"] += 1
                    product, quantity = event_of(seq)
                    if row["product"] != product or Decimal(row["quantity"]) != quantity:
                        counts["first copy did not win"] += 1
                elif event_id.startswith("hold-"):
                    counts["hold"] += 1
                else:
                    counts["foreign (refused batch stored?)"] += 1
            cursor = body.get("next_cursor")
            if not cursor:
                break
    ok = (
        counts["soak"] == ledger.acked
        and counts["soak voided"] == len(ledger.voided)
        and counts["hold"] == ledger.holds
        and set(counts) <= {"soak", "soak voided", "hold"}
    )
    return {
        "pages": pages,
        "listed": dict(counts),
        "expected": {"soak": ledger.acked, "soak voided": len(ledger.voided), "hold": ledger.holds},
        "ok": ok,
    }


def server_counters(base: str) -> dict[str, float]:
    """The server's own Prometheus counters that the soak can check."""
    text = httpx.get(base + "/metrics", timeout=30).text
    out: dict[str, float] = defaultdict(float)
    for line in text.splitlines():
        if line.startswith("voxmeter_limit_rejections_total"):
            label = line.split('limit="', 1)[1].split('"', 1)[0]
            out[f"limit {label}"] += float(line.rsplit(" ", 1)[1])
        elif line.startswith("voxmeter_ingest_events_total"):
            label = line.split('result="', 1)[1].split('"', 1)[0]
            out[f"ingest {label}"] += float(line.rsplit(" ", 1)[1])
        elif line.startswith("voxmeter_requests_total"):
            status = line.split('status="', 1)[1].split('"', 1)[0]
            if status.startswith("5"):
                out["5xx"] += float(line.rsplit(" ", 1)[1])
    return dict(out)
