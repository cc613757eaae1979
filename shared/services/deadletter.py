"""Dead letters: what the host poisoned, recorded with its reason and payload kept for replay.

Why two entry points: a poisoned message that still decodes to a request is marked DeadLettered on
its own ledger row (the payload is already there); anything else (not JSON, no usable id) is kept
verbatim in the dead-letters table under its queue message id, so nothing is ever dropped.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from shared.adapters.tables import Conflict, TableStore
from shared.ledger import Ledger, LedgerRow, iso, transition_fields
from shared.models import MESSAGE_ID_PATTERN, Status
from shared.observability import count, emit_warning
from shared.services.due import DueIndex, schedule_retention
from shared.status import pipeline_may_set
from shared.tables import split_payload
from shared.validation import content_id

log = logging.getLogger(__name__)
RAW_PARTITION = "raw"


class DeadLetterService:
    def __init__(
        self,
        ledger: Ledger,
        dead_letters: TableStore,
        clock: Callable[[], datetime],
        retention: DueIndex | None = None,
        content_days: int = 7,
    ) -> None:
        self._ledger = ledger
        self._dead_letters = dead_letters
        self._now = clock
        self._retention = retention
        self._content_days = content_days

    async def record(self, body: bytes, queue_message_id: str, reason: str) -> str:
        """Record one poisoned message; returns the id it was recorded under."""
        for message_id in _candidate_ids(body):
            row = await self._ledger.get(message_id)
            if row is not None:
                await self._mark(row, reason)
                return message_id
        await self.record_raw(body.decode("utf-8", errors="replace"), queue_message_id, reason)
        return f"raw:{queue_message_id}"

    async def _mark(self, row: LedgerRow, reason: str) -> None:
        now = self._now()

        def decide(current: LedgerRow) -> dict[str, Any] | None:
            if not pipeline_may_set(current.status, Status.DEAD_LETTERED):
                return None
            last_error = current.get("LastError")
            full_reason = f"{reason}; last error: {last_error}" if last_error else reason
            return transition_fields(Status.DEAD_LETTERED, now, Reason=full_reason[:1000], StatusEventTime=iso(now))

        await self._ledger.change(row.message_id, decide)
        await schedule_retention(self._retention, row.message_id, str(row.get("CreatedAt", "")), self._content_days)
        emit_warning(
            log,
            "message.dead_lettered",
            "dead-lettered message_id=%s",
            row.message_id,
            message_id=row.message_id,
            channel=row.channel.value,
            status=Status.DEAD_LETTERED.value,
        )
        count(log, "dead_lettered", channel=row.channel.value)

    async def record_raw(self, text: str, queue_message_id: str, reason: str) -> None:
        """Keep an undecodable payload verbatim (insert-if-absent: a redelivery is a no-op)."""
        now = self._now()
        try:
            await self._dead_letters.insert(
                {
                    "PartitionKey": RAW_PARTITION,
                    "RowKey": queue_message_id,
                    "Reason": reason[:1000],
                    "At": iso(now),
                    "Replayed": False,
                    **split_payload(text[:60_000]),
                }
            )
        except Conflict:
            return
        emit_warning(
            log,
            "message.dead_lettered",
            "undecodable message kept queue_message_id=%s",
            queue_message_id,
            message_id=f"raw:{queue_message_id}",
            reason=reason[:200],
        )
        count(log, "dead_lettered", channel="unknown")

    async def raw_entries(self) -> list[dict[str, Any]]:
        return [row async for row in self._dead_letters.query("PartitionKey eq @pk", {"pk": RAW_PARTITION})]


def _candidate_ids(body: bytes) -> list[str]:
    """The ledger ids this body may have been recorded under: its own id, else its content id."""
    ids = [content_id(body)]
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ids
    candidate = data.get("id") if isinstance(data, dict) else None
    if isinstance(candidate, str) and re.fullmatch(MESSAGE_ID_PATTERN, candidate):
        ids.insert(0, candidate)
    return ids
