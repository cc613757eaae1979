"""The accounting behind bench/cost.py: from counted requests and the runner's log to operations,
executions, GB-seconds, Application Insights records and dollars, per message and per idle month.

Why apart from the workload: these are the figures' definitions (what is billed, which assumption
fills a gap), and each is a small function of what was counted, so they can be read and checked
without running anything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bench.common import REPO_ROOT
from bench.costmeter import Snapshot
from bench.prices import PRICES, storage_price

INSTANCE_MEMORY_GB = 2.0  # infra/main.bicep instanceMemoryMB = 2048 (Flex Consumption)
SECONDS_PER_MONTH = 30 * 24 * 3600
RECONCILE_RUNS_PER_MONTH = 30 * 24 * 12  # '0 */5 * * * *' (infra/main.bicep)
RETENTION_RUNS_PER_MONTH = 30  # '0 30 3 * * *'
# Billed size of one Application Insights record (Log Analytics bills the stored row): the standard
# columns of a request or dependency row come to about a kilobyte; a trace row is its envelope plus the
# message and, again, the dimensions as customDimensions (the message ends with them as name=value).
REQUEST_BYTES = 1000
DEPENDENCY_BYTES = 900
TRACE_ENVELOPE_BYTES = 500
EXECUTED = re.compile(r"^(\S+ \S+) (\w+) devstack\.host\.invocations: Executed 'Functions\.(\w+)' .*Duration=(\d+)ms")
USER_RECORD = re.compile(r"^\S+ \S+ (INFO|WARNING|ERROR|CRITICAL) (?!devstack\.)\S+: (.*)$")


@dataclass(frozen=True)
class Measured:
    """One counted stretch: the proxy's tally, the runner log written meanwhile, how long it took."""

    ops: Snapshot
    log: str
    seconds: float
    acs_requests: int = 0


def executions(log: str, extra: Sequence[tuple[str, float]] = ()) -> dict[str, dict[str, float]]:
    """Invocations per function from the runner log (plus timer work run here): count, failed, ms."""
    out: dict[str, dict[str, float]] = {}

    def add(name: str, ms: float, failed: bool) -> None:
        entry = out.setdefault(name, {"count": 0, "failed": 0, "duration_ms": 0.0})
        entry["count"] += 1
        entry["failed"] += failed
        entry["duration_ms"] += ms

    for match in filter(None, map(EXECUTED.match, log.splitlines())):
        add(match.group(3), float(match.group(4)), match.group(2) != "INFO")
    for name, ms in extra:
        add(name, ms, False)
    return out


def busy_seconds(log: str, extra: Sequence[tuple[str, float]] = ()) -> float:
    """Seconds in which at least one invocation ran (the union of their intervals): what Flex Consumption
    bills, per instance, as on-demand execution time. Timer work run here adds its own duration."""
    spans = []
    for match in filter(None, map(EXECUTED.match, log.splitlines())):
        end = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        spans.append((end - float(match.group(4)) / 1000, end))
    total, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        total += max(0.0, end - max(start, reach))
        reach = max(reach, end)
    return total + sum(ms for _, ms in extra) / 1000


def user_records(log: str) -> tuple[int, int]:
    """The app's own log records at INFO or above: (count, message bytes)."""
    found = [m for m in map(USER_RECORD.match, log.splitlines()) if m]
    return len(found), sum(len(m.group(2).encode()) for m in found)


def shipped_trace_sampling() -> float:
    """The TRACE_SAMPLING_RATIO that infra/modules/appsettings.bicep sets (1 if it sets none)."""
    bicep = (REPO_ROOT / "infra" / "modules" / "appsettings.bicep").read_text()
    found = re.search(r"^\s*TRACE_SAMPLING_RATIO:\s*'([0-9.]+)'", bicep, re.MULTILINE)
    return float(found.group(1)) if found else 1.0


def app_insights(run: Measured, runs: dict[str, dict[str, float]], app_sdk_calls: int, otel: bool) -> dict[str, int]:
    """Records and bytes that would reach Application Insights at the shipped settings.

    host.json: Host.Results at Information (one request row per invocation; Request is excluded from
    adaptive sampling), Function at Warning (only failed invocations' lines), Function.<name>.User at
    None. The app's records go through OpenTelemetry instead (`otel`): every record at INFO or above as
    a trace, every Azure SDK call (storage, ACS) as a dependency, the invocation span as one more.
    host.json's samplingSettings do not apply to that exporter; the app samples its spans (the invocation
    span and the dependencies under it) at the TRACE_SAMPLING_RATIO the Bicep ships, and never its log
    records. The baseline has no exporter."""
    invocations = sum(int(e["count"]) for e in runs.values())
    failed = sum(int(e["failed"]) for e in runs.values())
    traces, text = user_records(run.log) if otel else (0, 0)
    spans = app_sdk_calls + run.acs_requests + invocations if otel else 0
    dependencies = round(spans * shipped_trace_sampling())
    size = invocations * REQUEST_BYTES + (failed + traces) * TRACE_ENVELOPE_BYTES + 2 * text
    return {
        "requests": invocations,
        "host_warnings": failed,
        "traces": traces,
        "dependencies": dependencies,
        "bytes": size + dependencies * DEPENDENCY_BYTES,
    }


