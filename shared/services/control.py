"""The incident switch: pause and resume a channel or a sender identity.

Why a table and a short cache: every worker must see a pause within a second, without a storage
read per message. Held messages are re-scheduled, never lost and never sent while paused.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime

from shared.adapters.tables import TableStore
from shared.clock import iso
from shared.schema import PARTITION_FILTER, PAUSE_PARTITION, pause_entity, row_key_of
from shared.services.audit import AuditLog


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
        self._loading: asyncio.Future[None] | None = None
        self._changes = 0  # pauses and resumes made by this instance

    def _fresh(self) -> bool:
        return self._loaded_at is not None and self._clock() - self._loaded_at < self._cache_seconds

    async def paused_targets(self) -> frozenset[str]:
        if self._fresh():
            return self._paused
        if self._loading is None or self._loading.done():
            # One read refreshes the cache for every caller: when it expires under load, the sends in
            # flight would otherwise each read the same row at once.
            self._loading = asyncio.ensure_future(self._load())
        await asyncio.shield(self._loading)  # a caller that gives up leaves the read to the others
        return self._paused

    async def _load(self) -> None:
        started, changes = self._clock(), self._changes
        rows = self._table.query(PARTITION_FILTER, {"pk": PAUSE_PARTITION})
        self._paused = frozenset([row_key_of(row) async for row in rows])
        # A pause or resume made here during the read may be missing from it: then read again next time.
        self._loaded_at = started if changes == self._changes else None

    def _forget(self) -> None:
        """This instance changed the switch: the next check reads it, and waits for no older read."""
        self._loaded_at, self._loading, self._changes = None, None, self._changes + 1

    async def is_paused(self, channel: str, sender: str) -> bool:
        targets = await self.paused_targets()
        return channel in targets or sender in targets

    async def pause(self, target: str, *, actor: str, reason: str, now: datetime) -> None:
        await self._table.upsert(pause_entity(target, actor, reason, iso(now)))
        self._forget()
        await self._audit.record(actor=actor, action="pause", subject=target, reason=reason, now=now)

    async def resume(self, target: str, *, actor: str, reason: str, now: datetime) -> None:
        await self._table.delete(PAUSE_PARTITION, target)
        self._forget()
        await self._audit.record(actor=actor, action="resume", subject=target, reason=reason, now=now)
