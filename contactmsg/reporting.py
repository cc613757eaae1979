"""Aggregate reconciliation summaries for `contactmsg report`."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import timedelta
from typing import Any

from shared.ledger import iso
from shared.runtime import Services
from shared.services.reconcile import REPORT_PARTITION

_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_window(text: str) -> timedelta:
    match = re.fullmatch(r"(\d+)([mhd])", text.strip())
    if not match:
        raise ValueError("use a number and a unit: 30m, 6h, 2d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


async def collect(svc: Services, since: str, channel: str | None) -> dict[str, Any]:
    start = iso(svc.clock() - parse_window(since))
    reports = svc.storage.table(svc.names.reports)
    cohort: Counter[str] = Counter()
    actions: Counter[str] = Counter()
    p95s: list[int] = []
    runs = 0
    async for row in reports.query(
        "PartitionKey eq @pk and RowKey ge @since", {"pk": REPORT_PARTITION, "since": start}
    ):
        runs += 1
        for key, n in json.loads(row.get("Cohort") or "{}").items():
            if channel is None or key.startswith(f"{channel}|"):
                cohort[key] += n
        actions.update(json.loads(row.get("Actions") or "{}"))
        if row.get("LatencyP95Ms") is not None:
            p95s.append(int(row["LatencyP95Ms"]))
    total = sum(cohort.values())
    reported = sum(n for k, n in cohort.items() if k.split("|")[1] in {"Delivered", "Failed", "Read"})
    return {
        "since": start,
        "runs": runs,
        "cohort": dict(cohort),
        "actions": dict(actions),
        "total": total,
        "reported": reported,
        "reportedShare": round(reported / total, 4) if total else None,
        "worstP95Ms": max(p95s) if p95s else None,
    }
