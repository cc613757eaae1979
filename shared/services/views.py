"""What callers may read about one message: the view behind `GET /api/messages/{id}` and `contactmsg status`.

Why its own service: a handler reads through a service like every other, never from storage; and the
view is the one place that decides which ledger fields leave the app (ids, statuses, times and counts;
never content or addresses).
"""

from __future__ import annotations

from typing import Any

from shared.adapters.tables import TableStore
from shared.models import Status
from shared.tables import is_ledger_row

# Ledger fields an API caller may see: ids, statuses, times and counts; never content or addresses.
PUBLIC_FIELDS = (
    "Channel",
    "Status",
    "Purpose",
    "Delivery",
    "RecipientMasked",
    "Sender",
    "Attempts",
    "Segments",
    "CostEstimate",
    "ProviderMessageId",
    "Reason",
    "CorrelationId",
    "CreatedAt",
    "ExpiresAt",
    "DeliveryLatencyMs",
    *(f"{s.value}At" for s in Status),
)


class MessageViews:
    """Reads one message's partition of the messages table (the ledger row and its event rows)."""

    def __init__(self, messages: TableStore) -> None:
        self._messages = messages

    async def status(self, message_id: str) -> dict[str, Any] | None:
        """Status and history of one message: public ledger fields plus its event rows; None if unknown."""
        rows = [row async for row in self._messages.query("PartitionKey eq @pk", {"pk": message_id})]
        ledger = next((r for r in rows if is_ledger_row(r["RowKey"])), None)
        if ledger is None:
            return None
        view = {"id": message_id, **{k[0].lower() + k[1:]: ledger[k] for k in PUBLIC_FIELDS if k in ledger}}
        history = [{"status": s.value, "at": ledger[f"{s.value}At"]} for s in Status if f"{s.value}At" in ledger]
        view["transitions"] = sorted(history, key=lambda h: str(h["at"]))
        events = (_event(r) for r in rows if not is_ledger_row(r["RowKey"]))
        view["events"] = sorted(events, key=lambda e: str(e["eventTime"]))
        return view


def _event(row: dict[str, Any]) -> dict[str, Any]:
    """One event row as callers see it: what happened and when, never the provider's raw payload."""
    return {
        "eventType": row.get("EventType"),
        "status": row.get("Status"),
        "rawStatus": row.get("RawStatus"),
        "eventTime": row.get("EventTime"),
        "detail": row.get("Detail"),
        "kind": row.get("Kind"),
    }