def storage_usd(ops: Snapshot) -> float:
    return sum(
        storage_price(op.service, op.kind).cost(n) for (op, _), n in ops.counts.items() if op.service != "eventgrid"
    )


def storage_ops(ops: Snapshot, exclude_kinds: frozenset[str] = frozenset()) -> int:
    return sum(n for (op, _), n in ops.counts.items() if op.service != "eventgrid" and op.kind not in exclude_kinds)


def eventgrid_ops(ops: Snapshot) -> int:
    """Event Grid operations: each event published to the system topic, and each delivery attempt, per
    64 KB. Every event here was delivered at the first attempt, so publishes = deliveries."""
    return 2 * ops.event_units


@dataclass(frozen=True)
class Account:
    """One app's counted run, per message, with its dollars per million messages."""

    messages: int
    storage_ops: float
    by_kind: dict[str, float]
    by_actor: dict[str, float]
    by_resource: dict[str, float]
    eventgrid_events: float
    eventgrid_ops: float
    executions: dict[str, dict[str, float]]
    gb_seconds: float
    gb_seconds_upper: float
    logs: dict[str, float]
    usd: dict[str, float]

    @property
    def usd_per_million(self) -> float:
        return round(sum(self.usd.values()), 2)


def account(
    run: Measured, messages: int, timer_runs: list[tuple[str, float]], otel: bool, later: Snapshot | None = None
) -> Account:
    """Per message: storage by kind and actor, Event Grid, executions, GB-s, logs, and dollars per million."""
    per = 1 / messages
    runs = executions(run.log, timer_runs)
    n_exec = sum(e["count"] for e in runs.values())
    exec_ms = sum(e["duration_ms"] for e in runs.values())
    app_calls = (
        run.ops.total(actor="host worker")
        + run.ops.total(actor="producer")
        - run.ops.by(lambda o, a: f"{o.name}|{a}").get("put message|producer", 0)
    )
    logs = app_insights(run, runs, app_calls, otel)
    gbs = busy_seconds(run.log, timer_runs) * INSTANCE_MEMORY_GB * per
    storage_dollars = storage_usd(run.ops) + (storage_usd(later) if later else 0.0)
    million = 1_000_000 * per
    usd = {
        "storage": storage_dollars * million,
        "eventgrid": PRICES["eventgrid"].cost(eventgrid_ops(run.ops)) * million,
        "function_executions": PRICES["functions.executions"].cost(n_exec) * million,
        "function_gb_seconds": PRICES["functions.gbs"].cost(gbs * messages) * million,
        "logs": PRICES["logs"].cost(logs["bytes"] / 1e9) * million,
    }
    return Account(
        messages=messages,
        storage_ops=storage_ops(run.ops) * per,
        by_kind={
            k: round(v * per, 3)
            for k, v in run.ops.by(lambda o, a: f"{o.service} {o.name}").items()
            if not k.startswith("eventgrid")
        },
        by_actor={
            k: round(v * per, 3) for k, v in run.ops.by(lambda o, a: "" if o.service == "eventgrid" else a).items() if k
        },
        by_resource={
            k: round(v * per, 3)
            for k, v in run.ops.by(lambda o, a: f"{o.service} {o.name} [{o.resource}]").items()
            if not k.startswith("eventgrid")
        },
        eventgrid_events=run.ops.events * per,
        eventgrid_ops=eventgrid_ops(run.ops) * per,
        executions={
            name: {
                "per_message": round(e["count"] * per, 3),
                "mean_ms": round(e["duration_ms"] / e["count"], 1),
                "failed": e["failed"],
            }
            for name, e in runs.items()
        },
        gb_seconds=round(gbs, 4),
        gb_seconds_upper=round(exec_ms / 1000 * INSTANCE_MEMORY_GB * per, 4),
        logs={k: round(v * per, 2) for k, v in logs.items()},
        usd={k: round(v, 3) for k, v in usd.items()},
    )


