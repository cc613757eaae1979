"""The project's pipeline beside the baseline app (bench/baseline), under each provider latency profile.

value: the pipeline's msg/s (bench/throughput.py's pipeline: enqueue to every message Delivered or
       Read); floor: the baseline's msg/s on the same workload, runner, emulator and host.json queue
       settings. Each side runs on an Azurite of its own, warmed up alike, in alternating order, with
       the probe for Azurite's clean-up stall (bench/stall.py); the median of the clean pairs counts.
Targets (issue 20): pipeline >= 0.8 x baseline with the instant profile, >= 2 x with the realistic one.
The realistic profile runs fewer messages (--realistic-n): the baseline's synchronous functions run on
the Python worker's default thread pool (min(32, CPUs + 4) threads, 6 here), and each email holds a
thread for its whole operation (20 s in that profile), so 2,000 messages would take about 40 minutes.
Writes bench/results/baseline.json, one entry per profile, with CPU per message and duplicate sends of
both apps, and (bench/kills.py) the duplicate sends of each under the same runner kills.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables.aio import TableServiceClient
from azure.storage.queue import TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient

from bench.common import bounded, parser, verdict, write_result
from bench.kills import BASELINE, BASELINE_DIR, PIPELINE, baseline_env, under_kills
from bench.latency import LatencyProfile, describe
from bench.stall import SideVerdict, Window
from bench.throughput import (
    CpuMeter,
    FinalReports,
    median_run,
    meter_processes,
    on_fresh_azurite,
    pipeline,
    requests,
    start_acs,
    warm_up,
)
from devstack.host.process import RunnerProcess

# The pipeline's warm-up message too: the workload's own first request would count as a duplicate send.
WARM_UP = {"channel": "sms", "to": "+14255550100", "content": {"text": "warm-up"}, "id": "warm-up"}
TARGETS = {LatencyProfile.INSTANT: ">= 0.8", LatencyProfile.REALISTIC: ">= 2"}


async def statuses(conn: str, table: str) -> dict[str, str]:
    """The baseline's status rows: ACS message id -> status."""
    async with TableServiceClient.from_connection_string(conn) as tables:
        client = tables.get_table_client(table)
        try:
            return {row["RowKey"]: row.get("Status", "") async for row in client.query_entities("PartitionKey ne ''")}
        except ResourceNotFoundError:  # the table appears with the first event
            return {}


async def baseline(conn: str, n: int, log_dir: Path, latency: LatencyProfile) -> dict[str, Any]:
    """n mixed messages through the baseline app, from the first enqueue to the last final report."""
    acs = start_acs(latency)
    env = baseline_env(conn, acs)
    runner = RunnerProcess(BASELINE_DIR, env=env, storage=conn, log_path=log_dir / "baseline-runner.log").start()
    acs.set_webhook(f"{runner.url}/runtime/webhooks/eventgrid?functionName=record_event")
    queue = QueueClient.from_connection_string(conn, env["SEND_QUEUE"], message_encode_policy=TextBase64EncodePolicy())
    try:
        await queue.create_queue()
        reports = FinalReports(acs)
        await queue.send_message(json.dumps(WARM_UP))
        while reports.update() < 1:  # the first invocation builds the clients
            await asyncio.sleep(0.1)
        batch = [json.dumps({**r, "id": str(uuid.uuid4())}) for r in requests(n)]
        meter = CpuMeter(
            meter_processes(conn, {"runner": (runner.pid, True), "bench + ACS emulator": (os.getpid(), False)})
        )
        with meter:
            start, began = time.perf_counter(), time.monotonic()
            await bounded(batch, queue.send_message, 16)
            while reports.update() < n + 1:
                await asyncio.sleep(0.1)
            elapsed = time.perf_counter() - start
            window = Window(began, time.monotonic())
        return {
            "rate": n / elapsed,
            "elapsed": elapsed,
            "duplicates": len(acs.duplicates()),
            "cpu_ms_per_message": meter.per_message_ms(n),
            "window": window,
        }
    finally:
        await queue.close()
        runner.terminate()
        acs.stop()


