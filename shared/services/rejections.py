"""Input that cannot be processed, recorded once with its reason, never retried.

- A send request that fails validation becomes a Rejected ledger row with field errors and the body
  verbatim (as far as a row holds it), under the id it names or else its keyed content id.
- A valid request under an id that already holds a different request is refused (IdReused) and leaves
  a trace in that message's history, not a second send.
- A malformed ACS event is kept once in the rejected-events table under a hash of its content, so every
  delivery of the same event finds the same row and Event Grid gets its acknowledgement.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from shared.adapters.blobs import PayloadStore
from shared.adapters.queues import MAX_PAYLOAD_BYTES
from shared.adapters.tables import TableStore
from shared.claimcheck import payload_blob_name
from shared.clock import iso
from shared.errors import Conflict, FieldError, IdReused, ValidationFailed
from shared.events_model import lower_case_keys, stable_json
from shared.ids import content_id
from shared.ledger import Ledger
from shared.models import MESSAGE_ID_PATTERN, Channel, Status
from shared.observability import count, emit, emit_warning
from shared.schema import REJECTED_EVENTS_PARTITION, LedgerRow, conflict_entity, rejected_event_entity, verbatim_text
from shared.services.due import DueIndex, schedule_retention
from shared.settings import Settings
from shared.validation import load_json

log = logging.getLogger(__name__)

REJECTED_PARTITION = REJECTED_EVENTS_PARTITION
# Payload characters kept with a rejected event: 12 properties of 30,000 UTF-16 units stay well under
# the 1 MiB a table entity may hold (an Event Grid event is at most 1 MB; larger ones are cut, and say so).
MAX_REJECTED_PAYLOAD = 360_000


def claimed_ids(key: bytes, body: bytes) -> tuple[str | None, str, str]:
    """What a body that may not be a valid request says of itself: the id it names (if it is a valid
    id), its channel name ("unknown" if none), and its keyed content id (the id it gets without one)."""
    own = content_id(key, body)
    try:
        data = load_json(body)
    except ValidationFailed:
        return None, "unknown", own
    if not isinstance(data, dict):
        return None, "unknown", own
    candidate, channel = data.get("id"), data.get("channel")
    channel_name = channel if isinstance(channel, str) and channel in {c.value for c in Channel} else "unknown"
    named = candidate if isinstance(candidate, str) and re.fullmatch(MESSAGE_ID_PATTERN, candidate) else None
    return named, channel_name, own


class RequestRejections:
    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        retention: DueIndex | None,
        payloads: PayloadStore | None,
        clock: Callable[[], datetime],
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._retention = retention
        self._payloads = payloads
        self._now = clock

    async def unparsed(self, body: bytes, errors: list[FieldError]) -> bool:
        """A body that is no request at all: recorded under the id it names, else its content id."""
        named, channel, own = claimed_ids(self._settings.consent_hash_key, body)
        return await self.invalid(named or own, channel, errors, body)

    async def invalid(self, message_id: str, channel: str, errors: list[FieldError], body: bytes) -> bool:
        """Record the Rejected row; False if the id exists already (an invalid copy of it: not recorded)."""
        now = self._now()
        reason = "; ".join(f"{e.field}: {e.message}" for e in errors)[:1000]
        # Verbatim, whatever the bytes (text when UTF-8, else base64), as far as a row holds it.
        text, encoding = verbatim_text(body[:MAX_PAYLOAD_BYTES])
        row = LedgerRow(
            message_id=message_id,
            status=Status.REJECTED,
            channel_name=channel,
            errors=json.dumps([e.as_dict() for e in errors])[:30_000],
            created_at=iso(now),
            source="queue",
            payload=text,
            payload_encoding=encoding,
            payload_bytes=min(len(body), MAX_PAYLOAD_BYTES),
            payload_truncated=True if len(body) > MAX_PAYLOAD_BYTES else None,
        ).moved_to(Status.REJECTED, iso(now), reason=reason)
        if not await self._ledger.record_rejected(row):
            emit(
                log,
                "message.duplicate_skipped",
                "invalid copy of an existing id",
                message_id=message_id,
                status=Status.REJECTED.value,
            )
            return False
        await schedule_retention(self._retention, message_id, iso(now), self._settings.retention_days["content"])
        _log_rejected(message_id, channel, reason)
        return True

    async def reused(self, message_id: str, channel: Channel, reused: IdReused, source: str) -> None:
        """Keep a trace of the refused request in the message's history (when, from where, and its
        digest; not its content, which its producer still has), and drop any text it stored."""
        digest = self._ledger.payload_hash(reused.payload)
        now = iso(self._now())
        with contextlib.suppress(Conflict):  # the same refused request again: already on record
            await self._ledger.record_history(conflict_entity(message_id, digest, source, now))
        ours = payload_blob_name(message_id, reused.payload)
        if self._payloads is not None and ours != reused.stored_payload_ref:
            await self._payloads.delete(ours)  # stored by the producer or by us before the row was read
        emit_warning(
            log,
            "message.id_reused",
            "id already used by a different request, not sent",
            message_id=message_id,
            channel=channel.value,
            reason="id-reused",
        )
        count(log, "id_reused", channel=channel.value)


def _log_rejected(message_id: str, channel: str, reason: str) -> None:
    emit(
        log,
        "message.rejected",
        "rejected",
        message_id=message_id,
        channel=channel,
        status=Status.REJECTED.value,
        reason=reason,
    )
    count(log, "rejected", channel=channel)


class EventRejections:
    def __init__(self, table: TableStore, clock: Callable[[], datetime]) -> None:
        self._table = table
        self._now = clock

    async def record(self, raw: Any, reason: str) -> None:
        """Record a malformed event once, with its payload, under a key derived from its content."""
        payload = stable_json(raw)
        keys = lower_case_keys(raw) if isinstance(raw, Mapping) else {}
        entity = rejected_event_entity(
            digest=hashlib.sha256(payload.encode()).hexdigest()[:40],
            reason=storable(reason)[:1000],
            event_type=event_type_of(raw),
            event_id=storable(str(keys.get("id") or ""))[:200],
            at=iso(self._now()),
            payload=payload,
            kept=payload[:MAX_REJECTED_PAYLOAD],
        )
        try:
            await self._table.insert(entity)
        except Conflict:
            return  # an earlier delivery recorded it
        emit_warning(log, "event.rejected", "malformed event rejected", reason=reason[:200])
        count(log, "events_ignored", reason="malformed")


def event_type_of(raw: Any) -> str:
    keys = lower_case_keys(raw) if isinstance(raw, Mapping) else {}
    return storable(str(keys.get("eventtype") or keys.get("type") or ""))[:200]


def storable(text: str) -> str:
    """Text a property can hold whatever the event carried (lone surrogates, control characters)."""
    return json.dumps(text, ensure_ascii=True)[1:-1]
