"""Aggregate reconciliation summaries for `contactmsg report`.

Why it also counts what is not in them: a summary counts a message only once its delivery deadline
(SLA) has passed and a reconcile run has closed it, so a fresh session would read "reported 0/0"
with no hint that its messages are merely not due yet.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

from shared.clock import iso
from shared.models import Channel
from shared.runtime import Services
from shared.schema import DUE_KIND_FILTER, DUE_PARTITION, PARTITION_SINCE_FILTER, REPORT_PARTITION, DueRow, ReportRow
from shared.services.due import DueKind
from shared.services.reconcile import Summary
from shared.status import OUTCOMES

_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_window(text: str) -> timedelta:
    match = re.fullmatch(r"(\d+)([mhd])", text.strip())
    if not match:
        raise ValueError("use a number and a unit: 30m, 6h, 2d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def reconcile_summary(summary: Summary) -> dict[str, Any]:
    """One reconcile pass as structured data (its stored row keeps the counters as JSON text)."""
    row = summary.row()
    return {
        "at": summary.at,
        "actions": dict(summary.actions),
        "cohort": dict(summary.cohort),
        "costs": dict(row.costs),
        "chains": dict(row.chains),
        "chainCosts": dict(row.chain_costs),
        "cohortSize": row.cohort_size,
        "reported": row.reported,
        "latencyP50Ms": row.latency_p50_ms,
        "latencyP95Ms": row.latency_p95_ms,
        "poisonDepth": summary.poison_depth,
        "orphansMatched": summary.orphans_matched,
        "orphansGivenUp": summary.orphans_given_up,
    }


async def collect(svc: Services, window: timedelta, channel: Channel | None) -> dict[str, Any]:
    now = svc.clock()
    start = iso(now - window)
    reports = svc.storage.table(svc.names.reports)
    cohort: Counter[str] = Counter()
    costs: defaultdict[str, float] = defaultdict(float)
    chains: Counter[str] = Counter()
    chain_costs: defaultdict[str, float] = defaultdict(float)
    actions: Counter[str] = Counter()
    p95s: list[int] = []
    runs = 0
    async for entity in reports.query(PARTITION_SINCE_FILTER, {"pk": REPORT_PARTITION, "since": start}):
        row = ReportRow.from_entity(entity)
        runs += 1
        for key, n in row.cohort.items():
            if channel is None or key.startswith(f"{channel.value}|"):
                cohort[key] += n
                costs[key] += row.costs.get(key, 0.0)
        for key, n in row.chains.items():  # a chain is counted under the channel it started on
            if channel is None or key.startswith(f"{channel.value}>"):
                chains[key] += n
                chain_costs[key] += row.chain_costs.get(key, 0.0)
        actions.update(row.actions)
        if row.latency_p95_ms is not None:
            p95s.append(row.latency_p95_ms)
    total = sum(cohort.values())
    reported = sum(n for k, n in cohort.items() if k.split("|")[1] in OUTCOMES)
    return {
        "since": start,
        "runs": runs,
        "cohort": dict(cohort),
        "costs": {key: round(usd, 6) for key, usd in costs.items()},
        "chains": dict(chains),
        "chainCosts": {key: round(usd, 6) for key, usd in chain_costs.items()},
        "actions": dict(actions),
        "total": total,
        "reported": reported,
        "reportedShare": round(reported / total, 4) if total else None,
        "worstP95Ms": max(p95s) if p95s else None,
        **await _not_counted_yet(svc, now, channel),
    }


async def _not_counted_yet(svc: Services, now: datetime, channel: Channel | None) -> dict[str, int]:
    """Sent messages whose SLA check is still in the due index: within their deadline, or past it and
    waiting for the next reconcile run. Their outcome joins a summary once reconcile closes them."""
    counts = {"withinSla": 0, "awaitingReconcile": 0}
    due = svc.storage.table(svc.names.due)
    stamp = iso(now)
    async for entity in due.query(DUE_KIND_FILTER, {"pk": DUE_PARTITION, "kind": DueKind.SLA.value}):
        row = DueRow.from_entity(entity)
        if channel is None or await _channel_of(svc, row.message_id) == channel:
            counts["awaitingReconcile" if row.due_at <= stamp else "withinSla"] += 1
    return counts


async def _channel_of(svc: Services, message_id: str) -> Channel | None:
    # Due entries name only the message: a channel filter costs one ledger read per pending message.
    row = await svc.ledger.get(message_id)
    return row.channel if row is not None else None
