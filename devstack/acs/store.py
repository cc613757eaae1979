"""What the emulator remembers: accepted sends, ground truth, repeatability results, email operations.

Why: tests prove "no duplicate sends" and "the ledger matches reality" by asking the emulator, so
every accepted send is kept (content as a hash; the raw text only in memory for inspection), and a
repeat of a repeatability id or Operation-Id is answered from memory instead of being sent again.
Raw request counts are kept apart so retries stay visible. Lives on the emulator's event loop only.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from devstack.acs.models import (
    Channel,
    Final,
    InboundRecord,
    SendRecord,
    TruthRecord,
    sha256_hex,
)


@dataclass(frozen=True)
class EmailOperation:
    """An email send's long-running operation, as `GET /emails/operations/{id}` reports it."""

    operation_id: str
    done_at: float
    failed: bool

    def status_body(self) -> dict[str, Any]:
        if time.monotonic() < self.done_at:
            return {"id": self.operation_id, "status": "Running"}
        if self.failed:
            error = {"code": "EmailDropped", "message": "Email was dropped after several attempts to deliver."}
            return {"id": self.operation_id, "status": "Failed", "error": error}
        return {"id": self.operation_id, "status": "Succeeded"}

    @property
    def running(self) -> bool:
        return time.monotonic() < self.done_at


@dataclass(frozen=True)
class SendFacts:
    """The facts about one recipient of one send, before the ledger numbers it."""

    channel: Channel
    to: str
    sender: str
    message_id: str | None
    content: str
    tag: str | None = None
    operation_id: str | None = None
    repeatability_id: str | None = None


class Ledger:
    """Sends, truth, repeatability memory, email operations, inbound messages and request counts."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self._seq = itertools.count(1)
        self._sends: list[SendRecord] = []
        self._truth: list[TruthRecord] = []
        self._repeats: dict[tuple[Channel, str], Any] = {}
        self._operations: dict[str, EmailOperation] = {}
        self._inbound: list[InboundRecord] = []
        self._requests: Counter[str] = Counter()

    def count_request(self, route: str) -> None:
        self._requests[route] += 1
        self._requests["total"] += 1

    def request_counts(self) -> dict[str, int]:
        return dict(self._requests)

    def remembered(self, channel: Channel, key: str | None) -> Any:
        """The original result stored for a repeatability key, or None if it is new."""
        return None if key is None else self._repeats.get((channel, key))

    def remember(self, channel: Channel, key: str | None, result: Any) -> None:
        if key is not None:
            self._repeats[(channel, key)] = result

    def record(self, facts: SendFacts, final: Final) -> None:
        """Record one recipient's outcome in the truth view and, unless rejected, in the sends log."""
        now = datetime.now(UTC)
        self._truth.append(
            TruthRecord(
                channel=facts.channel,
                to=facts.to,
                final=final,
                message_id=facts.message_id,
                at=now,
                tag=facts.tag,
                operation_id=facts.operation_id,
                repeatability_id=facts.repeatability_id,
            )
        )
        if final is Final.REJECTED or facts.message_id is None:
            return
        self._sends.append(
            SendRecord(
                seq=next(self._seq),
                channel=facts.channel,
                to=facts.to,
                sender=facts.sender,
                message_id=facts.message_id,
                content_sha256=sha256_hex(facts.content),
                at=now,
                tag=facts.tag,
                operation_id=facts.operation_id,
                repeatability_id=facts.repeatability_id,
                content=facts.content,
            )
        )

    def sends(self, channel: Channel | None = None) -> list[SendRecord]:
        return [send for send in self._sends if channel is None or send.channel is channel]

    def truth(self) -> list[TruthRecord]:
        return list(self._truth)

    def duplicates(self) -> list[dict[str, Any]]:
        """Groups of accepted sends with the same (channel, to, content) seen more than once."""
        groups: defaultdict[tuple[Channel, str, str], list[SendRecord]] = defaultdict(list)
        for send in self._sends:
            groups[(send.channel, send.to, send.content_sha256)].append(send)
        return [
            {
                "channel": str(channel),
                "to": to,
                "contentSha256": digest,
                "count": len(sends),
                "messageIds": [send.message_id for send in sends],
            }
            for (channel, to, digest), sends in groups.items()
            if len(sends) > 1
        ]

    def add_operation(self, operation: EmailOperation) -> None:
        self._operations[operation.operation_id] = operation

    def operation(self, operation_id: str) -> EmailOperation | None:
        return self._operations.get(operation_id)

    def add_inbound(self, record: InboundRecord) -> None:
        self._inbound.append(record)

    def inbound(self) -> list[InboundRecord]:
        return list(self._inbound)