def idle_month(idle: Measured, reconcile: Measured, retention: Measured, timer_ms: dict[str, float]) -> dict[str, Any]:
    """What the app costs a month with no messages, while an instance is up: the host's queue polling and
    timer leases at host.json's intervals (measured over the idle window), and the two timers' runs at
    the shipped schedules (each run measured once here, plus the schedule monitor's status blob write)."""
    scale = SECONDS_PER_MONTH / idle.seconds
    polling = {
        k: round(v * scale)
        for k, v in idle.ops.by(lambda o, a: f"{o.service} {o.name}").items()
        if not k.startswith("eventgrid")
    }
    runs = {"reconcile": (reconcile, RECONCILE_RUNS_PER_MONTH), "retention": (retention, RETENTION_RUNS_PER_MONTH)}
    timer_ops = {name: storage_ops(m.ops.only("producer")) + 1 for name, (m, _) in runs.items()}  # + status blob
    timer_usd = sum(
        (storage_usd(m.ops.only("producer")) + PRICES["blob.write"].cost(1)) * per_month
        for m, per_month in runs.values()
    )
    executions_month = sum(per_month for _, per_month in runs.values())
    gbs = sum(timer_ms[name] / 1000 * INSTANCE_MEMORY_GB * per_month for name, (_, per_month) in runs.items())
    log_bytes = sum(
        (REQUEST_BYTES + (timer_ops[name] + 1) * DEPENDENCY_BYTES) * per_month for name, (_, per_month) in runs.items()
    )
    usd = {
        "storage_polling_and_leases": storage_usd(idle.ops) * scale,
        "storage_timer_runs": timer_usd,
        "function_executions": PRICES["functions.executions"].cost(executions_month),
        "function_gb_seconds": PRICES["functions.gbs"].cost(gbs),
        "logs": PRICES["logs"].cost(log_bytes / 1e9),
    }
    return {
        "polling_ops_per_month": sum(polling.values()),
        "polling_by_kind": polling,
        "timer_ops_per_run": timer_ops,
        "timer_runs_per_month": {name: per_month for name, (_, per_month) in runs.items()},
        "usd": {k: round(v, 3) for k, v in usd.items()},
        "usd_per_month": round(sum(usd.values()), 2),
        "note": "while one instance is up; scaled to zero, Flex Consumption's scale controller watches the queue "
        "instead (not the app's bill), and each timer run wakes an instance",
    }


SETUP = frozenset({"admin"})  # the floor's own queue and tables, made and dropped around it
# Why an operation is there beyond the floor's count (printed beside it when the ratio is above target).
WHY: dict[str, str] = {
    "table query entities": "the consent check (one query of the recipient's consent partition per message, "
    "in the design floor too); pause controls (cached, read again every few seconds); reconcile's scans",
    "table insert entity": "the provider-id index row of every SMS and WhatsApp send (the design floor has "
    "WhatsApp's; SMS is indexed in case a report comes without its tag: avoidable while reports carry it); "
    "the rows of retried and dead-lettered attempts",
    "table get entity": "ledger reads: a retried or redelivered request reads its row again, dead-lettering "
    "reads each row, a report whose etag this process does not remember reads it",
    "table merge entity": "retries give the claim back and claim again; dead-letter marks; due-index writes",
    "queue get messages (empty)": "the host polling queues with nothing in them (the priority lane, the send "
    "queue between batches): time-driven, see idle",
    "table batch": "grouped due-index writes (report deadlines); a report write that lost an etag race",
    "queue put message": "retries re-enqueued after a backoff (the transient 503s, the dead letters' attempts)",
    "queue delete message": "the re-enqueued retries' own deletes",
    "queue update message": "the host handing a failed delivery back before maxDequeueCount",
    "queue get messages": "redeliveries of failed attempts; batches smaller than the floor's 32",
    "queue queue metadata": "reconcile's poison-queue depth checks",
    "blob lease blob": "the timers' listener leases, renewed every 30 s: time-driven, see idle",
}


def above_floor(ours: dict[str, float], floor_kinds: dict[str, float]) -> dict[str, float]:
    """Operations per message beyond the floor's, by operation, largest first."""
    diff = {k: round(v - floor_kinds.get(k, 0.0), 3) for k, v in ours.items()}
    return dict(sorted(((k, v) for k, v in diff.items() if v > 0.005), key=lambda kv: -kv[1]))


def later_usd(later: Measured, timers: list[tuple[str, float]], messages: int) -> tuple[float, dict[str, float]]:
    """The timers' later work on one message: storage ops per message, and dollars per million messages
    for its storage and its GB-s (its executions are the timers' own, counted per month in `idle_month`)."""
    ops = later.ops.only("producer")
    gbs = sum(ms for _, ms in timers) / 1000 * INSTANCE_MEMORY_GB
    million = 1_000_000 / messages
    usd = {
        "later_storage": round(storage_usd(ops) * million, 3),
        "later_gb_seconds": round(PRICES["functions.gbs"].cost(gbs) * million, 3),
    }
    return storage_ops(ops) / messages, usd


def assumptions(send_retry: dict[str, float]) -> dict[str, Any]:
    """What fills the gaps the count cannot, as written into the result."""
    logging = json.loads((REPO_ROOT / "host.json").read_text())["logging"]
    return {
        "memory_gb": INSTANCE_MEMORY_GB,
        "gb_seconds": "Flex Consumption bills instance memory x the seconds an instance runs at least one "
        "invocation: the union of the invocations' intervals in this run (2 cores, instant provider); the "
        "upper figure sums every invocation's duration",
        "record_bytes": {
            "request": REQUEST_BYTES,
            "dependency": DEPENDENCY_BYTES,
            "trace": f"{TRACE_ENVELOPE_BYTES} + 2 x message",
        },
        "host_json_log_levels": logging["logLevel"],
        "host_json_sampling": logging["applicationInsights"]["samplingSettings"],
        "send_retry": send_retry,
        "eventgrid": "each event published and each delivery attempt, per 64 KB; all delivered at the first attempt",
    }
