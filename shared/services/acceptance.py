"""A checked request's place in the ledger and on the queue: accepting it and putting it back.

The request is stored as its canonical JSON: inline in the ledger row, or, when too large for a queue
message or a table property, in blob storage with the row and every queue message referencing it
(claim-check).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from shared.adapters.blobs import PayloadStore
from shared.adapters.queues import MAX_PAYLOAD_BYTES, QueueWriter
from shared.claimcheck import payload_blob_name, reference_body
from shared.ledger import Ledger, canonical_payload
from shared.models import Priority, Status
from shared.observability import emit
from shared.schema import LedgerRow
from shared.services.due import DueIndex, DueKind
from shared.validation import CheckedRequest

log = logging.getLogger(__name__)

# An HTTP-accepted request whose queue message is lost is found by reconciliation after this long.
STUCK_AFTER = timedelta(minutes=15)


class Acceptance:
    def __init__(
        self,
        ledger: Ledger,
        outbound: QueueWriter,
        payloads: PayloadStore | None,
        due: DueIndex,
        clock: Callable[[], datetime],
        priority_lane: QueueWriter | None = None,
    ) -> None:
        self._ledger = ledger
        self._outbound = outbound
        self._priority_lane = priority_lane or outbound
        self.payloads = payloads
        self._due = due
        self._now = clock

    async def accept(self, checked: CheckedRequest, source: str, *, claim: bool = False) -> tuple[LedgerRow, bool]:
        """Insert the row if absent (IdReused if the id holds a different request). Returns the row as
        stored and whether this call wrote it; with `claim`, a row it wrote is already Sending."""
        now = self._now()
        payload, ref = await self.stored(checked)
        new_row = self._ledger.new_row(checked, payload, now, source, ref, claim=claim)
        row, created = await self._ledger.accept(new_row, payload)
        if not created:
            return row, False
        if source != "queue":  # a queued request is redelivered by the queue; an HTTP accept may not be
            await self._due.add(checked.message_id, DueKind.STUCK, now + STUCK_AFTER)
        if claim:
            emit(log, "message.sending", "accepted and sending", attempt=1)
        else:
            emit(log, "message.accepted", "message accepted", status=Status.ACCEPTED.value)
        return row, True

    async def recorded(self, message_id: str) -> LedgerRow | None:
        """The message's row, if its id was accepted (or rejected) before."""
        return await self._ledger.get(message_id)

    async def requeue(self, checked: CheckedRequest, delay: float) -> None:
        """Put the request back on its lane's queue, visible after `delay` seconds (a fresh dequeue count).
        A high-priority request waits (rate, 429, backoff) in its own lane, never behind the normal backlog."""
        payload, ref = await self.stored(checked)
        body = reference_body(checked.message_id, ref) if ref else payload
        await self.lane(checked.request.priority).send(body, delay_seconds=delay)

    def lane(self, priority: Priority) -> QueueWriter:
        return self._priority_lane if priority == Priority.HIGH else self._outbound

    async def stored(self, checked: CheckedRequest) -> tuple[str, str | None]:
        """The request as stored: its text, and the name of the blob that holds it when too large for a
        queue message or a table property."""
        payload = canonical_payload(checked.request, checked.message_id)
        if self.payloads is None or len(payload.encode()) <= MAX_PAYLOAD_BYTES:
            return payload, None
        name = payload_blob_name(checked.message_id, payload)
        await self.payloads.put(name, payload)
        return payload, name
