"""The due-time index: what reconciliation must look at, found with one range query.

Why: reconciliation must cost O(due items), never O(history). Each message gets an entry when it
is accepted (stuck check) and when it is sent (report SLA); reconciliation reads entries whose
time has come, acts or finds the check moot, and deletes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from shared.adapters.group_commit import GroupUpserts, delete_rows
from shared.adapters.tables import TableStore
from shared.clock import iso
from shared.schema import DUE_PARTITION, PARTITION_UNTIL_FILTER, DueRow


class DueKind(StrEnum):
    STUCK = "stuck"  # still Accepted or Sending long after acceptance
    SLA = "sla"  # Sent, and the channel's report SLA has passed
    PURGE_CONTENT = "purge-content"  # retention: drop message content
    PURGE_RECIPIENT = "purge-recipient"  # retention: drop the recipient (PII)
    PURGE_ROWS = "purge-rows"  # retention: delete the message and its events
    ORPHAN = "orphan"  # an event parked for an unknown provider id: re-match it, or give it up
    FEED = "feed"  # a message may have status-feed events left unpublished: the sweep looks
    FALLBACK = "fallback"  # a message reached an end it falls back on: its alternative must exist


RETENTION_PARTITION = "retention"


@dataclass(frozen=True)
class DueEntry:
    row_key: str
    message_id: str
    kind: DueKind
    due_at: str


async def schedule_retention(index: DueIndex | None, message_id: str, created_at: str, content_days: int) -> None:
    """Schedule the first retention step of a message that reached an end state (idempotent: the
    entry's key is derived from the creation time, so scheduling twice writes the same row)."""
    if index is None or not created_at:
        return
    created = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    await index.add(message_id, DueKind.PURGE_CONTENT, created + timedelta(days=content_days))


class DueIndex:
    """Entries in one partition of the due table (`due` for reconciliation, `retention` for retention)."""

    def __init__(self, table: TableStore, partition: str = DUE_PARTITION) -> None:
        self._table = table
        self._partition = partition
        # Every sent message adds an entry here, all in this partition: concurrent adds share one write.
        self._writes = GroupUpserts(table, partition)

    @property
    def table(self) -> TableStore:
        return self._table

    @property
    def partition(self) -> str:
        return self._partition

    async def add(self, message_id: str, kind: DueKind, due_at: datetime, *, holder: str = "") -> None:
        """Add (or overwrite) an entry; returns once it is stored. `holder`: see `DueRow.new`."""
        row = DueRow.new(self._partition, message_id, kind.value, iso(due_at), holder)
        await self._writes.upsert(row.to_entity())

    async def due(self, now: datetime, limit: int = 1000) -> list[DueEntry]:
        """Entries due at or before `now`, oldest first (a range query on the row key)."""
        rows = self._table.query(PARTITION_UNTIL_FILTER, {"pk": self._partition, "until": iso(now) + "|~"})
        entries: list[DueEntry] = []
        async for entity in rows:
            row = DueRow.from_entity(entity)
            entries.append(DueEntry(row.row_key, row.message_id, DueKind(row.kind), row.due_at))
            if len(entries) >= limit:
                break
        return entries

    async def remove(self, entry: DueEntry) -> None:
        await self._table.delete(self._partition, entry.row_key)

    async def remove_all(self, entries: Sequence[DueEntry]) -> None:
        """Delete handled entries in batches (they share this partition)."""
        await self.remove_keys([entry.row_key for entry in entries])

    async def remove_keys(self, row_keys: Sequence[str]) -> None:
        await delete_rows(self._table, self._partition, row_keys)
