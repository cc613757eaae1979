"""Claiming a row and sending it through ACS, and recording what ACS answered.

A claim moves the row to Sending under the ids that make a resend the same send to ACS: a
repeatability id per send generation (SMS, WhatsApp) and the operation id derived from the message id
(email). ACS deduplicates a repeatability id for 5 minutes, so a claim keeps its generation's ids
while ACS remembers them and moves to the next generation after that.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol

from shared.adapters.acs import SendIds
from shared.clock import iso, parse_iso
from shared.errors import PermanentError, Throttled, TransientError
from shared.ids import operation_id
from shared.ledger import Ledger, claimed, delivery_latency_ms
from shared.models import REACHED, Channel, Status
from shared.observability import count, emit
from shared.schema import LedgerRow
from shared.services.correlation import Correlation
from shared.services.due import DueIndex, DueKind
from shared.services.endings import SendEndings
from shared.services.providers import Provider
from shared.settings import Settings
from shared.status import pipeline_may_set
from shared.validation import CheckedRequest

log = logging.getLogger(__name__)

# ACS deduplicates repeatability ids for 5 minutes; stay well inside it.
REPEATABILITY_WINDOW = timedelta(minutes=4)


class ParkedStatuses(Protocol):
    """Where statuses that arrived before their send's answer wait (the event service)."""

    async def rematch(self, provider_message_id: str) -> int: ...


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        provider: Provider,
        correlation: Correlation,
        parked: ParkedStatuses,
        endings: SendEndings,
        due: DueIndex,
        clock: Callable[[], datetime],
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._provider = provider
        self._correlation = correlation
        self._parked = parked
        self._endings = endings
        self._due = due
        self._now = clock

    # -- claims -----------------------------------------------------------------------------------

    async def claim_accepted(self, row: LedgerRow) -> LedgerRow:
        """Accepted → Sending (EtagMismatch if the row changed since it was read)."""
        generation = self._generation_to_claim(row)
        fresh = row.ids_generation != generation
        return await self.claim(row, generation=generation if fresh else None)

    async def claim(self, row: LedgerRow, *, generation: int | None, uncertain: bool = False) -> LedgerRow:
        """Sending, attempt n+1: under `generation`'s fresh ids, or (None) the row's current ones.
        `uncertain`: the current generation may already have reached ACS (recovery's resend)."""
        attempt = row.attempts + 1
        changed = claimed(row, self._now(), generation=generation)
        if uncertain:
            changed = replace(changed, uncertain_generation=row.generation)
        emit(
            log,
            "message.sending",
            "sending",
            attempt=attempt,
        )
        return await self._ledger.update(row, changed)

    def _generation_to_claim(self, row: LedgerRow) -> int:
        """The send generation for a claim from Accepted. Its ids are kept while ACS remembers them. Past
        ACS's window the claim moves to the next generation, because ACS rejects a Repeatability-First-Sent
        older than the range it holds ("Repeatability-Result: rejected", Azure REST API guidelines,
        https://github.com/microsoft/api-guidelines/blob/vNext/azure/Guidelines.md#repeatability-of-requests);
        that is safe because a row is Accepted again only when nothing of its generation reached ACS
        (a 429, or a failure that `may_have_sent` says was refused before it was handled)."""
        generation = max(row.generation, 1)
        if row.ids_generation != generation or not row.first_sent_at:
            return generation
        expired = self._now() - parse_iso(row.first_sent_at) >= REPEATABILITY_WINDOW
        return generation + 1 if expired else generation

    # -- the send ---------------------------------------------------------------------------------

    async def send(self, checked: CheckedRequest, row: LedgerRow) -> Status | None:
        """Send the claimed row. Returns Sent or Failed; None when it waits (re-enqueued for later)."""
        ids = SendIds(str(row.repeatability_id), parse_iso(str(row.first_sent_at)))
        if checked.channel == Channel.EMAIL and operation_id(checked.message_id) != checked.message_id:
            # A GUID message id is its own operation id, so reports find the row directly; other ids
            # map to a uuid5, indexed before the send so that reports can never arrive unmatched.
            await self._correlation.index(operation_id(checked.message_id), checked.message_id, checked.channel)
        in_flight = checked.channel == Channel.WHATSAPP
        try:
            # The id is remembered (in mark_sent) before anything else awaits, so the window is exact.
            with self._correlation.whatsapp_send_in_flight() if in_flight else contextlib.nullcontext():
                receipt = await self._provider.send(checked, ids)
        except Throttled as exc:
            await self._endings.throttled(checked, exc)
            return None
        except PermanentError as exc:
            await self._endings.finish(row, Status.FAILED, str(exc))
            return Status.FAILED
        except TransientError as exc:
            await self._endings.retry_later(checked, exc)
            return None
        await self.mark_sent(checked, receipt.provider_message_id, row)
        return Status.SENT

    async def mark_sent(self, checked: CheckedRequest, provider_message_id: str, row: LedgerRow | None) -> None:
        """Record Sent. `row` is the claimed row: its etag usually still holds, which saves a read; if a
        report got there first, the write falls back to read-decide-write."""
        now = self._now()
        cost = self._settings.prices[checked.channel] * checked.segments
        decided: list[tuple[LedgerRow, LedgerRow]] = []

        def sent(current: LedgerRow) -> LedgerRow:
            decided.append((current, _sent(current, provider_message_id, cost, now)))
            return decided[-1][1]

        # Taken before this instance's statuses can match the provider id (indexing makes it known), so a
        # WhatsApp Sent status waits for this write and then adds only its event row, instead of
        # projecting Sent itself and leaving this write a second ledger change.
        async with self._ledger.writing(checked.message_id):
            # Email's operation id was indexed before the send. SMS reports usually carry our id in their
            # tag, but not always (a report without it, or with a foreign one, must still match), so SMS
            # ids are indexed as WhatsApp's are. A status can beat the send's answer and be parked (on
            # any instance): the index row is where the two meet.
            parked = False
            if checked.channel in (Channel.SMS, Channel.WHATSAPP):
                indexed = await self._correlation.index(provider_message_id, checked.message_id, checked.channel)
                parked = indexed.met_placeholder
            await self._ledger.change(checked.message_id, sent, start=row, slim=True)
        sent_at = (decided[-1][1].sent_at if decided else None) or iso(now)
        await self.schedule_report_deadline(checked.message_id, checked.channel, sent_at)
        _report_sent(checked, provider_message_id, cost, decided[-1] if decided else None)
        if parked:
            await self._parked.rematch(provider_message_id)

    async def schedule_report_deadline(self, message_id: str, channel: Channel, sent_at: str) -> None:
        """The due entry that expires the message if no report comes within the channel's SLA. Its key
        comes from the ledger's SentAt, so scheduling it again writes the same entry."""
        sla = timedelta(minutes=self._settings.sla_minutes[channel])
        await self._due.add(message_id, DueKind.SLA, parse_iso(sent_at) + sla)


