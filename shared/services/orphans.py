"""The orphan sweep: parked events whose recheck is due, looked at again by the reconcile timer.

A send that learns a provider id re-matches that id's parked statuses itself (through the placeholder,
`correlation`); the sweep catches what a crash between the two left behind, and gives up the rest once
they have waited the whole orphan window. The work is O(due entries), never O(parked): each parked
event is looked at about seven times in its 24 hours, at doubling intervals.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from shared.adapters.tables import TableStore
from shared.clock import iso, parse_iso
from shared.ledger import Ledger
from shared.models import Channel
from shared.schema import PARTITION_FILTER, OrphanRow
from shared.services.correlation import Correlation
from shared.services.due import DueEntry, DueKind
from shared.services.events import ORPHAN_RECHECK, EventService

# How long a parked event may wait for its message before it is given up and counted.
ORPHAN_WINDOW = timedelta(hours=24)
RECHECK_CONCURRENCY = 16


class OrphanSweep:
    def __init__(self, events: EventService, ledger: Ledger, correlation: Correlation, orphans: TableStore) -> None:
        self._events = events
        self._ledger = ledger
        self._correlation = correlation
        self._orphans = orphans

    async def run(self, now: datetime, limit: int) -> tuple[int, int]:
        """Look again at (at most `limit`) parked events whose recheck is due: re-match those whose
        provider id has become known, give up those parked longer than the window, schedule the next
        look at the rest. Returns (matched, given up)."""
        gate = asyncio.Semaphore(RECHECK_CONCURRENCY)

        async def one(entry: DueEntry) -> tuple[int, int]:
            async with gate:
                return await self._recheck(entry, now)

        due = await self._events.orphans_due.due(now, limit)
        results = await asyncio.gather(*(one(entry) for entry in due))
        return sum(m for m, _ in results), sum(g for _, g in results)

    async def _recheck(self, entry: DueEntry, now: datetime) -> tuple[int, int]:
        provider_message_id, channel, parked_at = entry.message_id.rsplit("|", 2)
        matched = given_up = 0
        if await self._known(provider_message_id, Channel(channel)):
            matched = await self._events.rematch(provider_message_id)
        if not matched and parked_at < iso(now - ORPHAN_WINDOW):
            given_up = await self._give_up(provider_message_id, now)
        elif not matched:
            parked = parse_iso(parked_at)
            waited = max(now - parked, ORPHAN_RECHECK)  # doubling: 15 min, 30, 60, ... then the window's end
            next_look = min(now + waited, parked + ORPHAN_WINDOW)
            await self._events.orphans_due.add(entry.message_id, DueKind.ORPHAN, next_look)
        await self._events.orphans_due.remove(entry)
        return matched, given_up

    async def _known(self, provider_message_id: str, channel: Channel) -> bool:
        """Has a send learnt this provider id (its index row), or is it one of our ids (email)?"""
        if channel == Channel.EMAIL and await self._ledger.get(provider_message_id) is not None:
            return True
        return await self._correlation.message_of(provider_message_id) is not None

    async def _give_up(self, provider_message_id: str, now: datetime) -> int:
        """Drop this id's events parked longer than the window (later ones have their own entries)."""
        cutoff = iso(now - ORPHAN_WINDOW)
        query = self._orphans.query(PARTITION_FILTER, {"pk": provider_message_id})
        rows = [OrphanRow.from_entity(r) async for r in query]
        stale = [r.key for r in rows if r.parked_at < cutoff]
        for row_key in stale:
            await self._orphans.delete(provider_message_id, row_key)
        if len(stale) == len(rows):  # none left waiting on the placeholder
            await self._correlation.drop_placeholder(provider_message_id)
        return len(stale)  # counted in the reconcile summary
