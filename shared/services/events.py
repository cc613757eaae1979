"""Record ACS events idempotently and in any order (design §4.3), behind `record_event`.

The recipe for one event:
1. Trust boundary: a topic that is not a configured ACS resource, or an unknown event type, is
   ignored and counted; a malformed event is recorded as rejected with its reason. Bad input never
   raises (Event Grid would retry it for 24 hours); only storage failures do.
2. Normalise (either schema, any casing) and match the ledger row: SMS by tag, else by provider id.
3. No match yet: park it as an orphan; the send path and reconciliation re-match it later.
4. Match: one entity-group transaction inserts the event row under a deterministic key (a duplicate
   fails the insert and is counted) and advances the status by the monotonic projection.
5. Inbound SMS keywords change consent; email bounces and suppressions feed the suppression list.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.adapters.tables import Op, TableStore
from shared.cache import Lru
from shared.clock import iso, parse_iso
from shared.errors import Conflict, EtagMismatch, MalformedEvent, PermanentError, ValidationFailed
from shared.events_model import (
    AcsEvent,
    EventKind,
    envelope_from_dict,
    lower_case_keys,
    normalise,
    stable_json,
    topic_of,
)
from shared.ledger import MAX_RACE_RETRIES, Ledger, LedgerRow, delivery_latency_ms
from shared.models import REACHED, Channel, Status
from shared.observability import count, emit, emit_warning
from shared.privacy import acs_address, address_hash, mask
from shared.services.consent import (
    ALL_SENDERS,
    OPT_IN_KEYWORDS,
    OPT_OUT_KEYWORDS,
    ConsentService,
    ConsentState,
    keyword_of,
)
from shared.services.due import DueEntry, DueIndex, DueKind
from shared.settings import Settings
from shared.status import report_wins
from shared.tables import event_row_key, ledger_row_key, provider_id_keys, split_payload

log = logging.getLogger(__name__)
REJECTED_PARTITION = "rejected-events"
# Payload characters kept with a rejected event: 12 properties of 30,000 UTF-16 units stay well under
# the 1 MiB a table entity may hold (an Event Grid event is at most 1 MB; larger ones are cut, and say so).
MAX_REJECTED_PAYLOAD = 360_000


class EventOutcome(StrEnum):
    RECORDED = "recorded"
    DUPLICATE = "duplicate"
    ORPHANED = "orphaned"
    IGNORED = "ignored"
    REJECTED = "rejected"
    INBOUND = "inbound"


@dataclass(frozen=True)
class Tables:
    messages: TableStore
    provider_ids: TableStore
    orphans: TableStore
    inbound: TableStore


# Channels whose provider ids the sender indexes once ACS answers: an unmatched report of theirs leaves
# a placeholder where that index row will be written, so that the sender re-matches it.
INDEXED_AFTER_SEND = frozenset({Channel.SMS, Channel.WHATSAPP})

# When a parked event is first looked at again (a send still in flight has learnt its id by then), and
# how long it may wait for its message before it is given up and counted.
ORPHAN_RECHECK = timedelta(minutes=15)
ORPHAN_WINDOW = timedelta(hours=24)
ORPHANS_DUE_PARTITION = "~due"
RECHECK_CONCURRENCY = 16
# Events of one batch worked on together: enough to keep storage busy (Azure Storage answers in
# milliseconds; more in flight only queue in the connection pool), few enough to bound memory.
MAX_EVENTS_IN_FLIGHT = 64

# How long a WhatsApp status for an unknown id waits for a send still in flight here to learn its id.
WAIT_FOR_SEND_SECONDS = 1.0


class EventService:
    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        tables: Tables,
        consent: ConsentService,
        clock: Callable[[], datetime],
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._t = tables
        self._consent = consent
        self._now = clock
        self._provider_hints: Lru[str, str] = Lru(20_000)
        self._whatsapp_sends = 0
        self._id_waiters: dict[str, asyncio.Future[str]] = {}
        # Parked events are found through their own due-time index, in the orphans table, so that
        # reconciliation reads only those due now: never all orphans, whatever their number.
        self._orphans_due = DueIndex(tables.orphans, ORPHANS_DUE_PARTITION)
        self._in_flight = asyncio.Semaphore(MAX_EVENTS_IN_FLIGHT)

    def remember_provider_id(self, provider_message_id: str, message_id: str) -> None:
        """The sender tells us the provider id it just indexed, so its report needs no index read."""
        self._provider_hints.put(provider_message_id, message_id)
        waiter = self._id_waiters.pop(provider_message_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(message_id)

    @contextlib.contextmanager
    def whatsapp_send_in_flight(self) -> Iterator[None]:
        """A WhatsApp send is waiting for ACS's answer in this instance. Its statuses can arrive before
        that answer tells us their id; while sends are in flight, such a status waits briefly for it
        instead of being parked and re-matched through storage."""
        self._whatsapp_sends += 1
        try:
            yield
        finally:
            self._whatsapp_sends -= 1

    async def _wait_for_send(self, event: AcsEvent) -> str | None:
        """The message id of an unknown WhatsApp status, if a send in flight here learns it in time."""
        if event.channel != Channel.WHATSAPP:
            return None
        # The send may have learnt the id while the index was being read: no wait, and no parking.
        learnt = self._provider_hints.get(event.provider_message_id)
        if learnt is not None or not self._whatsapp_sends:
            return learnt
        waiter = self._id_waiters.get(event.provider_message_id)
        if waiter is None:
            waiter = self._id_waiters[event.provider_message_id] = asyncio.get_running_loop().create_future()
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), WAIT_FOR_SEND_SECONDS)
        except TimeoutError:
            if self._id_waiters.get(event.provider_message_id) is waiter:
                del self._id_waiters[event.provider_message_id]
            return None

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
                return await self._inbound(event)
            return await self.apply(event)
        except PermanentError as exc:  # storage refused this event's values: record it, never retry for 24 h
            return await self._reject(raw, f"could not store the event: {exc}")

    def _ignore(self, reason: str, text: str, raw: Any) -> EventOutcome:
        keys = lower_case_keys(raw) if isinstance(raw, Mapping) else {}
        event_type = _storable(str(keys.get("eventtype") or keys.get("type") or ""))[:200]
        log_event = emit_warning if reason == "untrusted-topic" else emit
        log_event(log, "event.ignored", f"{text} event_type=%s", event_type, event_type=event_type, reason=reason)
        count(log, "events_ignored", reason=reason)
        return EventOutcome.IGNORED

    async def apply(self, event: AcsEvent) -> EventOutcome:
        """Match and record a report or engagement event (also used to re-match orphans).

        A bounce suppresses its address first, and idempotently: if anything fails after it, Event
        Grid's redelivery finds the report recorded (a duplicate) and the suppression already done."""
        if event.suppress_recipient:
            await self._suppress(event)
        found = await self._match_row(event)
        if found is None and (waited := await self._wait_for_send(event)) is not None:
            found = waited, self._ledger.hint(waited)
        if found is None:
            return await self._park(event)
        return await self._transact(found[0], event, found[1])

    async def _suppress(self, event: AcsEvent) -> None:
        try:
            address = acs_address(Channel.EMAIL, event.recipient or "", "data.recipient")
        except ValidationFailed:
            # Refused loudly: a hash of this value would match no send. The report itself is still recorded.
            await self._reject(_event_record(event), "suppression refused: data.recipient is not an email address")
            return
        await self._consent.set_state(
            Channel.EMAIL,
            address,
            ALL_SENDERS,
            ConsentState.SUPPRESSED,
            reason=event.raw_status.lower(),
            actor="acs",
            now=parse_iso(event.event_time),
            change_id=_event_key(event),
        )

    async def recheck_orphans(self, now: datetime, limit: int) -> tuple[int, int]:
        """Look again at the parked events whose recheck is due (at most `limit`): re-match those whose
        provider id has become known, give up those parked longer than the orphan window, schedule the
        next look at the rest. Returns (matched, given up). The work is O(due entries), never O(parked):
        each parked event is looked at about seven times in its 24 hours, at doubling intervals. (A send
        that learns the id re-matches its parked events itself, through the placeholder; these looks
        catch what a crash between the two left behind, and give up the rest.)"""
        gate = asyncio.Semaphore(RECHECK_CONCURRENCY)

        async def one(entry: DueEntry) -> tuple[int, int]:
            async with gate:
                return await self._recheck(entry, now)

        results = await asyncio.gather(*(one(entry) for entry in await self._orphans_due.due(now, limit)))
        return sum(m for m, _ in results), sum(g for _, g in results)

    async def _recheck(self, entry: DueEntry, now: datetime) -> tuple[int, int]:
        provider_message_id, channel, parked_at = entry.message_id.rsplit("|", 2)
        matched = given_up = 0
        if await self._known(provider_message_id, Channel(channel)):
            matched = await self.rematch(provider_message_id)
        if not matched and parked_at < iso(now - ORPHAN_WINDOW):
            given_up = await self._give_up(provider_message_id, now)
        elif not matched:
            parked = parse_iso(parked_at)
            waited = max(now - parked, ORPHAN_RECHECK)  # doubling: 15 min, 30, 60, ... then the window's end
            await self._orphans_due.add(entry.message_id, DueKind.ORPHAN, min(now + waited, parked + ORPHAN_WINDOW))
        await self._orphans_due.remove(entry)
        return matched, given_up

    async def _known(self, provider_message_id: str, channel: Channel) -> bool:
        """Has a send learnt this provider id (its index row), or is it one of our ids (email)?"""
        if channel == Channel.EMAIL and await self._ledger.get(provider_message_id) is not None:
            return True
        stored = await self._t.provider_ids.get(*provider_id_keys(provider_message_id))
        return stored is not None and bool(stored.entity.get("MessageId"))

    async def _give_up(self, provider_message_id: str, now: datetime) -> int:
        """Drop this id's events parked longer than the window (later ones have their own entries)."""
        cutoff = iso(now - ORPHAN_WINDOW)
        rows = [r async for r in self._t.orphans.query("PartitionKey eq @pk", {"pk": provider_message_id})]
        stale = [str(r["RowKey"]) for r in rows if str(r.get("ParkedAt", "")) < cutoff]
        for row_key in stale:
            await self._t.orphans.delete(provider_message_id, row_key)
        if len(stale) == len(rows):
            await self.forget_placeholder(provider_message_id)
        return len(stale)  # counted in the reconcile summary

    async def rematch(self, provider_message_id: str) -> int:
        """Re-apply the orphans of one provider id; returns how many found their message."""
        matched = 0
        rows = [r async for r in self._t.orphans.query("PartitionKey eq @pk", {"pk": provider_message_id})]
        for row in rows:
            event = _event_from_json(str(row["Event"]))
            if await self._match(event) is None:
                continue
            await self.apply(event)
            await self._t.orphans.delete(row["PartitionKey"], row["RowKey"])
            matched += 1
        return matched

    # -- matching ---------------------------------------------------------------------------------

    async def _match(self, event: AcsEvent) -> str | None:
        found = await self._match_row(event)
        return found[0] if found else None

    async def _match_row(self, event: AcsEvent) -> tuple[str, LedgerRow | None] | None:
        """The matching message id, and its ledger row when the match already read it. SMS reports carry
        our id as their tag; an email's operation id is our id when the id is a GUID."""
        direct = event.tag or (event.provider_message_id if event.channel == Channel.EMAIL else None)
        if direct:
            row = self._ledger.hint(direct) or await self._ledger.get(direct)
            if row is not None:
                return direct, row
        known = self._provider_hints.get(event.provider_message_id)
        if known is not None:
            return known, self._ledger.hint(known)
        stored = await self._t.provider_ids.get(*provider_id_keys(event.provider_message_id))
        if stored is None or not stored.entity.get("MessageId"):  # absent, or a parked status's placeholder
            return None
        message_id = str(stored.entity["MessageId"])
        return message_id, self._ledger.hint(message_id)

    async def _meet_the_sender(self, event: AcsEvent) -> bool:
        """Leave a placeholder where the sender (on any instance) will index this SMS or WhatsApp id. If the
        sender writes later, its insert meets the placeholder and it re-matches what is parked; if it
        wrote first, our insert meets its row and we re-match now. True if this status was applied."""
        partition, row_key = provider_id_keys(event.provider_message_id)
        placeholder = {"PartitionKey": partition, "RowKey": row_key, "Channel": event.channel.value}
        try:
            await self._t.provider_ids.insert(placeholder)
        except Conflict:
            return await self._match(event) is not None and await self.rematch(event.provider_message_id) > 0
        return False

    async def forget_placeholder(self, provider_message_id: str) -> None:
        """After its parked statuses are given up: drop the placeholder no sender ever filled in."""
        still_parked = self._t.orphans.query("PartitionKey eq @pk", {"pk": provider_message_id}, select=["RowKey"])
        async for _ in still_parked:  # one is enough to keep it
            return
        keys = provider_id_keys(provider_message_id)
        stored = await self._t.provider_ids.get(*keys)
        if stored is not None and not stored.entity.get("MessageId"):
            await self._t.provider_ids.delete(*keys)

    async def _park(self, event: AcsEvent) -> EventOutcome:
        key = _event_key(event)
        parked_at = self._now()
        try:
            await self._t.orphans.insert(
                {
                    "PartitionKey": event.provider_message_id,
                    "RowKey": key,
                    "Event": _event_to_json(event),
                    "ParkedAt": iso(parked_at),
                    "Channel": event.channel.value,
                }
            )
        except Conflict:
            return EventOutcome.DUPLICATE
        # The entry names the parked time too, so a recheck knows when to give up without reading.
        entry = f"{event.provider_message_id}|{event.channel.value}|{iso(parked_at)}"
        await self._orphans_due.add(entry, DueKind.ORPHAN, parked_at + ORPHAN_RECHECK)
        if event.channel in INDEXED_AFTER_SEND and await self._meet_the_sender(event):
            return EventOutcome.RECORDED
        emit(
            log,
            "event.orphaned",
            "event parked until its message is known provider_message_id=%s",
            event.provider_message_id,
            provider_message_id=event.provider_message_id,
            channel=event.channel.value,
            event_type=event.event_type,
        )
        count(log, "events_orphaned", channel=event.channel.value)
        return EventOutcome.ORPHANED

    # -- the transaction --------------------------------------------------------------------------

    async def _transact(self, message_id: str, event: AcsEvent, first_read: LedgerRow | None) -> EventOutcome:
        event_row = {
            "PartitionKey": message_id,
            "RowKey": _event_key(event),
            "Kind": event.kind.value,
            "EventType": event.event_type,
            "RawStatus": event.raw_status,
            "Status": event.status.value if event.status else None,
            "EventTime": event.event_time,
            "ProviderMessageId": event.provider_message_id,
            "Detail": event.detail,
            "ReceivedAt": iso(self._now()),
        }
        row = first_read
        for _ in range(MAX_RACE_RETRIES):
            async with self._ledger.writing(message_id):
                row = self._ledger.hint(message_id) or row or await self._ledger.get(message_id)
                outcome = None if row is None else await self._record_once(message_id, event, event_row, row)
            if row is None:
                return await self._park(event)
            if outcome is not None:
                return outcome
            self._ledger.forget(message_id)  # another instance wrote the row: read it again
            row = None
        raise EtagMismatch(f"ledger row {message_id} kept changing")

    async def _record_once(
        self, message_id: str, event: AcsEvent, event_row: dict[str, Any], row: LedgerRow
    ) -> EventOutcome | None:
        """One entity-group transaction: the event row, and the projection guarded by `row`'s etag.
        None when the etag no longer holds."""
        fields = self._projection(row, event)
        try:
            if fields:
                ledger_key = {"PartitionKey": message_id, "RowKey": ledger_row_key(message_id)}
                merge = Op("merge", {**ledger_key, **fields}, etag=row.etag)
                etags = await self._t.messages.transact([Op("create", event_row), merge])
                # Keep the new etag, so the next report of this message needs no read either.
                self._ledger.remember_write(row, fields, etags[-1] if len(etags) == 2 else "")
            else:
                # Nothing changes in the ledger: a plain insert, without the multipart body of a batch,
                # which costs the SDK several times a single request.
                await self._t.messages.insert(event_row)
        except Conflict:
            count(log, "events_duplicate", channel=event.channel.value)
            emit(
                log,
                "event.duplicate",
                "duplicate event message_id=%s",
                message_id,
                message_id=message_id,
                channel=event.channel.value,
                event_type=event.event_type,
            )
            return EventOutcome.DUPLICATE
        except EtagMismatch:
            return None
        self._log_recorded(message_id, event, fields)
        return EventOutcome.RECORDED

    def _projection(self, row: LedgerRow, event: AcsEvent) -> dict[str, Any] | None:
        if event.status is None or not report_wins(row.status, row.status_time, event.status, event.event_time):
            return None
        fields: dict[str, Any] = {
            "Status": event.status.value,
            f"{event.status.value}At": event.event_time,
            "StatusEventTime": event.event_time,
            "UpdatedAt": iso(self._now()),
            "Reason": event.detail or None,
        }
        if not row.get("ProviderMessageId"):
            fields["ProviderMessageId"] = event.provider_message_id
        sent_at = row.get("SentAt")
        if event.status in REACHED and sent_at and row.get("DeliveryLatencyMs") is None:
            fields["DeliveryLatencyMs"] = delivery_latency_ms(str(sent_at), event.event_time)
        return fields

    def _log_recorded(self, message_id: str, event: AcsEvent, fields: Mapping[str, Any] | None) -> None:
        status = fields.get("Status") if fields else None
        emit(
            log,
            "event.recorded",
            "event recorded message_id=%s status=%s",
            message_id,
            status or "-",
            message_id=message_id,
            channel=event.channel.value,
            event_type=event.event_type,
            status=status,
            latency_ms=fields.get("DeliveryLatencyMs") if fields else None,
        )
        count(log, "events_recorded", channel=event.channel.value)
        if fields and fields.get("DeliveryLatencyMs") is not None:
            count(log, "delivery_latency_ms", fields["DeliveryLatencyMs"], channel=event.channel.value, status=status)
        if event.kind == EventKind.ENGAGEMENT:
            count(log, "engagement", channel=event.channel.value, reason=event.detail)
        elif status in (Status.DELIVERED.value, Status.FAILED.value):
            count(log, "delivered" if status == Status.DELIVERED.value else "failed", channel=event.channel.value)

    # -- inbound and rejects ------------------------------------------------------------------

    async def _inbound(self, event: AcsEvent) -> EventOutcome:
        """Consent first, then the inbound row: the row marks the event done, so a failure between the
        two leaves no row and the redelivery applies the (idempotent) consent change again."""
        sender = event.sender or ""
        keyword = keyword_of(event.text or "") if event.channel == Channel.SMS else None
        if keyword in OPT_OUT_KEYWORDS or keyword in OPT_IN_KEYWORDS:
            await self._apply_keyword(event, keyword)
        try:
            await self._t.inbound.insert(
                {
                    "PartitionKey": f"{event.channel.value}|{address_hash(self._settings.consent_hash_key, sender)}",
                    "RowKey": _event_key(event),
                    "From": mask(sender),
                    "To": event.recipient,
                    "Keyword": keyword,
                    "MessageType": event.detail,
                    "ReceivedAt": event.event_time,
                    "ProviderMessageId": event.provider_message_id,
                }
            )
        except Conflict:
            return EventOutcome.DUPLICATE
        emit(
            log,
            "event.recorded",
            "inbound recorded channel=%s from=%s",
            event.channel,
            mask(sender),
            channel=event.channel.value,
            event_type=event.event_type,
            recipient=mask(sender),
        )
        return EventOutcome.INBOUND

    def _sender_key(self, our_number: str) -> str:
        """The sender identity sends check consent against: the configured one this number is."""
        for configured in self._settings.senders.get(Channel.SMS, ()):
            with contextlib.suppress(ValidationFailed):
                if acs_address(Channel.SMS, configured) == our_number:
                    return configured
        return our_number

    async def _apply_keyword(self, event: AcsEvent, keyword: str) -> None:
        opt_out = keyword in OPT_OUT_KEYWORDS
        target = ALL_SENDERS if keyword == "STOPALL" else self._sender_key(event.recipient or "")
        state = ConsentState.OPTED_OUT if opt_out else ConsentState.OPTED_IN
        await self._consent.set_state(
            Channel.SMS,
            event.sender or "",
            target,
            state,
            reason=f"inbound keyword {keyword}",
            actor="recipient",
            now=parse_iso(event.event_time),
            change_id=_event_key(event),
        )
        emit(
            log,
            "consent.changed",
            "consent %s by keyword channel=sms",
            state,
            channel="sms",
            status=state.value,
            recipient=mask(event.sender or ""),
            sender=mask(target) if target != ALL_SENDERS else target,
        )

    async def _reject(self, raw: Any, reason: str) -> EventOutcome:
        """Record a malformed event once, with its payload, under a key derived from its content: every
        delivery of the same event finds the same row."""
        payload = stable_json(raw)
        digest = hashlib.sha256(payload.encode()).hexdigest()[:40]
        keys = lower_case_keys(raw) if isinstance(raw, Mapping) else {}
        stored = payload[:MAX_REJECTED_PAYLOAD]
        entity = {
            "PartitionKey": REJECTED_PARTITION,
            "RowKey": digest,
            "Reason": _storable(reason)[:1000],
            "EventType": _storable(str(keys.get("eventtype") or keys.get("type") or ""))[:200],
            "EventId": _storable(str(keys.get("id") or ""))[:200],
            "At": iso(self._now()),
            "PayloadChars": len(payload),
            "PayloadTruncated": len(stored) < len(payload),
            **split_payload(stored),
        }
        try:
            await self._t.orphans.insert(entity)
        except Conflict:
            return EventOutcome.REJECTED  # an earlier delivery recorded it
        emit_warning(log, "event.rejected", "malformed event rejected reason=%s", reason, reason=reason[:200])
        count(log, "events_ignored", reason="malformed")
        return EventOutcome.REJECTED


def _event_key(event: AcsEvent) -> str:
    kind = f"{event.kind.value}:{event.detail}" if event.kind == EventKind.ENGAGEMENT else event.kind.value
    return event_row_key(event.provider_message_id, kind, event.raw_status, event.event_time)


def _event_record(event: AcsEvent) -> dict[str, Any]:
    data = asdict(event)
    data["status"] = event.status.value if event.status else None
    return data


def _storable(text: str) -> str:
    """Text a property can hold whatever the event carried (lone surrogates, control characters)."""
    return json.dumps(text, ensure_ascii=True)[1:-1]


def _event_to_json(event: AcsEvent) -> str:
    data = asdict(event)
    data["status"] = event.status.value if event.status else None
    return json.dumps(data)


def _event_from_json(text: str) -> AcsEvent:
    data = json.loads(text)
    data["channel"] = Channel(data["channel"])
    data["kind"] = EventKind(data["kind"])
    data["status"] = Status(data["status"]) if data["status"] else None
    return AcsEvent(**data)