def _sent(current: LedgerRow, provider_message_id: str, cost: float, now: datetime) -> LedgerRow:
    sent_at = current.sent_at or iso(now)  # an earlier attempt's record stands
    row = replace(current, provider_message_id=provider_message_id, cost_estimate=cost)
    if pipeline_may_set(current.status, Status.SENT):
        row = row.moved_to(Status.SENT, iso(now))
    row = replace(row, times={**row.times, Status.SENT: sent_at})
    if current.status in REACHED and current.status_event_time and current.delivery_latency_ms is None:
        # Its report got here first and had no SentAt to measure from: measure now, so the fastest
        # deliveries are not the ones missing from the latency figures.
        row = replace(row, delivery_latency_ms=delivery_latency_ms(sent_at, current.status_event_time))
    return row


def _report_sent(
    checked: CheckedRequest, provider_message_id: str, cost: float, decided: tuple[LedgerRow, LedgerRow] | None
) -> None:
    emit(log, "message.sent", "sent", status=Status.SENT.value, provider_message_id=provider_message_id)
    channel = checked.channel.value
    count(log, "sent", channel=channel)
    if decided is not None:
        before, after = decided
        if after.delivery_latency_ms is not None and before.delivery_latency_ms is None:
            # Measured by this write: its report had got there first.
            count(log, "delivery_latency_ms", after.delivery_latency_ms, channel=channel, status=after.status.value)
    count(log, "cost_estimate", cost, channel=channel)