def pair(
    storage_arg: str | None, n: int, log_dir: Path, latency: LatencyProfile, pipeline_first: bool
) -> dict[str, Any]:
    """The pipeline and the baseline, each on an Azurite of its own after the same warm-up."""

    async def pipeline_side(conn: str) -> dict[str, Any]:
        await warm_up(conn, n)
        return await pipeline(conn, n, log_dir, latency=latency)

    async def baseline_side(conn: str) -> dict[str, Any]:
        await warm_up(conn, n)
        return await baseline(conn, n, log_dir, latency)

    sides: dict[str, tuple[dict[str, Any], SideVerdict]] = {}
    for name in ("pipeline", "baseline") if pipeline_first else ("baseline", "pipeline"):
        work = pipeline_side if name == "pipeline" else baseline_side
        sides[name] = on_fresh_azurite(storage_arg, work, lambda result: result.pop("window"))
    (ours, our_verdict), (theirs, their_verdict) = sides["pipeline"], sides["baseline"]
    return {
        "rate": ours["rate"],
        "floor": theirs["rate"],
        "ratio": ours["rate"] / theirs["rate"],
        "order": "pipeline first" if pipeline_first else "baseline first",
        "clean": not (our_verdict.stalled or their_verdict.stalled),
        "cpu_ms_per_message": {"pipeline": ours["cpu_ms_per_message"], "baseline": theirs["cpu_ms_per_message"]},
        "duplicate_sends": {"pipeline": ours["duplicates"], "baseline": theirs["duplicates"]},
        "stall": {"pipeline": our_verdict.to_json(), "baseline": their_verdict.to_json()},
    }


def profile_result(args: Any, latency: LatencyProfile, log_dir: Path) -> dict[str, Any]:
    """Pairs until enough were clear of Azurite's stall (at most twice as many); the median clean one."""
    instant = latency is LatencyProfile.INSTANT
    n, repeats = (args.n, args.repeats) if instant else (args.realistic_n, args.realistic_repeats)
    runs: list[dict[str, Any]] = []
    while not runs or (sum(run["clean"] for run in runs) < repeats and len(runs) < 2 * repeats):
        runs.append(pair(args.storage, n, log_dir, latency, pipeline_first=len(runs) % 2 == 0))
    clean = [run for run in runs if run["clean"]]
    m = median_run(clean or runs)
    judged = verdict(m["ratio"], TARGETS[latency])
    print(f"{latency}: pipeline {m['rate']:.1f} msg/s, baseline {m['floor']:.1f} msg/s; {judged}")
    return {
        "pipeline_msg_s": round(m["rate"], 1),
        "baseline_msg_s": round(m["floor"], 1),
        "ratio": round(m["ratio"], 3),
        "target": TARGETS[latency],
        "n": n,
        "ratio_from": f"median of {len(clean)} clean pairs" if clean else "median of all pairs: NONE was clean",
        "cpu_ms_per_message": m["cpu_ms_per_message"],
        "duplicate_sends": {app: sum(run["duplicate_sends"][app] for run in runs) for app in ("pipeline", "baseline")},
        "provider_latency": describe(latency),
        "runs": [
            {k: (round(v, 3) if isinstance(v, float) else v) for k, v in run.items() if k != "cpu_ms_per_message"}
            for run in runs
        ],
    }


def kills_result(args: Any, log_dir: Path) -> dict[str, Any]:
    """Each app's duplicate sends under the same runner kills (none when --kills is 0)."""
    if args.kills <= 0:
        return {}
    killed = {
        app.name: under_kills(app, args.storage, args.kill_n, args.kills, args.kill_every, log_dir)
        for app in (PIPELINE, BASELINE)
    }
    counts = ", ".join(f"{name} {run['duplicate_sends']}" for name, run in killed.items())
    print(f"duplicate sends under {args.kills} runner kills: {counts}")
    return killed


def main(argv: list[str] | None = None) -> int:
    cli = parser(__doc__ or "")
    cli.add_argument("--n", type=int, default=2000, help="messages per run with the instant profile")
    cli.add_argument(
        "--realistic-n",
        type=int,
        default=150,
        help="messages per run with the realistic profile (the baseline waits ~20 s per email on a few threads)",
    )
    cli.add_argument("--repeats", type=int, default=5, help="pairs clear of Azurite's stall, instant profile")
    cli.add_argument(
        "--realistic-repeats",
        type=int,
        default=1,
        help="the same with realistic latency (one baseline run there takes minutes, and its margin is wide)",
    )
    cli.add_argument(
        "--profiles", nargs="+", choices=[str(p) for p in LatencyProfile], default=[str(p) for p in LatencyProfile]
    )
    cli.add_argument("--kills", type=int, default=2, help="runner kills in the duplicate-send runs (0: none)")
    cli.add_argument("--kill-n", type=int, default=600, help="messages per duplicate-send run")
    cli.add_argument("--kill-every", type=float, default=2.0, help="seconds between kills")
    args = cli.parse_args(argv)
    log_dir = args.results_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    profiles = {str(p): profile_result(args, LatencyProfile(p), log_dir) for p in args.profiles}
    killed = kills_result(args, log_dir)
    first = profiles[args.profiles[0]]
    write_result(
        args.results_dir,
        "baseline",
        first["pipeline_msg_s"],
        first["baseline_msg_s"],
        "msg/s",
        target=first["target"],
        note="value and floor are the first profile's; every profile is under profiles",
        profiles=profiles,
        under_kills=killed or None,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
