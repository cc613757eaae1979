"""The priority lane: how long a high-priority request takes behind a normal backlog, and what it costs
the backlog.

One run is the runner on Azurite with the ACS emulator (no added latency, reports on): a backlog of
`--backlog` normal SMS requests (default 2,000) enqueued at once by the producer client, and, spread
evenly over the backlog's drain, `--high` high-priority requests (default 100) posted to the HTTP intake
(`POST /api/messages` with `"priority": "high"`). A baseline run is the same backlog without them; its
drain time sets the spacing of the high-priority requests.

Each run has an Azurite of its own (unless `--storage` names one) and a probe beside it: the requests
that Azurite's queue sweep stalled (bench/stall.py; an artefact of Azurite, not a cost Azure Storage has)
are left out of the percentiles and counted (`stalled_requests`; `p99_with_stalled` keeps them), and a
run in which the sweep stalled more than a tenth of them is repeated, at most three times.

value: p99 (nearest rank: of 100 requests, the 99th fastest) of intake→ACS-accepted for the high-priority
       requests, in seconds: from just before the POST to the emulator's record of the accepted send.
       p50 and the max beside it.
floor: the p99 target (1.0 s; nothing is measured as a floor here), so ratio = p99 / target.
bulk_ratio: the backlog's throughput (requests per second, first enqueue to last accepted send) with the
       high-priority requests, over the baseline's. Target: p99 <= 1.0 s, bulk_ratio >= 0.9.

Run: `python -m bench.priority` (writes bench/results/priority.json).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import REPO_ROOT, app_env, bounded, parser, storage, write_result
from bench.stall import LatencyProbe, Window, queue_endpoint, stalls
from devstack.acs import AcsEmulator
from devstack.host.process import RunnerProcess
from shared.adapters.storage import CLIENT_OPTIONS
from shared.client import ContactMessagesClient

TO = "+14255550100"
NAME = "priority latency"
TARGET_P99_S = 1.0
TARGET_BULK_RATIO = 0.9
POST_ATTEMPTS = 3
MEASURED_ATTEMPTS = 3


def _sms(message_id: str, **extra: str) -> dict[str, Any]:
    return {"id": message_id, "channel": "sms", "to": TO, "content": {"text": f"bench {message_id}"}, **extra}


def _env(conn: str, acs: AcsEmulator) -> dict[str, str]:
    return app_env(conn) | {
        "ACS_CONNECTION_STRING": acs.connection_string,
        "RECONCILE_SCHEDULE": "0 0 0 1 1 *",
        "RETENTION_SCHEDULE": "0 0 0 1 1 *",
        "RATE_LIMITS": json.dumps({"sms": 1e6}),
    }


class Pipeline:
    """The runner, the emulator and a producer client on one fresh queue and table prefix."""

    def __init__(self, conn: str, log_path: Path) -> None:
        self.acs = AcsEmulator(report_delay=0.0).start()
        self.env = _env(conn, self.acs)
        self.runner = RunnerProcess(REPO_ROOT, env=self.env, storage=conn, log_path=log_path).start()
        self.acs.set_webhook(f"{self.runner.url}/runtime/webhooks/eventgrid?functionName=record_event")
        self.client = ContactMessagesClient.from_connection_string(conn, self.env["SEND_QUEUE"], **CLIENT_OPTIONS)
        self.http = aiohttp.ClientSession()
        self.retried_posts = 0

    def accepted(self) -> dict[str, float]:
        """Message id (the SMS tag) → when the emulator accepted its send, as Unix time."""
        return {record.tag: record.at.timestamp() for record in self.acs.sends() if record.tag}

    async def post(self, request: dict[str, Any]) -> float:
        """POST one request to the intake as a producer would, again after a 5xx (the id makes a repeat the
        same message); returns when the first POST started (Unix time), so a retry counts in the latency."""
        started = time.time()
        for attempt in range(1, POST_ATTEMPTS + 1):
            async with self.http.post(f"{self.runner.url}/api/messages", json=request) as response:
                if response.status == 202:
                    self.retried_posts += attempt - 1
                    return started
                if response.status < 500 or attempt == POST_ATTEMPTS:
                    raise RuntimeError(f"intake answered {response.status}: {await response.text()}")
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def warm_up(self) -> None:
        """One request per lane, so both triggers have built their services before anything is measured."""
        await self.client.ensure_queue()
        await self.client.enqueue(_sms("warm-normal"))
        await self.post(_sms("warm-high", priority="high"))
        await self.until({"warm-normal", "warm-high"})

    async def until(self, ids: set[str], timeout: float = 600.0) -> dict[str, float]:
        deadline = time.monotonic() + timeout
        while not ids <= (seen := self.accepted()).keys():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(ids - seen.keys())} of {len(ids)} requests not sent in {timeout} s")
            await asyncio.sleep(0.05)
        return seen

    async def close(self) -> None:
        await self.http.close()
        await self.client.close()
        self.runner.terminate()
        self.acs.stop()


async def _post_spread(pipe: Pipeline, ids: list[str], spacing: float) -> dict[str, float]:
    """Post the high-priority requests one every `spacing` seconds; returns each one's POST time."""
    posted: dict[str, float] = {}
    for message_id in ids:
        await asyncio.sleep(spacing)
        posted[message_id] = await pipe.post(_sms(message_id, priority="high"))
    return posted


async def one_run(storage_arg: str | None, backlog: int, high: int, spacing: float, log_path: Path) -> dict[str, Any]:
    """One backlog (with `high` high-priority requests spread over it, when `high` > 0), on an Azurite of
    its own unless one was given, with a probe that tells whether Azurite's queue sweep stalled it."""
    with storage(storage_arg) as conn, LatencyProbe(queue_endpoint(conn)) as probe:
        run = await _one_run(conn, backlog, high, spacing, log_path)
    to_unix = time.time() - time.monotonic()
    run["stalls"] = [Window(w.start + to_unix, w.end + to_unix) for w in stalls(probe.samples)]
    return run


