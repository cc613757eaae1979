"""The send pipeline behind the `send_message` queue trigger (design §1 and §4.2).

The recipe, in order:
1. Parse and check the request; bad input is recorded as Rejected with field errors, never retried.
2. Insert the ledger row if absent (Accepted). A row already Sent or terminal: done, no send.
3. Expired → Expired. Paused channel or sender → re-scheduled. Opted out → Suppressed.
4. Rate gate: over the sender's limit → re-scheduled for when a token is free.
5. Claim the row (Accepted → Sending, etag) with the ids that make a resend the same send.
6. Send. Success → Sent. Permanent error → Failed. 429 → claim given back, re-scheduled for
   Retry-After plus jitter (a new queue message, so no dequeue attempt is burnt). Other transient
   errors (5xx, network, Entra ID, 403) → re-scheduled with exponential backoff and jitter
   (`shared.retry`), counted on the row as `Retries`; once the budget is spent, raised, so the host
   retries and finally poisons the message. The claim is given back only when ACS certainly did not
   act on the request (`TransientError.may_have_sent`); otherwise the row stays Sending and the retry
   goes through `_recover`, which resends only what ACS can deduplicate.
A row found in Sending means an earlier attempt died or timed out mid-send: see `_recover`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.adapters.acs import SendIds
from shared.adapters.blobs import PayloadStore
from shared.adapters.queues import MAX_PAYLOAD_BYTES, QueueWriter
from shared.adapters.tables import TableStore
from shared.claimcheck import parse_payload_ref, payload_blob_name, reference_body
from shared.clock import iso, parse_iso
from shared.errors import (
    AccessDenied,
    Conflict,
    EtagMismatch,
    FieldError,
    IdReused,
    PermanentError,
    Throttled,
    TransientError,
    ValidationFailed,
)
from shared.ids import content_id, operation_id, repeatability_id
from shared.ledger import Ledger, LedgerRow, delivery_latency_ms, transition_fields
from shared.models import MESSAGE_ID_PATTERN, REACHED, AnyRequest, Channel, DeliveryMode, Status
from shared.observability import count, emit, emit_warning
from shared.privacy import mask
from shared.retry import FORBIDDEN_RETRY
from shared.services.consent import ConsentService
from shared.services.control import ControlService
from shared.services.due import DueIndex, DueKind, schedule_retention
from shared.services.providers import Provider
from shared.services.ratelimit import RateGate
from shared.settings import Settings
from shared.status import TERMINAL, pipeline_may_set
from shared.tables import provider_id_keys, verbatim_payload
from shared.validation import CheckedRequest, check_request, load_json, parse_request

log = logging.getLogger(__name__)

# ACS deduplicates repeatability ids for 5 minutes; stay well inside it.
REPEATABILITY_WINDOW = timedelta(minutes=4)
STUCK_AFTER = timedelta(minutes=15)
PAUSE_RECHECK_SECONDS = 10.0
MAX_INLINE_WAIT = 0.5


class Outcome(StrEnum):
    SENT = "sent"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    SUPPRESSED = "suppressed"
    EXPIRED = "expired"
    FAILED = "failed"
    UNKNOWN = "unknown"
    RESCHEDULED = "rescheduled"
    ID_REUSED = "id-reused"


@dataclass(frozen=True)
class QueueDelivery:
    """What the queue trigger hands over: the decoded body and the queue's own facts."""

    body: bytes
    queue_message_id: str
    dequeue_count: int


def _emit_about(checked: CheckedRequest, event: str, text: str, **dims: object) -> None:
    """A structured record about one request: its id, channel and masked recipient, plus `dims`."""
    recipient = mask(checked.request.to)
    emit(
        log,
        event,
        f"{text} message_id=%s channel=%s recipient=%s",
        checked.message_id,
        checked.channel,
        recipient,
        message_id=checked.message_id,
        channel=checked.channel.value,
        recipient=recipient,
        **dims,
    )


def canonical_payload(request: AnyRequest, message_id: str) -> str:
    return request.model_copy(update={"id": message_id}).model_dump_json(by_alias=True, exclude_none=True)


