"""Operator actions that change state: replay dead letters, force a resend. Audited, with a reason.

Why replay goes through the ledger: a dead-lettered message may in fact have been sent (the worker
died after ACS accepted it). Replay restores the row to where the pipeline left it, so the send
path's crash rules apply: a claimed row is resent only when ACS can deduplicate it, an email asks
ACS first, and what cannot be checked becomes Unknown instead of a duplicate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime

from shared.adapters.queues import QueueWriter
from shared.adapters.tables import TableStore
from shared.clock import Clock, iso
from shared.ledger import Ledger, queue_body
from shared.models import Status
from shared.observability import emit
from shared.schema import LEDGER_STATUS_FILTER, LedgerRow
from shared.services.audit import AuditLog

log = logging.getLogger(__name__)
NO_SUCH_MESSAGE = "skipped: no such message"


@dataclass(frozen=True)
class ReplayResult:
    message_id: str
    action: str  # "requeued" | "skipped: <why>"


class OperatorService:
    def __init__(
        self,
        ledger: Ledger,
        messages: TableStore,
        outbound: QueueWriter,
        audit: AuditLog,
        clock: Clock,
    ) -> None:
        self._ledger = ledger
        self._messages = messages
        self._outbound = outbound
        self._audit = audit
        self._now = clock

    async def dead_lettered(self) -> list[LedgerRow]:
        """Ledger rows in DeadLettered (an operator listing: a filtered scan)."""
        rows = self._messages.query(LEDGER_STATUS_FILTER, {"s": Status.DEAD_LETTERED.value})
        return [LedgerRow.from_entity(r) async for r in rows]

    async def replay(self, message_id: str, *, actor: str, reason: str, force_resend: bool = False) -> ReplayResult:
        """Replay one DeadLettered (or, with force, Unknown) message through the pipeline."""
        allowed = {Status.DEAD_LETTERED} | ({Status.UNKNOWN} if force_resend else set())
        row = await self._ledger.get(message_id)
        if row is None:
            return ReplayResult(message_id, NO_SUCH_MESSAGE)
        if row.status not in allowed:
            return ReplayResult(message_id, f"skipped: status is {row.status.value}")
        now = self._now()
        restored = await self._ledger.change(message_id, lambda current: _restore(current, allowed, force_resend, now))
        if restored is None or restored.status not in (Status.ACCEPTED, Status.SENDING):
            return ReplayResult(message_id, "skipped: changed meanwhile")
        body = queue_body(restored)
        if body is None:
            return ReplayResult(message_id, "skipped: payload purged by retention")
        await self._outbound.send(body)
        action = "replay-force-resend" if force_resend else "replay"
        await self._audit.record(actor=actor, action=action, subject=message_id, reason=reason, now=now)
        emit(
            log,
            "operator.action",
            "replayed",
            message_id=message_id,
            operator=actor,
            action=action,
        )
        return ReplayResult(message_id, "requeued")


def _restore(row: LedgerRow, allowed: set[Status], force: bool, now: datetime) -> LedgerRow | None:
    if row.status not in allowed:
        return None
    stamp = iso(now)
    if force:  # the operator accepts the duplicate risk: next generation of repeatability ids
        return replace(
            row,
            status=Status.ACCEPTED,
            generation=0,
            replayed_at=stamp,
            updated_at=stamp,
            previous_generation=row.generation,
        )
    status = Status.SENDING if row.first_sent_at else Status.ACCEPTED
    return replace(row, status=status, replayed_at=stamp, updated_at=stamp)
