"""Reconciliation behind the `reconcile` timer: close the loop between sent and reported.

Why it costs O(due items): it reads only the due index (a range query), never the history.
The recipe for one run:
1. Stuck checks: a row still Accepted or Sending long after acceptance is re-enqueued; the send
   path decides safely (a Sending row is resent only when ACS can deduplicate it, else email asks
   ACS and SMS/WhatsApp become Unknown).
2. Fallback intents: a message that ended in a way its request falls back on, and has no child yet (its
   process died before creating it), gets it now (`services/fallback.py`); otherwise the intent goes.
3. SLA checks: a row still Sent after its channel's SLA: email asks the operation status, SMS and
   WhatsApp become Expired (a late real report still wins).
4. Orphan events whose recheck is due are re-matched (their own due index, so the cost does not grow
   with the number parked); those older than the orphan window are given up and counted.
5. The poison queues (of both lanes) are drained: every message on it is recorded (DeadLettered on its ledger row, or
   kept verbatim with its reason) and removed; its depth before the drain goes to the summary.
6. One summary (the cohort whose SLA closed in this run) goes to the reports table and the log.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from shared.adapters.group_commit import MAX_OPERATIONS
from shared.adapters.queues import QueueWriter, RawMessage
from shared.adapters.tables import TableStore
from shared.clock import Clock, iso
from shared.ids import operation_id
from shared.ledger import Ledger, payload_json, queue_body
from shared.models import MAX_FALLBACKS, Channel, Priority, Status
from shared.observability import count, emit
from shared.schema import LedgerRow, ReportRow
from shared.services.deadletter import DeadLetterService
from shared.services.due import DueEntry, DueIndex, DueKind, schedule_retention
from shared.services.fallback import Fallbacks
from shared.services.orphans import OrphanSweep
from shared.services.outbox import Outbox
from shared.services.providers import Provider
from shared.settings import Settings
from shared.status import OUTCOMES, pipeline_may_set

log = logging.getLogger(__name__)
STUCK_RECHECK = timedelta(minutes=15)
EMAIL_RUNNING_RECHECKS = 3
# Parked events looked at in one run: what is left stays due for the next run, so a burst of reports
# nobody sent spreads over runs instead of pushing one past the function timeout.
ORPHANS_PER_RUN = 2000
# Poison messages recorded per run: a poisoned flood is worked off over a few runs, within the
# function timeout; the depth in the summary shows what is still waiting.
POISON_PER_RUN = 2000
POISON_LOCK_SECONDS = 300


@dataclass
class Summary:
    at: str
    actions: Counter[str] = field(default_factory=Counter)
    cohort: Counter[str] = field(default_factory=Counter)  # "<channel>|<status>" of messages whose SLA closed
    costs: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))  # est. ACS fees (USD) per key
    chains: Counter[str] = field(default_factory=Counter)  # "<channel>>...>|<status>" of closed fallback chains
    chain_costs: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    latencies_ms: list[int] = field(default_factory=list)
    poison_depth: int = 0
    orphans_matched: int = 0
    orphans_given_up: int = 0

    def percentile(self, q: float) -> int | None:
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def row(self) -> ReportRow:
        """The summary as the reports table keeps it."""
        return ReportRow(
            at=self.at,
            actions=dict(self.actions),
            cohort=dict(self.cohort),
            cohort_size=sum(self.cohort.values()),
            reported=sum(n for key, n in self.cohort.items() if key.split("|")[1] in OUTCOMES),
            latency_p50_ms=self.percentile(0.5),
            latency_p95_ms=self.percentile(0.95),
            poison_depth=self.poison_depth,
            orphans_matched=self.orphans_matched,
            orphans_given_up=self.orphans_given_up,
            costs={key: round(usd, 6) for key, usd in self.costs.items()},
            chains=dict(self.chains),
            chain_costs={key: round(usd, 6) for key, usd in self.chain_costs.items()},
        )


@dataclass(frozen=True)
class SendQueues:
    """The send queue (stuck messages go back on it) and its poison queue (drained into dead letters);
    the priority lane and its poison queue likewise, when the app has one."""

    outbound: QueueWriter
    poison: QueueWriter
    priority: QueueWriter | None = None
    priority_poison: QueueWriter | None = None

    def poisons(self) -> tuple[QueueWriter, ...]:
        return (self.poison,) if self.priority_poison is None else (self.poison, self.priority_poison)

    def lane(self, row: LedgerRow) -> QueueWriter:
        """The lane a stuck row goes back to: its own (a request kept in a blob goes to the normal lane)."""
        payload = payload_json(row)
        high = payload is not None and payload.get("priority") == Priority.HIGH.value
        return self.priority if high and self.priority is not None else self.outbound


@dataclass(frozen=True)
class ReconcileStores:
    """Where reconciliation works besides the ledger: the due index it works off, the table its
    summaries go to, and the retention index it schedules sent messages into."""

    due: DueIndex
    reports: TableStore
    retention: DueIndex | None = None


@dataclass(frozen=True)
class Sweeps:
    """What each run looks at besides the due index: parked events, and the status feed's outbox; and
    who creates the fallback messages whose intents are due."""

    orphans: OrphanSweep
    feed: Outbox | None = None
    fallbacks: Fallbacks | None = None


class ReconcileService:
    def __init__(
        self,
        *,
        settings: Settings,
        ledger: Ledger,
        stores: ReconcileStores,
        queues: SendQueues,
        provider: Provider,
        sweeps: Sweeps,
        dead_letters: DeadLetterService,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._due = stores.due
        self._reports = stores.reports
        self._retention = stores.retention
        self._queues = queues
        self._provider = provider
        self._orphans = sweeps.orphans
        self._feed = sweeps.feed
        self._fallbacks = sweeps.fallbacks
        self._dead_letters = dead_letters
        self._now = clock

    async def run(self, limit: int = 5000) -> Summary:
        """One reconciliation pass; returns (and stores) its summary."""
        now = self._now()
        summary = Summary(at=iso(now))
        handled: list[DueEntry] = []
        for entry in await self._due.due(now, limit):
            await self._handle(entry, summary)
            handled.append(entry)
            if len(handled) == MAX_OPERATIONS:  # a crash re-runs at most one batch: each check is idempotent
                await self._due.remove_all(handled)
                handled.clear()
        await self._due.remove_all(handled)
        await self._orphan_pass(now, summary, limit)
        summary.poison_depth = await self._poison_pass(summary)
        await self._reports.upsert(summary.row().to_entity())
        self._log(summary)
        return summary

    async def _handle(self, entry: DueEntry, summary: Summary) -> None:
        row = await self._ledger.get(entry.message_id)
        if row is None:
            summary.actions["missing"] += 1
        elif entry.kind == DueKind.STUCK:
            summary.actions[await self._stuck(row)] += 1
        elif entry.kind == DueKind.FALLBACK:
            summary.actions[await self._fallbacks.recheck(row) if self._fallbacks else "moot"] += 1
        elif entry.kind == DueKind.SLA:
            action, final = await self._sla(row, entry)
            summary.actions[action] += 1
            # A sent message's retention clock is scheduled here, off the send path.
            days = self._settings.retention_days["content"]
            await schedule_retention(self._retention, row.message_id, row.created_at or "", days)
            if action != "extended":  # an extended deadline closes later, and is counted then
                await self._count(final, summary)

    async def _count(self, final: LedgerRow, summary: Summary) -> None:
        """A message whose SLA closed joins the cohort, with its fees; the last message of a fallback chain
        counts its chain too (the chain's outcome is its last message's)."""
        key = f"{final.channel.value}|{final.status.value}"
        summary.cohort[key] += 1
        summary.costs[key] += final.cost_estimate or 0.0
        if final.delivery_latency_ms is not None:
            summary.latencies_ms.append(int(final.delivery_latency_ms))
        if final.fallback_of and not final.fallback_id:
            chain = await self._chain_to(final)
            chain_key = ">".join(r.channel.value for r in chain) + f"|{final.status.value}"
            summary.chains[chain_key] += 1
            summary.chain_costs[chain_key] += sum(r.cost_estimate or 0.0 for r in chain)

    async def _chain_to(self, last: LedgerRow) -> list[LedgerRow]:
        """The fallback chain that ends at `last`, first message first (a read per earlier message)."""
        chain = [last]
        while chain[0].fallback_of and len(chain) <= MAX_FALLBACKS:
            parent = await self._ledger.get(chain[0].fallback_of)
            if parent is None:
                break
            chain.insert(0, parent)
        return chain

    async def _stuck(self, row: LedgerRow) -> str:
        if row.status not in (Status.ACCEPTED, Status.SENDING):
            return "moot"
        body = queue_body(row)
        if body is None:
            return "no-payload"
        await self._queues.lane(row).send(body)
        await self._due.add(row.message_id, DueKind.STUCK, self._now() + STUCK_RECHECK)
        return "requeued" if row.status == Status.ACCEPTED else "redriven"

    async def _sla(self, row: LedgerRow, entry: DueEntry) -> tuple[str, LedgerRow]:
        """What closing the report deadline did, and the row as it stands after it."""
        if row.status != Status.SENT:
            return "moot", row
        if row.channel == Channel.EMAIL:
            return await self._email_sla(row, entry)
        final = await self._set(row, Status.EXPIRED, "no delivery report within the channel SLA")
        count(log, "expired", channel=row.channel.value)
        return "expired", final

    async def _email_sla(self, row: LedgerRow, entry: DueEntry) -> tuple[str, LedgerRow]:
        status = (await self._provider.email_status(operation_id(row.message_id)) or "").lower()
        if status in {"failed", "canceled"}:
            return "failed", await self._set(row, Status.FAILED, f"email operation ended {status}")
        if status in {"running", "notstarted"} and row.sla_rechecks < EMAIL_RUNNING_RECHECKS:
            await self._ledger.change(row.message_id, lambda r: replace(r, sla_rechecks=r.sla_rechecks + 1))
            sla = timedelta(minutes=self._settings.sla_minutes[Channel.EMAIL])
            await self._due.add(row.message_id, DueKind.SLA, self._now() + sla)
            return "extended", row
        reason = f"no delivery report within the SLA (operation {status or 'unknown'})"
        final = await self._set(row, Status.EXPIRED, reason)
        count(log, "expired", channel=row.channel.value)
        return "expired", final

    async def _set(self, row: LedgerRow, status: Status, reason: str) -> LedgerRow:
        """Move a Sent row to `status`, starting from the row just read (its etag guards the write, and a
        report that got there first makes it read and decide again); returns the row as it then stands."""
        now = self._now()

        def decide(current: LedgerRow) -> LedgerRow | None:
            if current.status != Status.SENT or not pipeline_may_set(current.status, status):
                return None
            return current.moved_to(status, iso(now), reason=reason, status_event_time=iso(now))

        return await self._ledger.change(row.message_id, decide, start=row) or row

    async def _orphan_pass(self, now: datetime, summary: Summary, limit: int) -> None:
        """Parked events whose recheck is due, through their own due index (never a scan of them all)."""
        matched, given_up = await self._orphans.run(now, min(limit, ORPHANS_PER_RUN))
        summary.orphans_matched += matched
        summary.orphans_given_up += given_up
        if self._feed is not None:
            republished = await self._feed.sweep(now, limit)
            if republished:
                summary.actions["feed-republished"] += republished
                count(log, "feed_republished", republished)

    async def _poison_pass(self, summary: Summary) -> int:
        """Record and remove every message on the poison queues, undecoded (see `services.deadletter` for
        why no queue trigger does this). Returns the depth found: what reached them since the last run.
        A message taken here stays invisible for POISON_LOCK_SECONDS; if this run dies before deleting
        it, the next run finds it again and its record is already there (insert-if-absent)."""
        depth = taken = 0
        for poison in self._queues.poisons():
            depth += await poison.depth()
            taken += await self._drain(poison, POISON_PER_RUN - taken)
        if taken:
            summary.actions["dead-lettered"] += taken
        return depth

    async def _drain(self, poison: QueueWriter, budget: int) -> int:
        taken = 0
        while taken < budget:
            batch = await poison.receive(32, visibility_seconds=POISON_LOCK_SECONDS)
            if not batch:
                break
            # A batch at a time, concurrently: each message costs a few storage round trips (200 poisoned
            # requests on the local stack: 16.2 s one by one, 12.7 s in batches).
            results = await asyncio.gather(*(self._salvage(poison, m) for m in batch), return_exceptions=True)
            failures = [r for r in results if isinstance(r, BaseException)]
            if failures:
                raise failures[0]
            taken += len(batch)
        return taken

    async def _salvage(self, poison: QueueWriter, message: RawMessage) -> None:
        await self._dead_letters.record_poisoned(message.text, message.id)
        await poison.delete(message)

    def _log(self, summary: Summary) -> None:
        row = summary.row()
        emit(
            log,
            "reconcile.summary",
            f"reconcile actions={json.dumps(dict(row.actions))} cohort={json.dumps(dict(row.cohort))} "
            f"poison={summary.poison_depth}",
            count=row.cohort_size,
            latency_ms=row.latency_p95_ms,
        )
        count(log, "poison_depth", summary.poison_depth)