class SendService:
    def __init__(
        self,
        *,
        settings: Settings,
        ledger: Ledger,
        outbound: QueueWriter,
        provider: Provider,
        consent: ConsentService,
        control: ControlService,
        gate: RateGate,
        due: DueIndex,
        provider_ids: TableStore,
        clock: Callable[[], datetime],
        on_sent: Callable[[str], Awaitable[object]] | None = None,
        retention: DueIndex | None = None,
        remember_provider_id: Callable[[str, str], None] | None = None,
        whatsapp_in_flight: Callable[[], AbstractContextManager[None]] | None = None,
        payloads: PayloadStore | None = None,
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._outbound = outbound
        self._provider = provider
        self._consent = consent
        self._control = control
        self._gate = gate
        self._due = due
        self._provider_ids = provider_ids
        self._now = clock
        self._on_sent = on_sent
        self._retention = retention
        self._remember_provider_id = remember_provider_id
        self._whatsapp_in_flight = whatsapp_in_flight
        self._payloads = payloads

    # -- entry points -------------------------------------------------------------------------

    async def handle(self, delivery: QueueDelivery) -> Outcome:
        """Process one send request from the queue (the whole recipe in the module docstring)."""
        try:
            body = await self._resolve(delivery.body)
        except PermanentError as exc:
            return await self._reject_unparsed(delivery, ValidationFailed([FieldError("payloadRef", str(exc))]))
        delivery = QueueDelivery(body, delivery.queue_message_id, delivery.dequeue_count)
        try:
            request = parse_request(delivery.body)
        except ValidationFailed as exc:
            return await self._reject_unparsed(delivery, exc)
        message_id = request.id or content_id(self._settings.consent_hash_key, delivery.body)
        try:
            checked = check_request(request, self._settings, message_id, self._now())
        except ValidationFailed as exc:
            return await self._reject(message_id, request.channel, exc, delivery.body)
        return await self._first_sight(checked)

    async def _resolve(self, body: bytes) -> bytes:
        """A queue message that references a stored request (claim-check) becomes that request. Only a
        reference of the exact shape the client and the intake write is followed (`parse_payload_ref`),
        and only to the blob it was written for."""
        if b"payloadRef" not in body:  # an escaped key is no shortcut: parse_request refuses the field
            return body
        try:
            ref = parse_payload_ref(body)
        except ValidationFailed as exc:
            raise PermanentError(exc.errors[0].message) from None
        if ref is None:
            return body
        if self._payloads is None:
            raise PermanentError("a payload reference, but no payload store is configured")
        text = await self._payloads.get(ref.name)
        if not ref.holds(text):
            raise PermanentError("the stored payload is not the request this reference was written for")
        return text.encode()

    async def _payload(self, checked: CheckedRequest) -> tuple[str, str | None]:
        """The request as stored: inline text, or (for requests too large for a queue message or a table
        property) the text plus the name of the blob that now holds it."""
        payload = canonical_payload(checked.request, checked.message_id)
        if self._payloads is None or len(payload.encode()) <= MAX_PAYLOAD_BYTES:
            return payload, None
        name = payload_blob_name(checked.message_id, payload)
        await self._payloads.put(name, payload)
        return payload, name

    async def _first_sight(self, checked: CheckedRequest) -> Outcome:
        try:
            return await self._first_sight_of(checked)
        except IdReused as reused:
            return await self.record_reuse(checked, reused, source="queue")

    async def _first_sight_of(self, checked: CheckedRequest) -> Outcome:
        """A request from the queue. When every check passes, inserting its ledger row is also its claim
        (one write instead of an insert and an update); a row that already exists takes the usual path."""
        request = checked.request
        expired = request.expires_at is not None and request.expires_at <= self._now()
        if expired or await self._control.is_paused(checked.channel.value, checked.sender):
            return await self._process(checked, await self.accept(checked, source="queue"))
        decision = await self._consent.check(checked.channel, request.to, checked.sender)
        if not decision.allowed:
            return await self._process(checked, await self.accept(checked, source="queue"))
        if await self._rate_limited(checked):
            return Outcome.RESCHEDULED
        row, created = await self._accept_claimed(checked)
        if created:
            return await self._send(checked, row)
        return await self._process(checked, row, prechecked=True)

    async def _accept_claimed(self, checked: CheckedRequest) -> tuple[LedgerRow, bool]:
        now = self._now()
        payload, ref = await self._payload(checked)
        new_row = self._ledger.new_row(checked, payload, now, "queue", ref)
        new_row |= transition_fields(
            Status.SENDING,
            now,
            Attempts=1,
            Generation=1,
            IdsGeneration=1,
            RepeatabilityId=repeatability_id(checked.message_id, 1),
            FirstSentAt=iso(now),
        )
        row, created = await self._insert_row(checked, new_row, payload)
        if created:
            _emit_about(checked, "message.sending", "accepted and sending", attempt=1)
        return row, created

    async def accept(self, checked: CheckedRequest, source: str) -> LedgerRow:
        """Insert the Accepted row if absent (and its stuck check); return the row as stored."""
        row, _ = await self.accept_new(checked, source)
        return row

    async def accept_new(self, checked: CheckedRequest, source: str) -> tuple[LedgerRow, bool]:
        """`accept`, and whether this call created the row."""
        now = self._now()
        payload, ref = await self._payload(checked)
        new_row = self._ledger.new_row(checked, payload, now, source, ref)
        row, created = await self._insert_row(checked, new_row, payload)
        if created:
            if source != "queue":  # a queued request is redelivered by the queue; an HTTP accept may not be
                await self._due.add(checked.message_id, DueKind.STUCK, now + STUCK_AFTER)
            _emit_about(checked, "message.accepted", "message accepted", status=Status.ACCEPTED.value)
        return row, created

    async def _insert_row(
        self, checked: CheckedRequest, new_row: dict[str, Any], payload: str
    ) -> tuple[LedgerRow, bool]:
        """Insert the row if absent. A Rejected row gives way to a valid request under its id; a row
        holding a different request raises IdReused (the id is the idempotency key: the first request
        under it is the one that counts)."""
        row, created = await self._ledger.accept(new_row)
        if created:
            return row, True
        if row.status == Status.REJECTED:
            return await self._ledger.update(row, {**new_row, "Reason": None, "Errors": None}), True
        if self._ledger.reused_for_another_request(row, payload):
            raise IdReused(checked.message_id, row.get("PayloadRef"), payload)
        return row, False

    async def record_reuse(self, checked: CheckedRequest, reused: IdReused, source: str) -> Outcome:
        """Keep a trace of the refused request in the message's history (when, from where, and its
        digest; not its content, which its producer still has), and drop any text it stored."""
        digest = self._ledger.payload_hash(reused.payload)
        now = iso(self._now())
        with contextlib.suppress(Conflict):  # the same refused request again: already on record
            await self._ledger.record_history(
                checked.message_id,
                {
                    "RowKey": f"conflict|{digest}",
                    "Kind": "conflict",
                    "EventType": "IdReused",
                    "EventTime": now,
                    "ReceivedAt": now,
                    "Source": source,
                    "PayloadHash": digest,
                    "Detail": "a different request arrived under this id; it was not sent",
                },
            )
        ours = payload_blob_name(checked.message_id, reused.payload)
        if self._payloads is not None and ours != reused.stored_payload_ref:
            await self._payloads.delete(ours)  # stored by the producer or by us before the row was read
        emit_warning(
            log,
            "message.id_reused",
            "id already used by a different request, not sent message_id=%s",
            checked.message_id,
            message_id=checked.message_id,
            channel=checked.channel.value,
            reason="id-reused",
        )
        count(log, "id_reused", channel=checked.channel.value)
        return Outcome.ID_REUSED

    async def reschedule(self, checked: CheckedRequest, delay: float) -> None:
        """Put the request back on the queue, visible after `delay` seconds (a fresh dequeue count)."""
        payload, ref = await self._payload(checked)
        body = reference_body(checked.message_id, ref) if ref else payload
        await self._outbound.send(body, delay_seconds=delay)

    # -- the recipe ---------------------------------------------------------------------------

    async def _process(self, checked: CheckedRequest, row: LedgerRow, prechecked: bool = False) -> Outcome:
        """The recipe for a request whose ledger row exists. `prechecked`: consent and the rate gate
        were already passed for this delivery."""
        if row.status in TERMINAL or row.status == Status.SENT:
            return await self._already_handled(checked, row)
        held = await self._expired_or_paused(checked, row)
        if held is not None:
            return held
        request = checked.request
        if not prechecked:
            decision = await self._consent.check(checked.channel, request.to, checked.sender)
            if not decision.allowed:
                await self._finish(row, Status.SUPPRESSED, decision.reason or "no consent")
                count(log, "suppressed", channel=checked.channel.value)
                return Outcome.SUPPRESSED
        if row.status == Status.SENDING:
            return await self._recover(checked, row)
        if not prechecked and await self._rate_limited(checked):
            return Outcome.RESCHEDULED
        try:
            generation = self._generation_to_claim(row)
            row = await self._claim(row, generation=generation, fresh_ids=row.get("IdsGeneration") != generation)
        except EtagMismatch:
            fresh = await self._ledger.get(checked.message_id)
            return await self._process(checked, fresh) if fresh else Outcome.DUPLICATE
        return await self._send(checked, row)

    def _generation_to_claim(self, row: LedgerRow) -> int:
        """The send generation for a claim from Accepted. Its ids are kept while ACS remembers them. Past
        ACS's window the claim moves to the next generation, because ACS rejects a Repeatability-First-Sent
        older than the range it holds ("Repeatability-Result: rejected", Azure REST API guidelines,
        https://github.com/microsoft/api-guidelines/blob/vNext/azure/Guidelines.md#repeatability-of-requests);
        that is safe because a row is Accepted again only when nothing of its generation reached ACS
        (a 429, or a failure that `may_have_sent` says was refused before it was handled)."""
        generation = max(row.generation, 1)
        first_sent = row.get("FirstSentAt")
        if row.get("IdsGeneration") != generation or not first_sent:
            return generation
        expired = self._now() - parse_iso(str(first_sent)) >= REPEATABILITY_WINDOW
        return generation + 1 if expired else generation

    async def _already_handled(self, checked: CheckedRequest, row: LedgerRow) -> Outcome:
        """A redelivered request whose message was sent or ended: nothing is sent again."""
        if row.status == Status.SENT and row.get("SentAt"):
            # The queue redelivered a request that was sent: its first delivery may have died
            # after recording Sent and before scheduling the report deadline.
            await self._schedule_report_deadline(row.message_id, row.channel, str(row.get("SentAt")))
        emit(
            log,
            "message.duplicate_skipped",
            "already handled message_id=%s status=%s",
            checked.message_id,
            row.status,
            message_id=checked.message_id,
            status=row.status.value,
        )
        return Outcome.DUPLICATE

    async def _expired_or_paused(self, checked: CheckedRequest, row: LedgerRow) -> Outcome | None:
        request = checked.request
        if request.expires_at is not None and request.expires_at <= self._now():
            await self._finish(row, Status.EXPIRED, "expiresAt passed before the message could be sent")
            return Outcome.EXPIRED
        if await self._control.is_paused(checked.channel.value, checked.sender):
            await self.reschedule(checked, PAUSE_RECHECK_SECONDS)
            emit(
                log,
                "message.paused",
                "held while paused message_id=%s channel=%s",
                checked.message_id,
                checked.channel,
                message_id=checked.message_id,
                channel=checked.channel.value,
            )
            return Outcome.RESCHEDULED
        return None

    async def _rate_limited(self, checked: CheckedRequest) -> bool:
        wait = self._gate.wait_for(checked.sender)
        if wait <= 0:
            return False
        if wait <= MAX_INLINE_WAIT:
            await asyncio.sleep(wait)
            return False
        await self.reschedule(checked, wait + random.uniform(0, 1))
        count(log, "throttled", channel=checked.channel.value, reason="rate-gate")
        return True

    async def _claim(self, row: LedgerRow, *, generation: int, fresh_ids: bool, uncertain: bool = False) -> LedgerRow:
        now = self._now()
        fields: dict[str, Any] = transition_fields(Status.SENDING, now, Attempts=row.attempts + 1)
        if uncertain:
            fields["UncertainGeneration"] = generation
        if fresh_ids:
            fields |= {
                "Generation": generation,
                "IdsGeneration": generation,
                "RepeatabilityId": repeatability_id(row.message_id, generation),
                "FirstSentAt": iso(now),
            }
        emit(
            log,
            "message.sending",
            "sending message_id=%s attempt=%s",
            row.message_id,
            row.attempts + 1,
            message_id=row.message_id,
            channel=row.channel.value,
            attempt=row.attempts + 1,
        )
        return await self._ledger.update(row, fields)

    async def _send(self, checked: CheckedRequest, row: LedgerRow) -> Outcome:
        ids = SendIds(str(row.get("RepeatabilityId")), parse_iso(str(row.get("FirstSentAt"))))
        if checked.channel == Channel.EMAIL and operation_id(checked.message_id) != checked.message_id:
            # A GUID message id is its own operation id, so reports find the row directly; other ids
            # map to a uuid5, indexed before the send so that reports can never arrive unmatched.
            await self._index_provider_id(checked, operation_id(checked.message_id))
        in_flight = self._whatsapp_in_flight if checked.channel == Channel.WHATSAPP else None
        try:
            # The id is remembered (in _mark_sent) before anything else awaits, so the window is exact.
            with in_flight() if in_flight else contextlib.nullcontext():
                receipt = await self._provider.send(checked, ids)
        except Throttled as exc:
            return await self._throttled(checked, exc)
        except PermanentError as exc:
            await self._finish(row, Status.FAILED, str(exc), refresh=True)
            return Outcome.FAILED
        except TransientError as exc:
            return await self._retry_later(checked, exc)
        await self._mark_sent(checked, receipt.provider_message_id, row)
        return Outcome.SENT

    async def _retry_later(self, checked: CheckedRequest, exc: TransientError, *, sending: bool = True) -> Outcome:
        """A failure outside the message: note it on the row and re-enqueue the request after a backoff
        that grows with each retry; raise once the budget is spent (the host then poisons it).
        `sending`: the failure is the answer to a send (not to a status query made while recovering)."""
        forbidden = isinstance(exc, AccessDenied)
        backoff = FORBIDDEN_RETRY if forbidden else self._settings.send_retry
        retries = 0

        def note(current: LedgerRow) -> dict[str, Any]:
            nonlocal retries
            retries = _retries_so_far(current) + 1
            fields: dict[str, Any] = {"LastError": str(exc)[:1000], "Retries": retries, "LastRetryAt": iso(self._now())}
            if not sending:
                return fields
            if exc.may_have_sent:
                fields["UncertainGeneration"] = current.generation
            elif current.status == Status.SENDING and current.get("UncertainGeneration") != current.generation:
                fields["Status"] = Status.ACCEPTED.value  # nothing of this generation can have reached ACS
            return fields

        await self._ledger.change(checked.message_id, note)
        if forbidden:
            self._report_forbidden(checked)
        if retries > backoff.attempts:
            raise exc
        delay = backoff.delay(retries)
        await self.reschedule(checked, delay)
        emit(
            log,
            "message.retry_scheduled",
            "send failed, retrying later message_id=%s attempt=%s",
            checked.message_id,
            retries,
            message_id=checked.message_id,
            channel=checked.channel.value,
            attempt=retries,
            retry_after=round(delay, 1),
            reason=AccessDenied.reason if forbidden else "transient",
        )
        count(log, "send_retry", channel=checked.channel.value)
        return Outcome.RESCHEDULED

    def _report_forbidden(self, checked: CheckedRequest) -> None:
        """ACS refused the app's identity: every send fails until an operator fixes the role, so this is
        a warning and a counter of its own (the `acs-forbidden` alert), not one more retry among many."""
        emit_warning(
            log,
            "message.forbidden",
            "ACS refused the app's identity (403), message held message_id=%s",
            checked.message_id,
            message_id=checked.message_id,
            channel=checked.channel.value,
            reason=AccessDenied.reason,
        )
        count(log, "acs_forbidden", channel=checked.channel.value, reason=AccessDenied.reason)

    async def _throttled(self, checked: CheckedRequest, exc: Throttled, *, sending: bool = True) -> Outcome:
        """A 429: re-enqueue after Retry-After. `sending`: the 429 answered a send (not a status query made
        while recovering a row whose send may have happened, whose claim must stay)."""

        def give_back(current: LedgerRow) -> dict[str, Any] | None:
            if current.status != Status.SENDING or not sending:
                return None
            fields: dict[str, Any] = {"Throttles": int(current.get("Throttles", 0)) + 1}
            if current.get("UncertainGeneration") != current.generation:  # else `_recover` decides next time
                fields["Status"] = Status.ACCEPTED.value
            return fields

        await self._ledger.change(checked.message_id, give_back)
        delay = exc.retry_after + random.uniform(0, max(1.0, exc.retry_after * 0.2))
        await self.reschedule(checked, delay)
        count(log, "throttled", channel=checked.channel.value, retry_after=exc.retry_after, reason="provider-429")
        return Outcome.RESCHEDULED

    async def _index_provider_id(self, checked: CheckedRequest, provider_message_id: str) -> bool:
        """Map the provider's id to ours. True if the row was already there: an earlier attempt of this
        send wrote it, or a status that arrived first left a placeholder and waits to be re-matched."""
        if self._remember_provider_id is not None:
            self._remember_provider_id(provider_message_id, checked.message_id)
        partition, row_key = provider_id_keys(provider_message_id)
        row = {
            "PartitionKey": partition,
            "RowKey": row_key,
            "MessageId": checked.message_id,
            "Channel": checked.channel.value,
        }
        try:
            await self._provider_ids.insert(row)
        except Conflict:
            await self._provider_ids.upsert(row)
            return True
        return False

    async def _mark_sent(self, checked: CheckedRequest, provider_message_id: str, row: LedgerRow | None) -> None:
        """Record Sent. `row` is the claimed row: its etag usually still holds, which saves a read;
        if a delivery report got there first, fall back to read-decide-write."""
        now = self._now()
        cost = self._settings.prices[checked.channel] * checked.segments
        sent_at = iso(now)
        measured: tuple[float, Status] | None = None

        def sent(current: LedgerRow) -> dict[str, Any]:
            nonlocal sent_at, measured
            sent_at = str(current.get("SentAt") or sent_at)  # an earlier attempt's record stands
            fields: dict[str, Any] = {
                "ProviderMessageId": provider_message_id,
                "CostEstimate": cost,
                "SentAt": sent_at,
                "LastError": None,
            }
            if pipeline_may_set(current.status, Status.SENT):
                fields |= {"Status": Status.SENT.value, "UpdatedAt": iso(now)}
            reported_at = current.get("StatusEventTime")
            if current.status in REACHED and reported_at and current.get("DeliveryLatencyMs") is None:
                # Its report got here first and had no SentAt to measure from: measure now, so the
                # fastest deliveries are not the ones missing from the latency figures.
                fields["DeliveryLatencyMs"] = delivery_latency_ms(sent_at, str(reported_at))
                measured = fields["DeliveryLatencyMs"], current.status
            return fields

        # Taken before this instance's statuses can match the provider id (the index step below makes
        # it known), so a WhatsApp Sent status waits for this write and then adds only its event row,
        # instead of projecting Sent itself and leaving this write a second ledger change.
        async with self._ledger.writing(checked.message_id):
            # Email's operation id was indexed before the send. SMS reports usually carry our id in
            # their tag, but not always (a report without it, or with a foreign one, must still
            # match), so SMS ids are indexed as WhatsApp's are. A status can beat the send's answer
            # and be parked (on any instance): the index row is where the two meet.
            statuses_parked = checked.channel in (Channel.SMS, Channel.WHATSAPP) and await self._index_provider_id(
                checked, provider_message_id
            )
            # A report may have been recorded here since the claim: its write is the newest state.
            current = self._ledger.hint(checked.message_id) or row
            try:
                if current is None:
                    raise EtagMismatch("no claimed row")
                await self._ledger.update(current, sent(current))
            except EtagMismatch:
                await self._ledger.change(checked.message_id, sent)
        await self._schedule_report_deadline(checked.message_id, checked.channel, sent_at)
        _emit_about(checked, "message.sent", "sent", status=Status.SENT.value, provider_message_id=provider_message_id)
        count(log, "sent", channel=checked.channel.value)
        if measured is not None:
            latency, reached = measured
            count(log, "delivery_latency_ms", latency, channel=checked.channel.value, status=reached.value)
        count(log, "cost_estimate", cost, channel=checked.channel.value)
        if self._on_sent is not None and statuses_parked:
            await self._on_sent(provider_message_id)

    async def _schedule_report_deadline(self, message_id: str, channel: Channel, sent_at: str) -> None:
        """The due entry that expires the message if no report comes within the channel's SLA. Its key
        comes from the ledger's SentAt, so scheduling it again writes the same entry."""
        sla = timedelta(minutes=self._settings.sla_minutes[channel])
        await self._due.add(message_id, DueKind.SLA, parse_iso(sent_at) + sla)

    # -- crash safety (design §4.2) -------------------------------------------------------------

    async def _recover(self, checked: CheckedRequest, row: LedgerRow) -> Outcome:
        """The row is Sending: an earlier attempt died or failed after claiming. Resend only when ACS
        can deduplicate it; otherwise decide by the delivery mode. Email is always asked first: the email
        API documents no de-duplication of a reused Operation-Id (only the repeatability headers, which
        the email SDK does not send), so an email is resent only when ACS says it never saw it."""
        if checked.channel == Channel.EMAIL:
            return await self._recover_email(checked, row)
        first_sent = parse_iso(str(row.get("FirstSentAt")))
        if self._now() - first_sent < REPEATABILITY_WINDOW:
            # What the earlier attempt did is unknown: this generation may have reached ACS.
            row = await self._claim(row, generation=row.generation, fresh_ids=False, uncertain=True)
            return await self._send(checked, row)
        if row.delivery == DeliveryMode.AT_LEAST_ONCE:
            row = await self._claim(row, generation=row.generation + 1, fresh_ids=True)
            return await self._send(checked, row)
        await self._finish(
            row,
            Status.UNKNOWN,
            "an earlier attempt may have sent it and ACS can no longer tell; "
            "at-most-once policy: an operator decides (replay to resend)",
        )
        return Outcome.UNKNOWN

    async def _recover_email(self, checked: CheckedRequest, row: LedgerRow) -> Outcome:
        """GET /emails/operations/{id}: 404 means the send never reached ACS, so sending it now (under the
        same operation id) is the first send; any status means it did, and its report will follow."""
        try:
            status = await self._provider.email_status(operation_id(checked.message_id))
        except Throttled as exc:
            return await self._throttled(checked, exc, sending=False)
        except TransientError as exc:
            return await self._retry_later(checked, exc, sending=False)
        if status is None:  # ACS never saw the operation: sending again with the same id is safe
            return await self._send(checked, await self._claim(row, generation=row.generation, fresh_ids=False))
        if status.lower() in {"failed", "canceled"}:
            await self._finish(row, Status.FAILED, f"email operation ended {status}", refresh=True)
            return Outcome.FAILED
        await self._mark_sent(checked, operation_id(checked.message_id), None)
        return Outcome.SENT

    # -- endings ------------------------------------------------------------------------------

    async def _finish(self, row: LedgerRow, status: Status, reason: str, refresh: bool = False) -> None:
        """Move to an end state decided by the pipeline (never over a higher status)."""
        now = self._now()

        def decide(current: LedgerRow) -> dict[str, Any] | None:
            if not pipeline_may_set(current.status, status):
                return None
            return transition_fields(status, now, Reason=reason[:1000], StatusEventTime=iso(now))

        await self._ledger.change(row.message_id, decide)
        await self._retain(row.message_id, str(row.get("CreatedAt", "")))
        event = {
            Status.EXPIRED: "message.expired",
            Status.SUPPRESSED: "message.suppressed",
            Status.UNKNOWN: "message.unknown",
        }.get(status, "message.rejected")
        emit(
            log,
            event,
            "message %s message_id=%s",
            status,
            row.message_id,
            message_id=row.message_id,
            channel=row.channel.value,
            status=status.value,
        )
        metric = {Status.EXPIRED: "expired", Status.UNKNOWN: "unknown", Status.FAILED: "failed"}.get(status)
        if metric:
            count(log, metric, channel=row.channel.value)

    async def _retain(self, message_id: str, created_at: str) -> None:
        """Ended without a send: retention starts now (sent messages get theirs from reconciliation)."""
        await schedule_retention(self._retention, message_id, created_at, self._settings.retention_days["content"])

    async def _reject(self, message_id: str, channel: Channel, exc: ValidationFailed, body: bytes) -> Outcome:
        return await self._record_rejection(message_id, channel.value, exc.errors, body)

    async def _reject_unparsed(self, delivery: QueueDelivery, exc: ValidationFailed) -> Outcome:
        message_id, channel = _salvage_ids(self._settings.consent_hash_key, delivery.body)
        return await self._record_rejection(message_id, channel, exc.errors, delivery.body)

    async def _record_rejection(self, message_id: str, channel: str, errors: list[FieldError], body: bytes) -> Outcome:
        now = self._now()
        reason = "; ".join(f"{e.field}: {e.message}" for e in errors)[:1000]
        fields = {
            "Channel": channel,
            "Errors": json.dumps([e.as_dict() for e in errors])[:30_000],
            "CreatedAt": iso(now),
            "Source": "queue",
            # Verbatim, whatever the bytes (text when UTF-8, else base64), as far as a row holds it.
            **verbatim_payload(body[:MAX_PAYLOAD_BYTES]),
            **({"PayloadTruncated": True} if len(body) > MAX_PAYLOAD_BYTES else {}),
            **transition_fields(Status.REJECTED, now, Reason=reason),
        }
        if await self._ledger.record_rejected(message_id, fields):
            await self._retain(message_id, iso(now))
        else:
            emit(
                log,
                "message.duplicate_skipped",
                "invalid copy of an existing id message_id=%s",
                message_id,
                message_id=message_id,
                status=Status.REJECTED.value,
            )
            return Outcome.DUPLICATE
        emit(
            log,
            "message.rejected",
            "rejected message_id=%s reason=%s",
            message_id,
            reason,
            message_id=message_id,
            channel=channel,
            status=Status.REJECTED.value,
            reason=reason,
        )
        count(log, "rejected", channel=channel)
        return Outcome.REJECTED


def _retries_so_far(row: LedgerRow) -> int:
    """Backoff retries spent since the message was last replayed: an operator's replay starts a new budget."""
    replayed, last_retry = row.get("ReplayedAt"), row.get("LastRetryAt")
    if replayed and (not last_retry or str(replayed) > str(last_retry)):
        return 0
    return int(row.get("Retries", 0))


def _salvage_ids(key: bytes, body: bytes) -> tuple[str, str]:
    """Best-effort id and channel from a body that failed validation (for the Rejected record)."""
    fallback = content_id(key, body)
    try:
        data = load_json(body)
    except ValidationFailed:
        return fallback, "unknown"
    if not isinstance(data, dict):
        return fallback, "unknown"
    candidate, channel = data.get("id"), data.get("channel")
    channel_name = channel if isinstance(channel, str) and channel in {c.value for c in Channel} else "unknown"
    if isinstance(candidate, str) and re.fullmatch(MESSAGE_ID_PATTERN, candidate):
        return candidate, channel_name
    return fallback, channel_name
