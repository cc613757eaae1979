"""Dead letters: what the host poisoned, recorded with its reason and payload kept for replay.

Why the reconcile timer drains the poison queue instead of a queue trigger: the host base64-decodes
every queue message before a function sees it, and a message it cannot decode on a queue whose name
already ends in `-poison` has nowhere to go: the extension's `HandlePoisonMessageAsync` does nothing
when there is no poison queue, so the message stays under the listener's 10-minute receive lock,
is received again, and expires unseen after 7 days (`functions-host.md` §1.4-1.5; the extension's
`QueueServiceClientProvider.CreateMessageDecodingFailedHandler` and `QueueProcessor`). A trigger on
`<queue>-poison` would hold exactly the messages that most need recording. So the app reads the
poison queue itself, undecoded, and records every message whatever its bytes.

Why two outcomes: a poisoned message that is a request the ledger holds is marked DeadLettered on its
own ledger row (the payload is already there); anything else (not base64, not JSON, no matching row)
is kept verbatim in the dead-letters table under its queue message id, so nothing is ever dropped.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re

from shared.adapters.tables import TableStore
from shared.clock import Clock, iso
from shared.errors import Conflict, ValidationFailed
from shared.ids import content_id
from shared.ledger import Ledger, canonical_payload, queue_body
from shared.models import MESSAGE_ID_PATTERN, Status
from shared.observability import count, emit_warning
from shared.schema import PARTITION_FILTER, RAW_PARTITION, LedgerRow, RawDeadLetter, raw_dead_letter_entity
from shared.services.due import DueIndex, schedule_retention
from shared.status import pipeline_may_set
from shared.validation import load_json, parse_request

log = logging.getLogger(__name__)
GAVE_UP = "the host gave up after maxDequeueCount attempts"
NOT_BASE64 = "not base64: the host could not decode it, so no function ever saw it; kept as written"
_BASE64_WHITESPACE = str.maketrans("", "", " \t\r\n")


def host_decode(text: str) -> bytes | None:
    """The body the host hands a function for this queue text (`messageEncoding: base64`), or None when
    it cannot decode it. Like .NET's Convert.FromBase64String, whitespace is ignored."""
    try:
        return base64.b64decode(text.translate(_BASE64_WHITESPACE), validate=True)
    except (binascii.Error, ValueError):
        return None


class DeadLetterService:
    def __init__(
        self,
        ledger: Ledger,
        dead_letters: TableStore,
        clock: Clock,
        retention: DueIndex | None = None,
        content_days: int = 7,
        content_key: bytes = b"",
    ) -> None:
        self._ledger = ledger
        self._dead_letters = dead_letters
        self._now = clock
        self._retention = retention
        self._content_days = content_days
        self._content_key = content_key

    async def record_poisoned(self, queue_text: str, queue_message_id: str) -> str:
        """Record one message as it sits on the poison queue, whatever its text; returns where."""
        body = host_decode(queue_text)
        if body is None:
            await self.record_raw(queue_text.encode("utf-8", errors="surrogatepass"), queue_message_id, NOT_BASE64)
            return f"raw:{queue_message_id}"
        return await self.record(body, queue_message_id, GAVE_UP)

    async def record(self, body: bytes, queue_message_id: str, reason: str) -> str:
        """Record one poisoned request; returns the id it was recorded under. Its ledger row is marked
        only when the body is that row's request: a body that merely names an id is kept raw."""
        own = content_id(self._content_key, body)  # a row under it was made from this very body
        for message_id in _candidate_ids(own, body):
            row = await self._ledger.get(message_id)
            if row is not None and (message_id == own or self._holds(row, message_id, body)):
                await self._mark(row, reason)
                return message_id
        await self.record_raw(body, queue_message_id, reason)
        return f"raw:{queue_message_id}"

    def _holds(self, row: LedgerRow, message_id: str, body: bytes) -> bool:
        """Is `body` the request stored in `row` (its queue body, or the same request re-serialised)?"""
        text = body.decode("utf-8", errors="replace")
        if text == queue_body(row):
            return True
        if not row.payload_hash:  # a Rejected row holds no request this body could be
            return False
        try:
            request = parse_request(body)
        except ValidationFailed:
            return False
        return self._ledger.payload_hash(canonical_payload(request, message_id)) == row.payload_hash

    async def _mark(self, row: LedgerRow, reason: str) -> None:
        now = self._now()

        def decide(current: LedgerRow) -> LedgerRow | None:
            if not pipeline_may_set(current.status, Status.DEAD_LETTERED):
                return None
            last_error = current.last_error
            full_reason = f"{reason}; last error: {last_error}" if last_error else reason
            return current.moved_to(
                Status.DEAD_LETTERED, iso(now), reason=full_reason[:1000], status_event_time=iso(now)
            )

        await self._ledger.change(row.message_id, decide)
        await schedule_retention(self._retention, row.message_id, row.created_at or "", self._content_days)
        emit_warning(
            log,
            "message.dead_lettered",
            "dead-lettered",
            message_id=row.message_id,
            channel=row.channel.value,
            status=Status.DEAD_LETTERED.value,
        )
        count(log, "dead_lettered", channel=row.channel.value)

    async def record_raw(self, body: bytes, queue_message_id: str, reason: str) -> None:
        """Keep a payload verbatim, whatever its bytes (insert-if-absent: a second pass is a no-op)."""
        now = self._now()
        try:
            await self._dead_letters.insert(raw_dead_letter_entity(queue_message_id, reason[:1000], iso(now), body))
        except Conflict:
            return
        emit_warning(
            log,
            "message.dead_lettered",
            "undecodable message kept",
            message_id=f"raw:{queue_message_id}",
            reason=reason[:200],
        )
        count(log, "dead_lettered", channel="unknown")

    async def raw_entries(self) -> list[RawDeadLetter]:
        rows = self._dead_letters.query(PARTITION_FILTER, {"pk": RAW_PARTITION})
        return [RawDeadLetter.from_entity(row) async for row in rows]

    async def raw_entry(self, queue_message_id: str) -> RawDeadLetter | None:
        stored = await self._dead_letters.get(RAW_PARTITION, queue_message_id)
        return RawDeadLetter.from_entity(stored.entity) if stored is not None else None


def _candidate_ids(own: str, body: bytes) -> list[str]:
    """The ledger ids this body may have been recorded under: its own id, else its content id `own`."""
    ids = [own]
    try:
        data = load_json(body)
    except ValidationFailed:
        return ids
    candidate = data.get("id") if isinstance(data, dict) else None
    if isinstance(candidate, str) and re.fullmatch(MESSAGE_ID_PATTERN, candidate):
        ids.insert(0, candidate)
    return ids
