"""Channel fallback (issue 18): when a message ends in a way its request names (`fallbackOn`), the
request's next alternative is sent as a message of its own, exactly once, linked both ways.

How an end becomes the next message (the status feed's pattern, `services/outbox.py`):
1. Before the ledger write that moves a message into an end it falls back on, the ledger's hook
   (`FallbackHook`, a `shared.ledger.TransitionHook`) adds an intent to the due index
   (`DueKind.FALLBACK`, due a minute later).
2. After the commit, the hook spawns the child in the background (`Fallbacks.spawn`).
3. Spawn: read the parent's request (inline or its claim-check blob), build the child from the next
   alternative (`shared.validation.child_request`: content derived where it can be; purpose,
   correlation id, metadata, delivery, priority and expiry inherited; the alternatives left become its
   own fallback), check it as the intake does, accept it under an id derived from the parent's
   (`fallback_id`: insert-if-absent, so there is one child whoever spawns it) and enqueue it on its
   lane; then link both ways. An invalid child is recorded Rejected with its field errors, and the chain
   stops there. The child passes every gate of the send path (consent, pause, rate, WhatsApp rules).
4. The reconcile timer reads due intents (`Fallbacks.recheck`): a parent in such an end without a
   child → spawn; otherwise the intent is dropped. A crash between 1 and 3 still ends with one child.
Every path that ends a message (the sender, the event projection, reconciliation) writes through the
ledger, so each is covered with no code of its own.

The spawn decides on the parent's status when it runs (right after the end, or at the sweep): a report
that overturns the end before then (Failed, then a later Delivered) leaves no child, and one that comes
after does not recall the child already created (which may have been sent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from enum import StrEnum

from shared.clock import Clock
from shared.errors import ContactMessagesError, IdReused, TransientError, ValidationFailed
from shared.ledger import Ledger
from shared.models import AnyRequest, FallbackTrigger, Status
from shared.observability import count, detached_context, emit, emit_warning, log_context
from shared.schema import LedgerRow, OutboxRow
from shared.services.acceptance import Acceptance
from shared.services.due import DueIndex, DueKind
from shared.services.logs import about
from shared.services.rejections import RequestRejections
from shared.services.whatsapp import OUTSIDE_SERVICE_WINDOW
from shared.settings import Settings
from shared.templates import TEMPLATE_NOT_APPROVED
from shared.validation import check_request, child_request, fallback_id, parse_request

log = logging.getLogger(__name__)

# The sweep looks this long after the end: by then the in-process spawn has normally made the child.
SPAWN_RECHECK = timedelta(minutes=1)
SOURCE = "fallback"  # the ledger's Source of a message created in place of another
_STATUS_OF = {
    FallbackTrigger.FAILED: Status.FAILED,
    FallbackTrigger.EXPIRED: Status.EXPIRED,
    FallbackTrigger.REFUSED: Status.REJECTED,
    FallbackTrigger.OPTED_OUT: Status.SUPPRESSED,
    FallbackTrigger.UNKNOWN: Status.UNKNOWN,
}
# Rejected for what WhatsApp would refuse: another channel may do. Any other rejection is the request's fault.
REFUSALS = frozenset({TEMPLATE_NOT_APPROVED, OUTSIDE_SERVICE_WINDOW})


class FallbackOutcome(StrEnum):
    SPAWNED = "fallback-spawned"
    EXISTS = "fallback-exists"  # the child was there already (another path spawned it)
    REJECTED = "fallback-rejected"  # the child is invalid: recorded Rejected with its field errors
    ID_REUSED = "fallback-id-reused"  # a different request holds the child's id: no child
    NO_REQUEST = "fallback-no-request"  # the parent's request is gone (purged) or unreadable
    TOO_LATE = "fallback-too-late"  # the request's expiresAt has passed: an alternative would expire unsent
    MOOT = "moot"  # the parent is not (or no longer) in an end it falls back on


def triggers_of(row: LedgerRow) -> frozenset[FallbackTrigger]:
    """The ends `row` falls back on (none when its request has no fallback)."""
    if not row.fallback_on:
        return frozenset()
    known = {t.value: t for t in FallbackTrigger}
    return frozenset(known[t] for t in row.fallback_on.split(",") if t in known)


def trigger_of(row: LedgerRow) -> FallbackTrigger | None:
    """The trigger `row`'s status is, if it is one of those it falls back on."""
    for trigger in triggers_of(row):
        if _STATUS_OF[trigger] == row.status and (trigger != FallbackTrigger.REFUSED or _refused(row)):
            return trigger
    return None


def _refused(row: LedgerRow) -> bool:
    return (row.reason or "").split(":")[0].strip() in REFUSALS


def falls_back(before: LedgerRow | None, after: LedgerRow) -> bool:
    """Does this write move the message into an end it falls back on (from any state that was not one)?
    Not only from a non-terminal status: an Unknown that a Failed report overrides falls back on
    `failed` even when `unknown` is not a trigger."""
    return trigger_of(after) is not None and (before is None or trigger_of(before) is None)


Spawner = Callable[[str], Awaitable[object]]