async def _one_run(conn: str, backlog: int, high: int, spacing: float, log_path: Path) -> dict[str, Any]:
    pipe = Pipeline(conn, log_path)
    try:
        await pipe.warm_up()
        bulk = [f"bulk-{uuid.uuid4().hex[:12]}" for _ in range(backlog)]
        codes = [f"code-{uuid.uuid4().hex[:12]}" for _ in range(high)]
        start = time.time()
        spread = asyncio.create_task(_post_spread(pipe, codes, spacing))
        await bounded(bulk, lambda message_id: pipe.client.enqueue(_sms(message_id)), 16)
        posted = await spread
        accepted = await pipe.until(set(bulk) | set(codes))
        drained = max(accepted[m] for m in bulk) - start
        latencies = sorted(accepted[m] - posted[m] for m in codes)
        return {
            "bulk_rate": backlog / drained,
            "drain_s": drained,
            "high_latencies_s": latencies,
            "high_windows": [Window(posted[m], accepted[m]) for m in codes],
            "retried_posts": pipe.retried_posts,
        }
    finally:
        await pipe.close()


def _pct(ordered: list[float], q: float) -> float:
    """The nearest-rank percentile: the smallest value with at least `q` of the values at or below it
    (p99 of 100 values is the 99th, not the largest)."""
    return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 3) if ordered else 0.0


async def measure(storage_arg: str | None, backlog: int, high: int, log_dir: Path) -> dict[str, Any]:
    """The baseline, then the run with the high-priority requests, each on a fresh Azurite. The requests
    that Azurite's queue sweep stalled are left out of the percentiles (and counted), as issue 20 asks of
    every benchmark: the stall is Azurite's, not a cost Azure Storage has. A run in which it stalled more
    than a tenth of them is repeated, at most MEASURED_ATTEMPTS times."""
    baseline = await one_run(storage_arg, backlog, 0, 0.0, log_dir / "runner-baseline.log")
    spacing = baseline["drain_s"] / (high + 1)
    attempts: list[dict[str, Any]] = []
    while len(attempts) < MEASURED_ATTEMPTS and (not attempts or _stalled_share(attempts[-1]) > 0.1):
        log_path = log_dir / f"runner-priority-{len(attempts)}.log"
        attempts.append(await one_run(storage_arg, backlog, high, spacing, log_path))
    with_high = attempts[-1]
    every = sorted(w.end - w.start for w in with_high["high_windows"])
    clear = sorted(w.end - w.start for w in with_high["high_windows"] if not _in_stall(w, with_high["stalls"]))
    clear = clear or every  # every request stalled, three runs over: report them as they were
    return {
        "p50": _pct(clear, 0.5),
        "p99": _pct(clear, 0.99),
        "max": _pct(clear, 1.0),
        "p99_with_stalled": _pct(every, 0.99),
        "max_with_stalled": _pct(every, 1.0),
        "stalled_requests": len(every) - len(clear),
        "measured_runs": len(attempts),
        "baseline_stalled": bool(baseline["stalls"]),
        "bulk_ratio": round(with_high["bulk_rate"] / baseline["bulk_rate"], 3),
        "bulk_rate": round(with_high["bulk_rate"], 1),
        "baseline_bulk_rate": round(baseline["bulk_rate"], 1),
        "spacing_s": round(spacing, 3),
        "high_latencies_s": [round(v, 3) for v in every],
        "retried_posts": with_high["retried_posts"],
        "stall_windows_s": [round(w.end - w.start, 1) for w in with_high["stalls"]],
    }


def _in_stall(request: Window, stalls: list[Window]) -> bool:
    return any(request.overlaps(stall) for stall in stalls)


def _stalled_share(run: dict[str, Any]) -> float:
    """The share of the run's high-priority requests that an Azurite stall overlapped."""
    windows = run["high_windows"]
    return sum(1 for w in windows if _in_stall(w, run["stalls"])) / max(1, len(windows))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    cli = parser(__doc__ or "")
    cli.add_argument("--backlog", type=int, default=2000, help="normal requests enqueued at once")
    cli.add_argument("--high", type=int, default=100, help="high-priority requests spread over the backlog")
    cli.add_argument("--log-dir", type=Path, default=REPO_ROOT / ".devstack" / "bench-priority")
    args = cli.parse_args(argv)
    args.log_dir.mkdir(parents=True, exist_ok=True)
    run = asyncio.run(measure(args.storage, args.backlog, args.high, args.log_dir))
    p99 = run.pop("p99")
    record = write_result(
        args.results_dir,
        "priority",
        p99,
        TARGET_P99_S,
        "s",
        backlog=args.backlog,
        high=args.high,
        **run,
        target=f"p99 <= {TARGET_P99_S} s, bulk_ratio >= {TARGET_BULK_RATIO}",
    )
    record["name"] = NAME
    (args.results_dir / "priority.json").write_text(json.dumps(record, indent=2) + "\n")
    holds = p99 <= TARGET_P99_S and run["bulk_ratio"] >= TARGET_BULK_RATIO
    print(
        f"{NAME}: p50 {run['p50']} s, p99 {p99} s (target <= {TARGET_P99_S}); bulk_ratio {run['bulk_ratio']} "
        f"(target >= {TARGET_BULK_RATIO}): {'holds' if holds else 'DOES NOT hold'}"
    )
    return record


if __name__ == "__main__":
    main()
