"""Producer-facing intake for `POST /api/messages`.

Why synchronous validation here: an HTTP producer deserves its field errors now, not a Rejected
row later. Accepting is idempotent on the id: the same id again returns the same message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from shared.clock import Clock
from shared.errors import FieldError, IdReused, TransientError, ValidationFailed
from shared.ids import content_id
from shared.models import FallbackTrigger, Status
from shared.observability import count, emit
from shared.services.acceptance import Acceptance
from shared.services.logs import about
from shared.services.rejections import RequestRejections
from shared.services.whatsapp import Refusal, WhatsAppRules
from shared.settings import Settings
from shared.validation import CheckedRequest, check_request, parse_request

log = logging.getLogger(__name__)

ID_REUSED = "already used by a different request: send a new request under a new id"


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
    ) -> None:
        self._settings = settings
        self._acceptance = acceptance
        self._rejections = rejections
        self._now = clock
        self._whatsapp = whatsapp

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
        if row.status == Status.ACCEPTED:
            # Enqueue even for a repeat: it costs nothing (the ledger dedupes) and heals a crash that
            # happened between an earlier accept and its enqueue.
            await self._acceptance.requeue(checked, 0)
        return IntakeResult(accepted=True, message_id=message_id, created=created)

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
