"""What happens to a message when a send does not simply succeed: it ends (Failed, Expired,
Suppressed, Unknown), or it waits (a 429, or a failure outside the message) and comes back later.

Two rules hold throughout. The pipeline never sets a status over a higher one (`pipeline_may_set`).
A claim is given back (Sending → Accepted, so the next attempt claims afresh) only when ACS certainly
did not act on the request; otherwise the row stays Sending and the retry goes through recovery,
which resends only what ACS can deduplicate.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from shared.clock import iso
from shared.errors import AccessDenied, Throttled, TransientError
from shared.ledger import Ledger
from shared.models import Status
from shared.observability import count, emit, emit_warning
from shared.retry import FORBIDDEN_RETRY
from shared.schema import LedgerRow
from shared.services.acceptance import Acceptance
from shared.services.due import DueIndex, schedule_retention
from shared.settings import Settings
from shared.status import pipeline_may_set
from shared.validation import CheckedRequest

log = logging.getLogger(__name__)

_LOG_EVENTS = {
    Status.EXPIRED: "message.expired",
    Status.SUPPRESSED: "message.suppressed",
    Status.UNKNOWN: "message.unknown",
}
_COUNTERS = {Status.EXPIRED: "expired", Status.UNKNOWN: "unknown", Status.FAILED: "failed"}


class SendEndings:
    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        acceptance: Acceptance,
        retention: DueIndex | None,
        clock: Callable[[], datetime],
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._acceptance = acceptance
        self._retention = retention
        self._now = clock

    async def finish(self, row: LedgerRow, status: Status, reason: str) -> None:
        """Move to an end state decided by the pipeline (never over a higher status); retention of a
        message that ended without a send starts now (sent ones get theirs from reconciliation)."""
        now = self._now()

        def decide(current: LedgerRow) -> LedgerRow | None:
            if not pipeline_may_set(current.status, status):
                return None
            return current.moved_to(status, iso(now), reason=reason[:1000], status_event_time=iso(now))

        await self._ledger.change(row.message_id, decide)
        days = self._settings.retention_days["content"]
        await schedule_retention(self._retention, row.message_id, row.created_at or "", days)
        emit(log, _LOG_EVENTS.get(status, "message.rejected"), "message ended", status=status.value)
        if status in _COUNTERS:
            count(log, _COUNTERS[status], channel=row.channel.value)

    async def retry_later(self, checked: CheckedRequest, exc: TransientError, *, sending: bool = True) -> None:
        """A failure outside the message: note it on the row and re-enqueue the request after a backoff
        that grows with each retry; raise once the budget is spent (the host then poisons it).
        `sending`: the failure is the answer to a send (not to a status query made while recovering)."""
        forbidden = isinstance(exc, AccessDenied)
        backoff = FORBIDDEN_RETRY if forbidden else self._settings.send_retry
        changed = await self._ledger.change(checked.message_id, lambda row: self._note_failure(row, exc, sending))
        retries = 0 if changed is None else changed.retries
        if forbidden:
            _report_forbidden(checked)
        if retries > backoff.attempts:
            raise exc
        delay = backoff.delay(retries)
        await self._acceptance.requeue(checked, delay)
        emit(
            log,
            "message.retry_scheduled",
            "send failed, retrying later",
            attempt=retries,
            retry_after=round(delay, 1),
            reason=AccessDenied.reason if forbidden else "transient",
        )
        count(log, "send_retry", channel=checked.channel.value)

    def _note_failure(self, current: LedgerRow, exc: TransientError, sending: bool) -> LedgerRow:
        retries = retries_so_far(current) + 1
        noted = replace(current, last_error=str(exc)[:1000], retries=retries, last_retry_at=iso(self._now()))
        if not sending:
            return noted
        if exc.may_have_sent:
            return replace(noted, uncertain_generation=current.generation)
        if current.status == Status.SENDING and current.uncertain_generation != current.generation:
            return replace(noted, status=Status.ACCEPTED)  # nothing of this generation can have reached ACS
        return noted

    async def later(self, checked: CheckedRequest, delay: float, *, reason: str) -> None:
        """Come back after `delay` seconds (plus jitter), the row untouched."""
        await self._acceptance.requeue(checked, delay + random.uniform(0, 1))
        count(log, "throttled", channel=checked.channel.value, reason=reason)

    async def throttled(self, checked: CheckedRequest, exc: Throttled, *, sending: bool = True) -> None:
        """A 429: re-enqueue after Retry-After. `sending`: the 429 answered a send (not a status query made
        while recovering a row whose send may have happened, whose claim must stay)."""

        def give_back(current: LedgerRow) -> LedgerRow | None:
            if current.status != Status.SENDING or not sending:
                return None
            counted = replace(current, throttles=current.throttles + 1)
            if current.uncertain_generation != current.generation:  # else recovery decides next time
                return replace(counted, status=Status.ACCEPTED)
            return counted

        await self._ledger.change(checked.message_id, give_back)
        delay = exc.retry_after + random.uniform(0, max(1.0, exc.retry_after * 0.2))
        await self._acceptance.requeue(checked, delay)
        count(log, "throttled", channel=checked.channel.value, retry_after=exc.retry_after, reason="provider-429")


def retries_so_far(row: LedgerRow) -> int:
    """Backoff retries spent since the message was last replayed: an operator's replay starts a new budget."""
    replayed, last_retry = row.replayed_at, row.last_retry_at
    if replayed and (not last_retry or replayed > last_retry):
        return 0
    return row.retries


def _report_forbidden(checked: CheckedRequest) -> None:
    """ACS refused the app's identity: every send fails until an operator fixes the role, so this is
    a warning and a counter of its own (the `acs-forbidden` alert), not one more retry among many."""
    emit_warning(
        log,
        "message.forbidden",
        "ACS refused the app's identity (403), message held",
        reason=AccessDenied.reason,
    )
    count(log, "acs_forbidden", channel=checked.channel.value, reason=AccessDenied.reason)
