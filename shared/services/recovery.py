"""Crash safety (design §4.2): a row found in Sending means an earlier attempt died or failed after
claiming it, and ACS may or may not have acted on it. Resend only what ACS can deduplicate; otherwise
decide by the message's delivery mode.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from shared.clock import parse_iso
from shared.errors import Throttled, TransientError
from shared.ids import operation_id
from shared.models import Channel, DeliveryMode, Status
from shared.schema import LedgerRow
from shared.services.dispatch import REPEATABILITY_WINDOW, Dispatcher
from shared.services.endings import SendEndings
from shared.services.providers import Provider
from shared.validation import CheckedRequest

AT_MOST_ONCE_UNKNOWN = (
    "an earlier attempt may have sent it and ACS can no longer tell; "
    "at-most-once policy: an operator decides (replay to resend)"
)


class Recovery:
    def __init__(
        self,
        dispatcher: Dispatcher,
        endings: SendEndings,
        provider: Provider,
        clock: Callable[[], datetime],
        claim_lease: timedelta,
    ) -> None:
        # A claim younger than `claim_lease` may belong to a send still in flight (every ACS call ends
        # within its timeouts): an email copy that finds one waits for it to end instead of asking ACS,
        # which would answer 404 while the first POST is still on its way.
        self._claim_lease = claim_lease
        self._dispatcher = dispatcher
        self._endings = endings
        self._provider = provider
        self._now = clock

    async def recover(self, checked: CheckedRequest, row: LedgerRow) -> Status | None:
        """Returns the status the message reached here (Sent, Failed, Unknown), or None if it waits.
        Email is always asked first: the email API documents no de-duplication of a reused Operation-Id
        (only the repeatability headers, which the email SDK does not send), so an email is resent only
        when ACS says it never saw it."""
        if checked.channel == Channel.EMAIL:
            held = self._claim_held(row)
            if held is not None:
                await self._endings.later(checked, held.total_seconds(), reason="claim-held")
                return None
            return await self._recover_email(checked, row)
        if self._now() - parse_iso(str(row.first_sent_at)) < REPEATABILITY_WINDOW:
            # What the earlier attempt did is unknown: this generation may have reached ACS, and ACS
            # still deduplicates its ids.
            row = await self._dispatcher.claim(row, generation=None, uncertain=True)
            return await self._dispatcher.send(checked, row)
        if row.delivery == DeliveryMode.AT_LEAST_ONCE:
            row = await self._dispatcher.claim(row, generation=row.generation + 1)
            return await self._dispatcher.send(checked, row)
        await self._endings.finish(row, Status.UNKNOWN, AT_MOST_ONCE_UNKNOWN)
        return Status.UNKNOWN

    def _claim_held(self, row: LedgerRow) -> timedelta | None:
        """How long the row's claim may still belong to a live send, if it may."""
        claimed_at = row.times.get(Status.SENDING)
        if not claimed_at or (row.last_retry_at or "") >= claimed_at:
            return None  # never claimed, or its attempt has ended (it failed and was re-scheduled)
        left = self._claim_lease - (self._now() - parse_iso(claimed_at))
        return left if left > timedelta() else None

    async def _recover_email(self, checked: CheckedRequest, row: LedgerRow) -> Status | None:
        """GET /emails/operations/{id}: 404 means the send never reached ACS, so sending it now (under the
        same operation id) is the first send; any status means it did, and its report will follow."""
        try:
            status = await self._provider.email_status(operation_id(checked.message_id))
        except Throttled as exc:
            await self._endings.throttled(checked, exc, sending=False)
            return None
        except TransientError as exc:
            await self._endings.retry_later(checked, exc, sending=False)
            return None
        if status is None:  # ACS never saw the operation: sending again with the same id is safe
            return await self._dispatcher.send(checked, await self._dispatcher.claim(row, generation=None))
        if status.lower() in {"failed", "canceled"}:
            await self._endings.finish(row, Status.FAILED, f"email operation ended {status}")
            return Status.FAILED
        await self._dispatcher.mark_sent(checked, operation_id(checked.message_id), None)
        return Status.SENT
