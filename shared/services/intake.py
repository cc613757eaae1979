"""Producer-facing intake for `POST /api/messages`.

Why synchronous validation here: an HTTP producer deserves its field errors now, not a Rejected
row later. Accepting is idempotent on the id: the same id again returns the same message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from shared.clock import Clock
from shared.errors import FieldError, IdReused, TransientError, ValidationFailed
from shared.ids import content_id
from shared.models import FallbackTrigger, Priority, Status
from shared.observability import count, emit
from shared.services.acceptance import Acceptance
from shared.services.logs import about
from shared.services.rejections import RequestRejections
from shared.services.whatsapp import Refusal, WhatsAppRules
from shared.settings import Settings
from shared.validation import CheckedRequest, check_request, parse_request

log = logging.getLogger(__name__)

ID_REUSED = "already used by a different request: send a new request under a new id"
# How long the answer to a high-priority POST waits for its send; a slower send goes on after the answer.
SEND_NOW_WAIT_SECONDS = 2.0

SendNow = Callable[[CheckedRequest], Coroutine[Any, Any, object]]


@dataclass(frozen=True)
class IntakeResult:
    accepted: bool
    message_id: str | None = None
    created: bool = False
    errors: list[FieldError] = field(default_factory=list)
    conflict: bool = False  # the id is taken by a different request (HTTP 409)


class IntakeService:
    def __init__(
        self,
        settings: Settings,
        acceptance: Acceptance,
        rejections: RequestRejections,
        clock: Clock,
        whatsapp: WhatsAppRules | None = None,
        send_now: SendNow | None = None,
    ) -> None:
        self._settings = settings
        self._acceptance = acceptance
        self._rejections = rejections
        self._now = clock
        self._whatsapp = whatsapp
        self._send_now = send_now
        self._sends: set[asyncio.Task[object]] = set()  # sends that outlived their answer

    async def submit(self, body: bytes) -> IntakeResult:
        """Validate now; record Accepted and enqueue. Same id again → same message, no second send."""
        try:
            request = parse_request(body)
            message_id = request.id or content_id(self._settings.consent_hash_key, body)
            checked = check_request(request, self._settings, message_id, self._now())
        except ValidationFailed as exc:
            emit(
                log,
                "message.rejected",
                "rejected at intake",
                status=Status.REJECTED.value,
                reason="validation: " + ",".join(e.field for e in exc.errors)[:180],
            )
            count(log, "rejected", channel="http")
            return IntakeResult(accepted=False, errors=exc.errors)
        with about(checked):
            return await self._admit(checked)

    async def _admit(self, checked: CheckedRequest) -> IntakeResult:
        """Accept a valid request (and enqueue it), unless WhatsApp would refuse it now (and it does not
        fall back on a refusal: then the send path records it refused, and sends its alternative)."""
        message_id = checked.message_id
        falls_back = FallbackTrigger.REFUSED in checked.request.fallback_triggers
        refusal = None if falls_back else await self._refusal(checked)
        if refusal is not None and not await self._accepted_before(message_id):
            return IntakeResult(accepted=False, message_id=message_id, errors=list(refusal.errors))
        try:
            row, created = await self._acceptance.accept(checked, source="http")
        except IdReused as reused:
            await self._rejections.reused(checked.message_id, checked.channel, reused, source="http")
            errors = [FieldError("id", ID_REUSED)]
            return IntakeResult(accepted=False, message_id=message_id, errors=errors, conflict=True)
        if row.status == Status.ACCEPTED and checked.request.priority == Priority.HIGH and self._send_now:
            await self._send_at_once(checked, self._send_now)
        elif row.status == Status.ACCEPTED:
            # Enqueue even for a repeat: it costs nothing (the ledger dedupes) and heals a crash that
            # happened between an earlier accept and its enqueue.
            await self._acceptance.requeue(checked, 0)
        return IntakeResult(accepted=True, message_id=message_id, created=created)

    async def _send_at_once(self, checked: CheckedRequest, send_now: SendNow) -> None:
        """A high-priority request is sent by this invocation, through the same recipe (every gate, the
        ledger claim), instead of waiting for its lane's next poll. Its lane copy is enqueued first but
        comes due only after the claim lease: if this instance dies mid-send, the copy is an ordinary
        redelivery that recovery resolves; if the send ended, the copy finds it done and sends nothing."""
        safety_net = self._settings.acs_timeouts.claim_lease.total_seconds()
        await self._acceptance.requeue(checked, safety_net)
        task = asyncio.get_running_loop().create_task(send_now(checked))
        self._sends.add(task)
        task.add_done_callback(self._send_ended)
        await asyncio.wait({task}, timeout=SEND_NOW_WAIT_SECONDS)

    def _send_ended(self, task: asyncio.Task[object]) -> None:
        self._sends.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The lane copy enqueued before the send retries it: nothing is lost, only later.
            count(log, "send_now_failed", reason=type(task.exception()).__name__)

    async def _accepted_before(self, message_id: str) -> bool:
        """A repeat of a message accepted earlier is the same message (idempotent on its id), even if
        WhatsApp would refuse it now: the send path decides on it as for any redelivery."""
        row = await self._acceptance.recorded(message_id)
        return row is not None and row.status != Status.REJECTED

    async def _refusal(self, checked: CheckedRequest) -> Refusal | None:
        """What WhatsApp would refuse, known now: a template that is not approved, or free text outside
        the window. When ACS cannot be asked, the send path asks again before sending."""
        if self._whatsapp is None:
            return None
        try:
            refusal = await self._whatsapp.refusal(checked)
        except TransientError:
            return None
        if refusal is not None:
            emit(log, "message.rejected", "rejected at intake", status=Status.REJECTED.value, reason=refusal.reason)
            count(log, "rejected", channel=checked.channel.value)
        return refusal
