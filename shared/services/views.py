"""What callers may read about one message: the view behind `GET /api/messages/{id}` and `contactmsg status`.

Why its own service: a handler reads through a service like every other, never from storage; and the
view is the one place that decides which ledger fields leave the app (ids, statuses, times and counts;
never content or addresses).
"""

from __future__ import annotations

from typing import Any

from shared.adapters.tables import TableStore
from shared.schema import (
    PARTITION_FILTER,
    HistoryRow,
    LedgerRow,
    is_history_row,
    is_ledger_row,
    public_columns,
    row_key_of,
)


class MessageViews:
    """Reads one message's partition of the messages table (the ledger row and its event rows)."""

    def __init__(self, messages: TableStore) -> None:
        self._messages = messages

    async def status(self, message_id: str) -> dict[str, Any] | None:
        """Status and history of one message: public ledger fields plus its event rows; None if unknown."""
        rows = [row async for row in self._messages.query(PARTITION_FILTER, {"pk": message_id})]
        ledger = next((r for r in rows if is_ledger_row(row_key_of(r))), None)
        if ledger is None:
            return None
        row = LedgerRow.from_entity(ledger)
        view = {"id": message_id, **public_columns(row)}
        history = [{"status": status.value, "at": at} for status, at in row.times.items()]
        view["transitions"] = sorted(history, key=lambda h: str(h["at"]))
        events = (_event(HistoryRow.from_entity(r)) for r in rows if is_history_row(row_key_of(r)))
        view["events"] = sorted(events, key=lambda e: str(e["eventTime"]))
        return view


def _event(row: HistoryRow) -> dict[str, Any]:
    """One event row as callers see it: what happened and when, never the provider's raw payload."""
    return {
        "eventType": row.event_type,
        "status": row.status,
        "rawStatus": row.raw_status,
        "eventTime": row.event_time,
        "detail": row.detail,
        "kind": row.kind,
    }
