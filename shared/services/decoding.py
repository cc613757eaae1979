"""Step 1 of the send recipe: from the queue's bytes to a checked request, or a recorded rejection.

A queue message that references a stored request (claim-check) becomes that request. Only a reference
of the exact shape the client and the intake write is followed (`parse_payload_ref`), and only to the
blob it was written for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from shared.adapters.blobs import PayloadStore
from shared.claimcheck import parse_payload_ref
from shared.errors import FieldError, PermanentError, ValidationFailed
from shared.ids import content_id
from shared.services.outcomes import Outcome
from shared.services.rejections import RequestRejections
from shared.settings import Settings
from shared.validation import CheckedRequest, check_request, parse_request


@dataclass(frozen=True)
class QueueDelivery:
    """What the queue trigger hands over: the decoded body and the queue's own facts."""

    body: bytes
    queue_message_id: str
    dequeue_count: int


class RequestDecoder:
    def __init__(
        self,
        settings: Settings,
        payloads: PayloadStore | None,
        rejections: RequestRejections,
        clock: Callable[[], datetime],
    ) -> None:
        self._settings = settings
        self._payloads = payloads
        self._rejections = rejections
        self._now = clock

    async def decode(self, delivery: QueueDelivery) -> CheckedRequest | Outcome:
        """The checked request; or Rejected (recorded now), or Duplicate (an invalid copy of a recorded id)."""
        try:
            body = await self._resolve(delivery.body)
        except PermanentError as exc:
            return _outcome(await self._rejections.unparsed(delivery.body, [FieldError("payloadRef", str(exc))]))
        try:
            request = parse_request(body)
        except ValidationFailed as exc:
            return _outcome(await self._rejections.unparsed(body, exc.errors))
        message_id = request.id or content_id(self._settings.consent_hash_key, body)
        try:
            return check_request(request, self._settings, message_id, self._now())
        except ValidationFailed as exc:
            return _outcome(await self._rejections.invalid(message_id, request.channel.value, exc.errors, body))

    async def _resolve(self, body: bytes) -> bytes:
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


def _outcome(recorded: bool) -> Outcome:
    return Outcome.REJECTED if recorded else Outcome.DUPLICATE
