"""The price table bench/cost.py converts counts with: Azure pay-as-you-go list prices in US dollars.

Each price names the page it is listed on and the date it was read. These are the public list prices
for the US East region, without free grants, reservations or negotiated discounts: the marginal cost of
one more operation. Free monthly grants (Functions executions and GB-s, the first 100,000 Event Grid
operations, the first 5 GB of log ingestion) are listed in `FREE_GRANTS` and left out of the per-million
figures, since at a million messages a month they are small next to the rest or already spent.

Caveat, written where the figures are used: the table was filled in on the date below from the
published list prices as known then, without a live fetch from this machine (it has no browser); check
the page before quoting a figure outside this project. The deployment's storage account is GZRS
(infra/modules/storage.bicep), whose queue and blob write prices are higher than LRS; LRS is priced
here as the floor of what any account pays, and the table transaction price is the same for both.
"""

from __future__ import annotations

from dataclasses import dataclass

READ = "2026-12-03"
STORAGE_TABLES = "https://azure.microsoft.com/en-us/pricing/details/storage/tables/"
STORAGE_QUEUES = "https://azure.microsoft.com/en-us/pricing/details/storage/queues/"
STORAGE_BLOBS = "https://azure.microsoft.com/en-us/pricing/details/storage/blobs/"
EVENT_GRID = "https://azure.microsoft.com/en-us/pricing/details/event-grid/"
FUNCTIONS = "https://azure.microsoft.com/en-us/pricing/details/functions/"
MONITOR = "https://azure.microsoft.com/en-us/pricing/details/monitor/"


@dataclass(frozen=True)
class Price:
    """`usd` for every `per` units of `unit`."""

    key: str
    usd: float
    per: float
    unit: str
    source: str
    read: str = READ
    note: str = ""

    def cost(self, units: float) -> float:
        return units * self.usd / self.per

    def to_json(self) -> dict[str, object]:
        return {
            "usd": self.usd,
            "per": self.per,
            "unit": self.unit,
            "source": self.source,
            "read": self.read,
            **({"note": self.note} if self.note else {}),
        }


PRICES: dict[str, Price] = {
    p.key: p
    for p in (
        Price("table", 0.00036, 10_000, "table transactions", STORAGE_TABLES, note="Standard, LRS; any kind"),
        Price("queue.write", 0.004, 10_000, "queue class 1 operations", STORAGE_QUEUES, note="GPv2, LRS"),
        Price("queue.read", 0.004, 10_000, "queue class 2 operations", STORAGE_QUEUES, note="GPv2, LRS"),
        Price("blob.write", 0.05, 10_000, "blob write operations", STORAGE_BLOBS, note="Hot, LRS"),
        Price("blob.list", 0.05, 10_000, "blob list and create container operations", STORAGE_BLOBS),
        Price("blob.read", 0.004, 10_000, "blob read operations", STORAGE_BLOBS, note="Hot, LRS"),
        Price("blob.other", 0.004, 10_000, "blob all other operations (lease, properties)", STORAGE_BLOBS),
        Price("blob.delete", 0.0, 10_000, "blob delete operations", STORAGE_BLOBS, note="free"),
        Price("eventgrid", 0.60, 1_000_000, "Event Grid operations (64 KB units)", EVENT_GRID, note="Basic tier"),
        Price("functions.executions", 0.40, 1_000_000, "executions", FUNCTIONS, note="Flex Consumption, on demand"),
        Price("functions.gbs", 0.000026, 1, "GB-s", FUNCTIONS, note="Flex Consumption, on demand execution time"),
        Price("logs", 2.30, 1, "GB ingested", MONITOR, note="Log Analytics Analytics logs, pay-as-you-go"),
    )
}

FREE_GRANTS = {
    "functions": "Flex Consumption: 250,000 executions and 100,000 GB-s a month per subscription",
    "eventgrid": "first 100,000 operations a month",
    "logs": "first 5 GB a month per billing account",
}


def storage_price(service: str, kind: str) -> Price:
    """The price of one storage request of this service and kind (as bench/costmeter.py classifies)."""
    if service == "table":
        return PRICES["table"]
    if service == "queue":
        return PRICES["queue.read" if kind == "read" else "queue.write"]
    blob = {
        "write": "blob.write",
        "list": "blob.list",
        "admin": "blob.list",
        "read": "blob.read",
        "delete": "blob.delete",
    }
    return PRICES[blob.get(kind, "blob.other")]
