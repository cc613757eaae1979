"""The incident switch: pause and resume a channel or a sender identity.

Why a table and a short cache: every worker must see a pause within a second, without a storage
read per message. Held messages are re-scheduled, never lost and never sent while paused.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from shared.adapters.tables import TableStore
from shared.ledger import iso
from shared.services.audit import AuditLog

PAUSE_PARTITION = "pause"


class ControlService:
    def __init__(
        self,
        table: TableStore,
        audit: AuditLog,
        cache_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._table = table
        self._audit = audit
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._paused: frozenset[str] = frozenset()
        self._loaded_at: float | None = None

    async def paused_targets(self) -> frozenset[str]:
        now = self._clock()
        if self._loaded_at is None or now - self._loaded_at >= self._cache_seconds:
            rows = self._table.query("PartitionKey eq @pk", {"pk": PAUSE_PARTITION})
            self._paused = frozenset([str(row["RowKey"]) async for row in rows])
            self._loaded_at = now
        return self._paused

    async def is_paused(self, channel: str, sender: str) -> bool:
        targets = await self.paused_targets()
        return channel in targets or sender in targets

    async def pause(self, target: str, *, actor: str, reason: str, now: datetime) -> None:
        await self._table.upsert(
            {"PartitionKey": PAUSE_PARTITION, "RowKey": target, "Actor": actor, "Reason": reason, "At": iso(now)}
        )
        self._loaded_at = None
        await self._audit.record(actor=actor, action="pause", subject=target, reason=reason, now=now)

    async def resume(self, target: str, *, actor: str, reason: str, now: datetime) -> None:
        await self._table.delete(PAUSE_PARTITION, target)
        self._loaded_at = None
        await self._audit.record(actor=actor, action="resume", subject=target, reason=reason, now=now)
