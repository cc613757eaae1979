"""The due-time index: what reconciliation must look at, found with one range query.

Why: reconciliation must cost O(due items), never O(history). Each message gets an entry when it
is accepted (stuck check) and when it is sent (report SLA); reconciliation reads entries whose
time has come, acts or finds the check moot, and deletes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from shared.adapters.tables import TableStore
from shared.ledger import iso
from shared.tables import DUE_PARTITION, due_row_key


class DueKind(StrEnum):
    STUCK = "stuck"  # still Accepted or Sending long after acceptance
    SLA = "sla"  # Sent, and the channel's report SLA has passed


@dataclass(frozen=True)
class DueEntry:
    row_key: str
    message_id: str
    kind: DueKind
    due_at: str


class DueIndex:
    def __init__(self, table: TableStore) -> None:
        self._table = table

    async def add(self, message_id: str, kind: DueKind, due_at: datetime) -> None:
        stamp = iso(due_at)
        await self._table.upsert(
            {
                "PartitionKey": DUE_PARTITION,
                "RowKey": due_row_key(stamp, message_id, kind.value),
                "MessageId": message_id,
                "Kind": kind.value,
                "DueAt": stamp,
            }
        )

    async def due(self, now: datetime, limit: int = 1000) -> list[DueEntry]:
        """Entries due at or before `now`, oldest first (a range query on the row key)."""
        rows = self._table.query(
            "PartitionKey eq @pk and RowKey lt @until", {"pk": DUE_PARTITION, "until": iso(now) + "|~"}
        )
        entries: list[DueEntry] = []
        async for row in rows:
            entries.append(DueEntry(row["RowKey"], row["MessageId"], DueKind(row["Kind"]), row["DueAt"]))
            if len(entries) >= limit:
                break
        return entries

    async def remove(self, entry: DueEntry) -> None:
        await self._table.delete(DUE_PARTITION, entry.row_key)
