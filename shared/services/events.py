"""Record ACS events idempotently and in any order (design §4.3), behind `record_event`.

The recipe for one event:
1. Trust boundary: a topic that is not a configured ACS resource, or an unknown event type, is
   ignored and counted; a malformed event is recorded as rejected with its reason (`rejections`).
   Bad input never raises (Event Grid would retry it for 24 hours); only storage failures do.
2. Normalise (either schema, any casing: `events_model`). Inbound messages go to `inbound`.
3. A bounce suppresses its address first (idempotently, keyed by the event).
4. Match the ledger row: SMS by tag, email by operation id, else by provider id (`correlation`).
5. No match yet: park it as an orphan; the sender (through the placeholder) or the orphan sweep
   (`orphans`) re-matches it later.
6. Match: one entity-group transaction inserts the event row under a deterministic key (a duplicate
   fails the insert and is counted) and advances the status by the monotonic `projection`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.adapters.tables import TableStore
from shared.clock import iso, parse_iso
from shared.errors import Conflict, MalformedEvent, PermanentError, ValidationFailed
from shared.events_model import (
    AcsEvent,
    EventKind,
    envelope_from_dict,
    event_from_json,
    event_to_json,
    normalise,
    topic_of,
)
from shared.ledger import Ledger, delivery_latency_ms
from shared.models import REACHED, Channel, Status
from shared.observability import count, emit, emit_warning, log_context
from shared.privacy import acs_address
from shared.schema import PARTITION_FILTER, LedgerRow, OrphanRow, event_entity
from shared.services.consent import (
    ALL_SENDERS,
    ConsentService,
    ConsentState,
)
from shared.services.correlation import INDEXED_AFTER_SEND, Correlation
from shared.services.due import DueIndex, DueKind
from shared.services.inbound import InboundRecorder
from shared.services.rejections import EventRejections, event_type_of
from shared.settings import Settings
from shared.status import TIME_RANKED, report_wins

log = logging.getLogger(__name__)

# When a parked event is first looked at again (a send still in flight has learnt its id by then).
ORPHAN_RECHECK = timedelta(minutes=15)
ORPHANS_DUE_PARTITION = "~due"
# Events of one batch worked on together: enough to keep storage busy (Azure Storage answers in
# milliseconds; more in flight only queue in the connection pool), few enough to bound memory.
MAX_EVENTS_IN_FLIGHT = 64


class EventOutcome(StrEnum):
    RECORDED = "recorded"
    DUPLICATE = "duplicate"
    ORPHANED = "orphaned"
    IGNORED = "ignored"
    REJECTED = "rejected"
    INBOUND = "inbound"


def projection(row: LedgerRow, event: AcsEvent, now: datetime) -> LedgerRow | None:
    """The row as a report leaves it, or None when the report changes nothing. Statuses only move
    forward (`shared.status`); a later report of the row's own status moves its status time on, which
    the Delivered-or-Failed tie-break compares; the delivery latency is measured to the earliest report
    that the message arrived, whatever order they come in."""
    if event.status is None:
        return None
    changes = _moved(row, event, now)
    latency = _earliest_latency(row, event)
    if latency is not None:
        changes["delivery_latency_ms"] = latency
    return replace(row, **changes) if changes else None


def _moved(row: LedgerRow, event: AcsEvent, now: datetime) -> dict[str, Any]:
    """The attributes a report changes by its status (none when it does not win)."""
    assert event.status is not None
    if event.status == row.status and event.status in TIME_RANKED and event.event_time > row.status_time:
        return {"status_event_time": event.event_time, "updated_at": iso(now)}
    if not report_wins(row.status, row.status_time, event.status, event.event_time):
        return {}
    moved: dict[str, Any] = {
        "status": event.status,
        "times": {**row.times, event.status: event.event_time},
        "status_event_time": event.event_time,
        "updated_at": iso(now),
        "reason": event.detail or row.reason,
    }
    if not row.provider_message_id:
        moved["provider_message_id"] = event.provider_message_id
    return moved


def _earliest_latency(row: LedgerRow, event: AcsEvent) -> float | None:
    """A new, shorter delivery latency measured to this report, if it is one that the message arrived."""
    if event.status not in REACHED or not row.sent_at:
        return None
    latency = delivery_latency_ms(row.sent_at, event.event_time)
    if row.delivery_latency_ms is not None and row.delivery_latency_ms <= latency:
        return None
    return latency


class EventService:
    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        correlation: Correlation,
        orphans: TableStore,
        inbound: InboundRecorder,
        consent: ConsentService,
        rejections: EventRejections,
        clock: Callable[[], datetime],
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self.correlation = correlation
        self._orphans = orphans
        self._inbound = inbound
        self._consent = consent
        self._rejections = rejections
        self._now = clock
        # Parked events are found through their own due-time index, in the orphans table, so that
        # reconciliation reads only those due now: never all orphans, whatever their number.
        self.orphans_due = DueIndex(orphans, ORPHANS_DUE_PARTITION)
        self._in_flight = asyncio.Semaphore(MAX_EVENTS_IN_FLIGHT)

    async def record(self, raw: Mapping[str, Any]) -> EventOutcome:
        """Record one Event Grid or CloudEvents event (a dict as delivered). Bad input is recorded as
        rejected and acknowledged; only a storage outage raises (Event Grid then delivers it again).

        The host invokes the function once per event of a batch, all at once, and a batch may hold
        5,000 events: at most MAX_EVENTS_IN_FLIGHT are worked on together in this process, so a
        batch's memory is that of its waiting coroutines, not of 5,000 storage requests in flight."""
        async with self._in_flight:
            return await self._record(raw)

    async def _record(self, raw: Mapping[str, Any]) -> EventOutcome:
        topic = topic_of(raw) if isinstance(raw, Mapping) else ""
        if topic.lower() not in self._settings.acs_resource_ids:
            return self._ignore("untrusted-topic", "event from an untrusted topic ignored", raw)
        try:
            event = normalise(envelope_from_dict(raw, self._now()))
        except MalformedEvent as exc:
            return await self._reject(raw, str(exc))
        if event is None:
            return self._ignore("unknown-type", "unhandled event type ignored", raw)
        try:
            if event.kind == EventKind.INBOUND:
                return EventOutcome.INBOUND if await self._inbound.record(event) else EventOutcome.DUPLICATE
            return await self.apply(event)
        except PermanentError as exc:  # storage refused this event's values: record it, never retry for 24 h
            return await self._reject(raw, f"could not store the event: {exc}")

    def _ignore(self, reason: str, text: str, raw: Any) -> EventOutcome:
        event_type = event_type_of(raw)
        log_event = emit_warning if reason == "untrusted-topic" else emit
        log_event(log, "event.ignored", text, event_type=event_type, reason=reason)
        count(log, "events_ignored", reason=reason)
        return EventOutcome.IGNORED

    async def _reject(self, raw: Any, reason: str) -> EventOutcome:
        await self._rejections.record(raw, reason)
        return EventOutcome.REJECTED

    async def apply(self, event: AcsEvent) -> EventOutcome:
        """Match and record a report or engagement event (also used to re-match orphans).

        A bounce suppresses its address first, and idempotently: if anything fails after it, Event
        Grid's redelivery finds the report recorded (a duplicate) and the suppression already done."""
        with log_context(channel=event.channel.value, event_type=event.event_type):
            return await self._apply(event)

    async def _apply(self, event: AcsEvent) -> EventOutcome:
        if event.suppress_recipient:
            await self._suppress(event)
        message_id = await self.match(event)
        if message_id is None:
            message_id = await self.correlation.wait_for_send(event.provider_message_id, event.channel)
        if message_id is None:
            return await self._park(event)
        return await self._transact(message_id, event)

    async def _suppress(self, event: AcsEvent) -> None:
        try:
            address = acs_address(Channel.EMAIL, event.recipient or "", "data.recipient")
        except ValidationFailed:
            # Refused loudly: a hash of this value would match no send. The report itself is still recorded.
            refused = json.loads(event_to_json(event))
            await self._rejections.record(refused, "suppression refused: data.recipient is not an email address")
            return
        await self._consent.set_state(
            Channel.EMAIL,
            address,
            ALL_SENDERS,
            ConsentState.SUPPRESSED,
            reason=event.raw_status.lower(),
            actor="acs",
            now=parse_iso(event.event_time),
            change_id=event.key,
        )

    async def match(self, event: AcsEvent) -> str | None:
        """The matching message id. SMS reports carry our id as their tag; an email's operation id is
        our id when the id is a GUID; anything else goes through the provider-id index."""
        direct = event.tag or (event.provider_message_id if event.channel == Channel.EMAIL else None)
        # Read slim: the projection that follows decides on these columns, from the cache this read fills.
        if direct and (self._ledger.hint(direct) or await self._ledger.get(direct, slim=True)) is not None:
            return direct
        return await self.correlation.message_of(event.provider_message_id)

    async def rematch(self, provider_message_id: str) -> int:
        """Re-apply the orphans of one provider id; returns how many found their message."""
        matched = 0
        rows = [r async for r in self._orphans.query(PARTITION_FILTER, {"pk": provider_message_id})]
        for orphan in map(OrphanRow.from_entity, rows):
            event = event_from_json(orphan.event_json)
            if await self.match(event) is None:
                continue
            await self.apply(event)
            await self._orphans.delete(orphan.provider_message_id, orphan.key)
            matched += 1
        return matched

    async def _park(self, event: AcsEvent) -> EventOutcome:
        parked_at = self._now()
        try:
            orphan = OrphanRow(
                event.provider_message_id, event.key, event_to_json(event), iso(parked_at), event.channel
            )
            await self._orphans.insert(orphan.to_entity())
        except Conflict:
            return EventOutcome.DUPLICATE
        # The entry names the parked time too, so a recheck knows when to give up without reading.
        entry = f"{event.provider_message_id}|{event.channel.value}|{iso(parked_at)}"
        await self.orphans_due.add(entry, DueKind.ORPHAN, parked_at + ORPHAN_RECHECK)
        if event.channel in INDEXED_AFTER_SEND and await self._meet_the_sender(event):
            return EventOutcome.RECORDED
        parked = "event parked until its message is known"
        emit(log, "event.orphaned", parked, provider_message_id=event.provider_message_id)
        count(log, "events_orphaned", channel=event.channel.value)
        return EventOutcome.ORPHANED

    async def _meet_the_sender(self, event: AcsEvent) -> bool:
        """If the sender indexed this id meanwhile (our placeholder met its row), re-match now; else the
        sender meets our placeholder later and re-matches. True if this status was applied."""
        if await self.correlation.leave_placeholder(event.provider_message_id, event.channel):
            return False
        return await self.match(event) is not None and await self.rematch(event.provider_message_id) > 0

    async def _transact(self, message_id: str, event: AcsEvent) -> EventOutcome:
        """The event row and the projection in one entity-group transaction, guarded by the row's etag."""
        changes: list[tuple[LedgerRow, LedgerRow | None]] = []

        def decide(row: LedgerRow) -> LedgerRow | None:
            changes.append((row, projection(row, event, self._now())))
            return changes[-1][1]

        try:
            history = event_entity(message_id, event, iso(self._now()))
            row = await self._ledger.change(message_id, decide, alongside=history, slim=True)
        except Conflict:
            count(log, "events_duplicate", channel=event.channel.value)
            emit(log, "event.duplicate", "duplicate event", message_id=message_id)
            return EventOutcome.DUPLICATE
        if row is None:
            return await self._park(event)
        _log_recorded(message_id, event, changes[-1])
        return EventOutcome.RECORDED


def _log_recorded(message_id: str, event: AcsEvent, change: tuple[LedgerRow, LedgerRow | None]) -> None:
    before, after = change
    status = after.status.value if after is not None else None
    latency = after.delivery_latency_ms if after is not None and before.delivery_latency_ms is None else None
    emit(log, "event.recorded", "event recorded", message_id=message_id, status=status, latency_ms=latency)
    count(log, "events_recorded", channel=event.channel.value)
    if latency is not None:
        count(log, "delivery_latency_ms", latency, channel=event.channel.value, status=status)
    if event.kind == EventKind.ENGAGEMENT:
        count(log, "engagement", channel=event.channel.value, reason=event.detail)
    elif status in (Status.DELIVERED.value, Status.FAILED.value):
        count(log, "delivered" if status == Status.DELIVERED.value else "failed", channel=event.channel.value)
