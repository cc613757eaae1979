"""The platform cost of a message, measured: every billable operation of one mixed run, per message, in
operations and in US dollars per million messages (ACS fees apart; they are estimated per message in
the ledger already).

One run: the app in the local Functions runner, on Azurite, with the ACS emulator (instant, reports on,
one event per Event Grid delivery as deployed). Every storage request of the producer, the host and the
app passes a counting proxy in front of Azurite's three ports (bench/costmeter.py), and every Event Grid
delivery passes one in front of the runner's webhook. The workload, after an unmeasured warm-up:
`--n` requests (a third each SMS, email, WhatsApp; every recipient on the Delivered path), the first
`--transient` SMS sends answered 503 by the emulator (each one retried by the app), then `--dead` SMS
sent while the emulator answers 503 to every SMS, which end on the poison queue and are dead-lettered by
one reconcile run. Then the pipeline idle (`--idle` seconds), one reconcile and one retention run with
nothing to do, and the timers' later work on every message of the run: reconcile once its report deadline
has passed (it closes the message and schedules its retention), retention at 8, 31 and 91 days (content,
recipient, rows). The timers' work runs in this process on the counted storage, the app's own services
with the app's settings and a clock moved on (the runner has no way to fire a timer on demand), and is
timed as an invocation; the runner's own timers never fire.

value: storage transactions per message from enqueue to final report, with the retries and dead letters
       above and the host's polling meanwhile, every actor (producer, host, app). The timers' later
       work is counted apart (`later_ops_per_message`), as the floor has nothing like it, and is in
       the dollars.
floor: the same count for the throughput benchmark's floor (bench/throughput.py `floor()`: enqueue,
       batched dequeue, delete, the ledger insert that is the claim, one guarded update, one write per
       report), issued through the same proxy for the same n, its own queue and table set-up left out.
       `design_floor` is its variant with the reads the design adds (consent query, WhatsApp provider-id
       row, grouped due writes).
ratio = value / floor; target <= 1.25. Above it, the operations above the floor are printed with why.
Also: the naive baseline (bench/baseline: one status row upserted per event) on the same workload
without the dead letters, counted the same way; function executions and GB-s; Event Grid operations (the
status feed is off: FEED_TOPIC_ENDPOINT unset); Application Insights records and bytes at the shipped
log levels and sampling (bench/costbook.py `app_insights`); idle cost per month; dollars per million
messages from the list prices in bench/prices.py.

Run: `python -m bench.cost` (writes bench/results/cost.json).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables.aio import TableServiceClient
from azure.storage.queue import TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient

from bench.common import REPO_ROOT, bounded, parser, storage, verdict, write_result
from bench.costbook import (
    SETUP,
    WHY,
    Measured,
    above_floor,
    account,
    assumptions,
    idle_month,
    later_usd,
    storage_ops,
)
from bench.costmeter import CountingProxy, Snapshot, classify
from bench.kills import BASELINE_DIR, baseline_env
from bench.latency import LatencyProfile
from bench.prices import FREE_GRANTS, PRICES
from bench.throughput import FinalReports, floor, pipeline_env, requests, start_acs
from devstack.acs import AcsEmulator
from devstack.host.process import RunnerProcess
from shared.client import ContactMessagesClient
from shared.runtime import Services, build_services
from shared.schema import LEDGER_ROWS_FILTER
from shared.settings import load_settings
from shared.status import TERMINAL

NAME = "cost per message"
TARGET_RATIO = 1.25
FUNCTIONS = ("send_message", "send_priority_message", "record_event", "reconcile", "retention")
# The runner logs each invocation's end in category Function.<name> and the app's own records in
# Function.<name>.User; host.json silences both (Azure gets the app's records through OpenTelemetry).
# The benchmark turns them on to count them; what would reach Application Insights is then computed
# with the shipped levels (see `app_insights`).
SHOW_LOGS = {
    "AzureFunctionsJobHost__logging__logLevel__Function": "Information",
    **{f"AzureFunctionsJobHost__logging__logLevel__Function__{f}__User": "Information" for f in FUNCTIONS},
}
# Short retry delays: the same requests as production's 5 s doubling to 5 min, sooner.
SEND_RETRY = {"baseSeconds": 0.2, "capSeconds": 0.5, "attempts": 2}


class Clock:
    """The app's clock, moved on to run retention as it will run days later."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class Stack:
    """One app in the runner on the proxied Azurite, with the ACS emulator."""

    proxy: CountingProxy
    direct: str  # Azurite itself: the benchmark's own checks go here, uncounted
    acs: AcsEmulator
    runner: RunnerProcess
    env: dict[str, str]

    @property
    def counted(self) -> str:
        return self.proxy.connection_string(self.direct)

    def log_offset(self) -> int:
        path = self.runner.log_path
        return path.stat().st_size if path is not None and path.exists() else 0

    def log_since(self, offset: int) -> str:
        assert self.runner.log_path is not None
        with self.runner.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", errors="replace")

    def stop(self) -> None:
        self.runner.terminate()
        self.acs.stop()


