"""The send pipeline behind the `send_message` queue trigger (design §1 and §4.2).

`SendService.handle` is the recipe, in order:
1. Decode: follow a claim-check reference, parse and check the request (`decoding`). Bad input is
   recorded as Rejected with field errors (`rejections`), never retried.
2. Gates, which need no ledger row (`gates`): expired, paused channel or sender, opted out, refused
   for WhatsApp (template not approved, outside the 24-hour window), over the sender's rate. Over the
   rate → re-scheduled for when a token is free, nothing written.
3. Accept: insert the ledger row if absent (`acceptance`). When every gate passed, the insert is also
   the claim (Sending). A different request under the same id is refused (IdReused).
4. A row already Sent or ended: done, nothing is sent again.
5. A gate that held: Expired, Suppressed or Rejected with its reason (an end), or paused (re-scheduled).
6. A row found in Sending: an earlier attempt died mid-send (`recovery`).
7. Claim the row (Accepted → Sending, etag) with the ids that make a resend the same send (`dispatch`).
8. Send and record ACS's answer: Sent; Failed; 429 or another failure outside the message →
   re-scheduled with the claim given back only when ACS certainly did not act (`endings`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from shared.errors import EtagMismatch, IdReused
from shared.ledger import Ledger
from shared.models import Status
from shared.observability import count, emit
from shared.schema import LedgerRow
from shared.services.acceptance import Acceptance
from shared.services.decoding import QueueDelivery, RequestDecoder
from shared.services.dispatch import Dispatcher
from shared.services.endings import SendEndings
from shared.services.gates import Gate, SendGates, Verdict
from shared.services.logs import about
from shared.services.outcomes import Outcome
from shared.services.recovery import Recovery
from shared.services.rejections import RequestRejections
from shared.status import TERMINAL
from shared.validation import CheckedRequest

log = logging.getLogger(__name__)

_REACHED_HERE = {
    Status.SENT: Outcome.SENT,
    Status.FAILED: Outcome.FAILED,
    Status.UNKNOWN: Outcome.UNKNOWN,
    None: Outcome.RESCHEDULED,
}


@dataclass(frozen=True)
class SendSteps:
    """The modules that own the recipe's steps, in the order the recipe uses them."""

    decoder: RequestDecoder
    gates: SendGates
    acceptance: Acceptance
    rejections: RequestRejections
    recovery: Recovery
    dispatcher: Dispatcher
    endings: SendEndings


class SendService:
    def __init__(self, ledger: Ledger, steps: SendSteps) -> None:
        self._ledger = ledger
        self.steps = steps

    async def handle(self, delivery: QueueDelivery) -> Outcome:
        """Process one send request from the queue: the recipe in the module docstring."""
        checked = await self.steps.decoder.decode(delivery)  # 1
        if isinstance(checked, Outcome):
            return checked
        with about(checked):  # every record from here on carries the message's id and channel
            return await self._decide(checked)

    async def send_now(self, checked: CheckedRequest) -> Outcome:
        """Steps 2 to 8 for a request the HTTP intake has just checked and accepted (a high-priority
        request sent by the intake's own invocation instead of its lane's next poll)."""
        with about(checked):
            return await self._decide(checked)

    async def _decide(self, checked: CheckedRequest) -> Outcome:
        """Steps 2 to 8 for a decoded request."""
        verdict = await self.steps.gates.check(checked)  # 2
        if verdict.gate == Gate.WAIT:
            await self.steps.acceptance.requeue(checked, verdict.delay)
            count(log, "throttled", channel=checked.channel.value, reason=verdict.reason)
            return Outcome.RESCHEDULED
        try:  # 3
            go = verdict.gate == Gate.GO
            row, created = await self.steps.acceptance.accept(checked, "queue", claim=go)
        except IdReused as reused:
            await self.steps.rejections.reused(checked.message_id, checked.channel, reused, source="queue")
            return Outcome.ID_REUSED
        if created and go:  # the insert was the claim
            return _REACHED_HERE[await self.steps.dispatcher.send(checked, row)]  # 8
        return await self._advance(checked, verdict, row)

    async def _advance(self, checked: CheckedRequest, verdict: Verdict, row: LedgerRow) -> Outcome:
        """Steps 4 to 8 for a row that this delivery did not write."""
        if row.status in TERMINAL or row.status == Status.SENT:  # 4
            return await self._already_handled(checked, row)
        if verdict.gate != Gate.GO:  # 5
            return await self._hold(checked, verdict, row)
        try:
            if row.status == Status.SENDING:  # 6
                return _REACHED_HERE[await self.steps.recovery.recover(checked, row)]
            row = await self.steps.dispatcher.claim_accepted(row)  # 7
        except EtagMismatch:  # another delivery moved the row since it was read: decide again
            fresh = await self._ledger.get(checked.message_id)
            return await self._advance(checked, verdict, fresh) if fresh else Outcome.DUPLICATE
        return _REACHED_HERE[await self.steps.dispatcher.send(checked, row)]  # 8

    async def _already_handled(self, checked: CheckedRequest, row: LedgerRow) -> Outcome:
        """A redelivered request whose message was sent or ended: nothing is sent again."""
        if row.status == Status.SENT and row.sent_at:
            # Its first delivery may have died after recording Sent and before scheduling the deadline.
            await self.steps.dispatcher.schedule_report_deadline(row.message_id, row.channel, row.sent_at)
        emit(log, "message.duplicate_skipped", "already handled", status=row.status.value)
        return Outcome.DUPLICATE

    async def _hold(self, checked: CheckedRequest, verdict: Verdict, row: LedgerRow) -> Outcome:
        if verdict.gate == Gate.PAUSED:
            await self.steps.acceptance.requeue(checked, verdict.delay)
            emit(log, "message.paused", "held while paused")
            return Outcome.RESCHEDULED
        if verdict.gate == Gate.EXPIRED:
            await self.steps.endings.finish(row, Status.EXPIRED, verdict.reason)
            return Outcome.EXPIRED
        if verdict.gate == Gate.REFUSED:
            await self.steps.endings.finish(row, Status.REJECTED, verdict.reason)
            return Outcome.REJECTED
        await self.steps.endings.finish(row, Status.SUPPRESSED, verdict.reason)
        count(log, "suppressed", channel=checked.channel.value)
        return Outcome.SUPPRESSED