class FallbackHook:
    """The ledger's hook: an intent before the write that ends a message, its spawn after the commit."""

    def __init__(self, intents: DueIndex, clock: Clock) -> None:
        self._intents = intents
        self._now = clock
        self._spawn: Spawner | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def attach(self, spawn: Spawner | None) -> None:
        """Who creates the child after the commit (the hook exists before the services that spawn:
        the ledger needs it, and they need the ledger). None: only the sweep spawns."""
        self._spawn = spawn

    def stamp(self, before: LedgerRow | None, after: LedgerRow) -> tuple[LedgerRow, list[OutboxRow]]:
        return after, []

    async def before_write(self, before: LedgerRow | None, after: LedgerRow, rows: Sequence[OutboxRow]) -> None:
        if falls_back(before, after):
            await self._intents.add(after.message_id, DueKind.FALLBACK, self._now() + SPAWN_RECHECK)

    def after_failure(self, after: LedgerRow, rows: Sequence[OutboxRow], *, may_have_committed: bool) -> None:
        """Nothing to undo: the intent stays for the sweep, which finds the check moot if nothing committed."""

    def after_commit(self, before: LedgerRow | None, after: LedgerRow, rows: Sequence[OutboxRow]) -> None:
        if self._spawn is not None and falls_back(before, after):
            # Detached: the spawn outlives the write's work and logs under its own ids.
            work = self._background(self._spawn, after.message_id)
            task = asyncio.get_running_loop().create_task(work, context=detached_context())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _background(self, spawn: Spawner, message_id: str) -> None:
        try:
            await spawn(message_id)
        except ContactMessagesError as exc:  # the intent stays: the sweep spawns it
            reason = f"spawn-failed: {type(exc).__name__}"
            emit_warning(
                log,
                "message.fallback",
                "fallback not created now, the sweep will",
                message_id=message_id,
                reason=reason,
            )

    async def drain(self) -> None:
        """Wait for the spawns in flight (tests, and a clean shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks))


class Fallbacks:
    """Creates the child of a message that ended in a way it falls back on (idempotent)."""

    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        acceptance: Acceptance,
        rejections: RequestRejections,
        intents: DueIndex,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._acceptance = acceptance
        self._rejections = rejections
        self._intents = intents
        self._now = clock

    async def spawn(self, parent_id: str) -> FallbackOutcome:
        """Create, enqueue and link the child of `parent_id`, if it is due and not there yet (any step
        may have been done before: each is idempotent)."""
        with log_context(message_id=parent_id):
            return await self._spawn(parent_id)

    async def _spawn(self, parent_id: str) -> FallbackOutcome:
        parent = await self._ledger.get(parent_id)
        if parent is None or trigger_of(parent) is None:
            return FallbackOutcome.MOOT
        request = await self._request(parent)
        if request is None or not request.fallback:
            return FallbackOutcome.NO_REQUEST
        if request.expires_at is not None and request.expires_at <= self._now():
            return FallbackOutcome.TOO_LATE  # the child inherits expiresAt: it would only expire in turn
        child_id = parent.fallback_id or fallback_id(parent_id)
        try:
            child = child_request(request, child_id)
            checked = check_request(child, self._settings, child_id, self._now())
        except ValidationFailed as exc:
            return await self._invalid(parent, child_id, request, exc)
        try:
            with about(checked):
                row, created = await self._acceptance.accept(checked, source=SOURCE)
                if row.status == Status.ACCEPTED:
                    await self._acceptance.requeue(checked, 0)
        except IdReused:
            _log(parent, child_id, "id-reused")
            return FallbackOutcome.ID_REUSED
        await self._link(parent, child_id)
        if created:
            trigger = str(trigger_of(parent))
            _log(parent, child_id, trigger)
            count(log, "fallback", channel=child.channel.value, reason=trigger)
        return FallbackOutcome.SPAWNED if created else FallbackOutcome.EXISTS

    async def recheck(self, parent: LedgerRow) -> str:
        """The reconcile sweep's look at a due intent: spawn what the process that ended `parent` did not."""
        if parent.fallback_id is not None or trigger_of(parent) is None:
            return FallbackOutcome.MOOT.value
        try:
            return (await self.spawn(parent.message_id)).value
        except TransientError:
            await self._intents.add(parent.message_id, DueKind.FALLBACK, self._now() + SPAWN_RECHECK)
            return "fallback-retry"

    async def _request(self, parent: LedgerRow) -> AnyRequest | None:
        """The parent's request as the ledger stored it (inline, or in its claim-check blob)."""
        text = parent.payload
        if parent.payload_ref and self._acceptance.payloads is not None:
            text = await self._acceptance.payloads.get(parent.payload_ref)
        if text is None:
            return None
        with contextlib.suppress(ValidationFailed):
            return parse_request(text)
        return None

    async def _invalid(
        self, parent: LedgerRow, child_id: str, request: AnyRequest, exc: ValidationFailed
    ) -> FallbackOutcome:
        """The child cannot be a valid request (the settings changed since its parent was accepted): a
        Rejected row with the field errors, linked, so the chain shows why it stopped."""
        assert request.fallback
        entry = request.fallback[0]
        text = entry.model_dump_json(by_alias=True, exclude_none=True).encode()
        await self._rejections.invalid(child_id, entry.channel.value, exc.errors, text)
        await self._link(parent, child_id)
        _log(parent, child_id, "invalid")
        return FallbackOutcome.REJECTED

    async def _link(self, parent: LedgerRow, child_id: str) -> None:
        """The child names its parent, then the parent its child (etag-guarded, each once)."""

        def child_of(row: LedgerRow) -> LedgerRow | None:
            return None if row.fallback_of else replace(row, fallback_of=parent.message_id)

        def parent_of(row: LedgerRow) -> LedgerRow | None:
            return None if row.fallback_id else replace(row, fallback_id=child_id)

        await self._ledger.change(child_id, child_of)
        await self._ledger.change(parent.message_id, parent_of)


def _log(parent: LedgerRow, child_id: str, reason: str) -> None:
    """A record about the parent (its id is bound): which child, and why."""
    text = f"fallback {child_id}"
    emit(log, "message.fallback", text, channel=parent.channel_name, status=parent.status.value, reason=reason)