def start_stack(
    proxy: CountingProxy, direct: str, app_dir: Path, env: dict[str, str], acs: AcsEmulator, log: Path
) -> Stack:
    """The app on the proxied storage, its Event Grid deliveries through the proxy too."""
    host_id = f"cost-{uuid.uuid4().hex[:16]}"
    runner = RunnerProcess(app_dir, env=env, storage=env["AzureWebJobsStorage"], log_path=log, host_id=host_id)
    runner.start()
    proxy.actors.watch(runner.pid, "host")
    port = proxy.add(f"webhook-{runner.pid}", int(runner.url.rsplit(":", 1)[1]))
    acs.set_webhook(f"http://127.0.0.1:{port}/runtime/webhooks/eventgrid?functionName=record_event")
    return Stack(proxy, direct, acs, runner, env)


async def measure(stack: Stack, work: Callable[[], Awaitable[Any]]) -> Measured:
    """Count `work`: the proxy's tally, the runner log and the emulator's requests meanwhile."""
    offset, began = stack.log_offset(), time.monotonic()
    acs_before = stack.acs.request_counts().get("total", 0) if stack.runner.running else 0
    with stack.proxy.measuring() as found:
        await work()
    acs_after = stack.acs.request_counts().get("total", 0) if stack.runner.running else 0
    return Measured(found[0], stack.log_since(offset), time.monotonic() - began, acs_after - acs_before)


def _ids(n: int) -> list[str]:
    """GUIDs, as the client makes them (an email's operation id is then the message id itself)."""
    return [str(uuid.uuid4()) for _ in range(n)]


def _with_ids(batch: list[dict[str, Any]], ids: list[str]) -> list[dict[str, Any]]:
    return [{**request, "id": message_id} for request, message_id in zip(batch, ids, strict=True)]


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 150.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.25)


async def statuses(conn: str, table: str) -> dict[str, str]:
    """Message id → ledger status, read straight from Azurite (uncounted)."""
    async with TableServiceClient.from_connection_string(conn) as tables:
        client = tables.get_table_client(table)
        rows = client.query_entities(LEDGER_ROWS_FILTER, select=["PartitionKey", "Status"])
        try:
            return {str(row["PartitionKey"]): str(row.get("Status")) async for row in rows}
        except ResourceNotFoundError:  # created by the first invocation
            return {}


def ended(stack: Stack, ids: list[str], final: frozenset[str]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        found = await statuses(stack.direct, f"{stack.env['TABLE_PREFIX']}messages")
        return all(found.get(message_id) in final for message_id in ids)

    return check


TERMINAL_NAMES = frozenset(str(s) for s in TERMINAL)
DEAD = frozenset({"DeadLettered"})


class Pipeline:
    """The project's app: its stack, services on the counted storage (to run the timers' work here, as
    the timers would) and on Azurite directly (to check progress uncounted)."""

    def __init__(self, stack: Stack, counted: Services, direct: Services, clock: Clock) -> None:
        self.stack = stack
        self.svc = counted
        self.check = direct
        self.clock = clock
        self.timer_runs: list[tuple[str, float]] = []  # (function, ms) of timer work run here

    async def timer(self, name: str, work: Callable[[], Awaitable[Any]]) -> None:
        """A timer function's work, run here on the counted storage, timed as its invocation would be."""
        began = time.perf_counter()
        await work()
        self.timer_runs.append((name, (time.perf_counter() - began) * 1000))

    async def enqueue(self, batch: list[dict[str, Any]]) -> None:
        client = ContactMessagesClient.from_connection_string(self.stack.counted, self.stack.env["SEND_QUEUE"])
        try:
            await bounded(batch, client.enqueue, 16)
        finally:
            await client.close()

    async def warm_up(self) -> list[str]:
        """One request per channel, so every client and table exists before anything is counted."""
        ids = _ids(3)
        await self.enqueue(_with_ids(requests(3), ids))
        await until(ended(self.stack, ids, TERMINAL_NAMES), "the warm-up")
        return ids

    async def workload(self, n: int, transient: int, dead: int) -> list[str]:
        """The measured workload (module docstring): n mixed, `transient` 503s, then `dead` dead letters."""
        acs = self.stack.acs
        ids, dead_ids = _ids(n), _ids(dead)
        acs.add_fault("503", count=transient, channel="sms")
        await self.enqueue(_with_ids(requests(n), ids))
        await until(ended(self.stack, ids, TERMINAL_NAMES), f"{n} messages to end")
        acs.clear_faults()
        acs.add_fault("503", count=1_000_000, channel="sms")
        await self.enqueue(_with_ids(requests(3 * dead)[::3], dead_ids))
        await until(self._poisoned(dead), f"{dead} messages to reach the poison queue")
        acs.clear_faults()
        await self.timer("reconcile", self.svc.reconcile.run)  # the timer's run that records the poison queue
        await until(ended(self.stack, dead_ids, DEAD), "the dead letters")
        await asyncio.sleep(2.0)  # the host's last queue deletes
        return ids + dead_ids

    def _poisoned(self, dead: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return await self.check.poison.depth() >= dead

        return check

    async def later(self) -> None:
        """The timers' work on these messages after they ended: reconcile once the report deadline (SLA,
        an hour) has passed (it closes each one and schedules its retention), then retention's runs over
        its life (content at 7 days, recipient at 30, rows at 90), the clock moved on for each."""
        self.clock.offset = timedelta(hours=2)
        await self.timer("reconcile", self.svc.reconcile.run)
        for days in (8, 31, 91):
            self.clock.offset = timedelta(days=days)
            await self.timer("retention", self.svc.retention.run)


async def open_pipeline(proxy: CountingProxy, direct: str, log_dir: Path) -> Pipeline:
    acs = start_acs(LatencyProfile.INSTANT)
    env = pipeline_env(direct, acs)
    counted_env = (
        env | SHOW_LOGS | {"AzureWebJobsStorage": proxy.connection_string(direct), "SEND_RETRY": json.dumps(SEND_RETRY)}
    )
    clock = Clock()
    counted = await build_services(load_settings(counted_env), clock=clock)
    checks = await build_services(load_settings(env))
    stack = start_stack(proxy, direct, REPO_ROOT, counted_env, acs, log_dir / "cost-runner.log")
    return Pipeline(stack, counted, checks, clock)


class Baseline:
    """The naive app (bench/baseline): send, then upsert one status row per event."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    async def enqueue(self, batch: list[dict[str, Any]]) -> None:
        queue = QueueClient.from_connection_string(
            self.stack.counted, self.stack.env["SEND_QUEUE"], message_encode_policy=TextBase64EncodePolicy()
        )
        async with queue:
            await bounded([json.dumps(r) for r in batch], queue.send_message, 16)

    async def warm_up(self) -> None:
        async with QueueClient.from_connection_string(self.stack.direct, self.stack.env["SEND_QUEUE"]) as queue:
            await queue.create_queue()
        reports = FinalReports(self.stack.acs)
        await self.enqueue(_with_ids(requests(3), _ids(3)))
        await until(lambda: _at_least(reports, 3), "the baseline's warm-up")

    async def workload(self, n: int, transient: int) -> None:
        """The same n requests and transient 503s; no dead letters (it has no way to record one)."""
        reports = FinalReports(self.stack.acs)
        self.stack.acs.add_fault("503", count=transient, channel="sms")
        await self.enqueue(_with_ids(requests(n), _ids(n)))
        await until(lambda: _at_least(reports, n + 3), f"the baseline's {n} final reports")  # + the warm-up's
        await asyncio.sleep(2.0)  # the host's last queue deletes


async def _at_least(reports: FinalReports, n: int) -> bool:
    return reports.update() >= n


def open_baseline(proxy: CountingProxy, direct: str, log_dir: Path) -> Baseline:
    acs = start_acs(LatencyProfile.INSTANT)
    env = baseline_env(proxy.connection_string(direct), acs) | {
        "AzureFunctionsJobHost__logging__logLevel__Function": "Information"
    }
    return Baseline(start_stack(proxy, direct, BASELINE_DIR, env, acs, log_dir / "cost-baseline.log"))


def _ports(conn: str) -> dict[str, int]:
    parts = dict(part.split("=", 1) for part in conn.split(";") if "=" in part)
    return {s: int(parts[f"{s.capitalize()}Endpoint"].split(":")[2].split("/")[0]) for s in ("blob", "queue", "table")}


async def measure_floor(proxy: CountingProxy, direct: str, n: int, design_reads: bool = False) -> Snapshot:
    """The throughput benchmark's floor for the same n, through the proxy (with `design_reads`, its
    "design floor": plus the consent query, the WhatsApp provider-id row and the grouped due writes)."""
    with proxy.measuring() as found:
        await floor(proxy.connection_string(direct), n, design_reads=design_reads)
    return found[0]


async def run_pipeline(proxy: CountingProxy, direct: str, args: Any) -> dict[str, Any]:
    """Warm-up, the workload, idle, the idle timer runs, and the purge of everything later."""
    pipe = await open_pipeline(proxy, direct, args.log_dir)
    try:
        await pipe.warm_up()
        work = await measure(pipe.stack, lambda: pipe.workload(args.n, args.transient, args.dead))
        work_timers, pipe.timer_runs = pipe.timer_runs, []
        idle = await measure(pipe.stack, lambda: asyncio.sleep(args.idle))
        reconcile = await measure(pipe.stack, lambda: pipe.timer("reconcile", pipe.svc.reconcile.run))
        retention = await measure(pipe.stack, lambda: pipe.timer("retention", pipe.svc.retention.run))
        timer_ms, pipe.timer_runs = dict(pipe.timer_runs), []
        pipe.stack.stop()
        later = await measure(pipe.stack, pipe.later)
    finally:
        pipe.stack.stop()
        await pipe.svc.close()
        await pipe.check.close()
    messages = args.n + args.dead
    return {
        "work": work,
        "timers": work_timers,
        "messages": messages,
        "later": later,
        "later_timers": pipe.timer_runs,
        "idle": idle_month(idle, reconcile, retention, timer_ms),
    }


async def run_baseline(proxy: CountingProxy, direct: str, args: Any) -> Measured:
    base = open_baseline(proxy, direct, args.log_dir)
    try:
        await base.warm_up()
        return await measure(base.stack, lambda: base.workload(args.n, args.transient))
    finally:
        base.stack.stop()


def summary(pipe: dict[str, Any], floor_run: Snapshot, base: Measured, args: Any) -> dict[str, Any]:
    ours = account(pipe["work"], pipe["messages"], pipe["timers"], otel=True)
    naive = account(base, args.n, [], otel=False)
    floor_ops = storage_ops(floor_run, SETUP) / args.n
    floor_kinds = {
        k: v / args.n
        for k, v in floor_run.by(lambda o, a: "" if o.kind in SETUP else f"{o.service} {o.name}").items()
        if k
    }
    later_ops, later_dollars = later_usd(pipe["later"], pipe["later_timers"], pipe["messages"] + 3)  # + warm-up's
    usd = {**ours.usd, **later_dollars}
    return {
        "value": round(ours.storage_ops, 3),
        "floor": round(floor_ops, 3),
        "usd_per_million": round(sum(usd.values()), 2),
        "usd_per_million_by": usd,
        "messages": pipe["messages"],
        "workload": {
            "n": args.n,
            "transient_503": args.transient,
            "dead_letters": args.dead,
            "channels": "sms, email, whatsapp (a third each)",
        },
        "storage_by_kind": ours.by_kind,
        "storage_by_actor": ours.by_actor,
        "storage_by_resource": ours.by_resource,
        "above_floor": above_floor(ours.by_kind, floor_kinds),
        "floor_by_kind": {k: round(v, 3) for k, v in floor_kinds.items()},
        "later_ops_per_message": round(later_ops, 3),
        "later_by_resource": {
            k: round(v / (pipe["messages"] + 3), 3)
            for k, v in pipe["later"]
            .ops.only("producer")
            .by(lambda o, a: f"{o.service} {o.name} [{o.resource}]")
            .items()
        },
        "eventgrid": {
            "events_per_message": round(ours.eventgrid_events, 3),
            "ops_per_message": round(ours.eventgrid_ops, 3),
            "feed": "off (FEED_TOPIC_ENDPOINT unset): one more publish per status change when on",
        },
        "executions": ours.executions,
        "gb_seconds_per_message": ours.gb_seconds,
        "gb_seconds_upper_per_message": ours.gb_seconds_upper,
        "app_insights_per_message": ours.logs,
        "idle": pipe["idle"],
        "baseline": {
            "ops_per_message": round(naive.storage_ops, 3),
            "storage_by_kind": naive.by_kind,
            "eventgrid_ops_per_message": round(naive.eventgrid_ops, 3),
            "executions": naive.executions,
            "gb_seconds_per_message": naive.gb_seconds,
            "app_insights_per_message": naive.logs,
            "usd_per_million": naive.usd_per_million,
            "usd_per_million_by": naive.usd,
        },
        "assumptions": assumptions(SEND_RETRY),
        "prices": {key: price.to_json() for key, price in PRICES.items()},
        "free_grants": FREE_GRANTS,
    }


async def measure_all(direct: str, args: Any) -> dict[str, Any]:
    proxy = CountingProxy(_ports(direct), classify).start()
    try:
        pipe = await run_pipeline(proxy, direct, args)
        floor_run = await measure_floor(proxy, direct, args.n)
        design = await measure_floor(proxy, direct, args.n, design_reads=True)
        base = await run_baseline(proxy, direct, args)
    finally:
        proxy.stop()
    found = summary(pipe, floor_run, base, args)
    found["design_floor"] = round(storage_ops(design, SETUP) / args.n, 3)
    return found


def main(argv: list[str] | None = None) -> dict[str, Any]:
    cli = parser(__doc__ or "")
    cli.add_argument("--n", type=int, default=300, help="requests in the mixed workload")
    cli.add_argument("--transient", type=int, default=6, help="SMS sends answered 503 once (then retried)")
    cli.add_argument("--dead", type=int, default=3, help="SMS that meet 503 until they are dead-lettered")
    cli.add_argument("--idle", type=float, default=30.0, help="seconds of idle pipeline measured")
    cli.add_argument("--log-dir", type=Path, default=REPO_ROOT / ".devstack" / "bench-cost")
    args = cli.parse_args(argv)
    args.log_dir.mkdir(parents=True, exist_ok=True)
    app_log = logging.getLogger("shared")
    level = app_log.level
    app_log.setLevel(logging.ERROR)  # the timers' runs here: their records would only clutter the output
    try:
        with storage(args.storage) as conn:
            found = asyncio.run(measure_all(conn, args))
    finally:
        app_log.setLevel(level)
    value, floor_ops = found.pop("value"), found.pop("floor")
    record = write_result(args.results_dir, "cost", value, floor_ops, "ops", **found, target=f"ratio <= {TARGET_RATIO}")
    record["name"] = NAME
    (args.results_dir / "cost.json").write_text(json.dumps(record, indent=2) + "\n")
    print(
        f"{NAME}: {value} storage ops per message, floor {floor_ops}; {verdict(record['ratio'], f'<= {TARGET_RATIO}')}"
    )
    print(f"usd per million messages (ACS fees apart): {found['usd_per_million']} {found['usd_per_million_by']}")
    naive = found["baseline"]
    print(f"naive baseline: {naive['ops_per_message']} ops per message, {naive['usd_per_million']} usd per million")
    if record["ratio"] > TARGET_RATIO:
        print("above the floor, per message:")
        for kind, extra in found["above_floor"].items():
            print(f"  {kind}: +{extra} {WHY.get(kind, '')}")
    return record


if __name__ == "__main__":
    main()
