"""Soak under faults: the pipeline keeps every message and sends none twice while things break.

For `--minutes` (at most 10): producers enqueue a steady stream (most through the client, some
through `POST /api/messages`); the ACS emulator answers a share of sends with 429, 503, added
latency or a lost response; recipients include never-reporting, duplicate-reporting and reordered
ones; the runner is killed (SIGKILL) and restarted every `--kill-every` seconds; Azurite (persistent)
is restarted once half way. Then the run heals as an operator would (a reconcile pass) and reports:
accepted, final statuses, duplicate sends (must be 0 outside at-least-once), lost (must be 0),
dead letters with reasons. The exit code is 1 if anything was lost or sent twice.

The runner's queue lock is shortened to 30 s (DEVSTACK_QUEUE_LOCK_SECONDS) so that messages held by a
killed runner come back within the run instead of after the host's 10 minutes.
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, app_env, parser, write_result
from devstack.acs import AcsEmulator
from devstack.acs.config import DEPLOYED_MAX_EVENTS_PER_BATCH
from devstack.azurite import Azurite
from devstack.host.process import RunnerProcess
from shared.client import ContactMessagesClient
from shared.clock import utc_now
from shared.models import Status
from shared.runtime import build_services
from shared.settings import load_settings
from shared.status import TERMINAL

SETTLED = frozenset(TERMINAL | {Status.UNKNOWN})
OUTCOME_NUMBERS = ["00", "00", "00", "02", "04", "05", "07", "01"]


def request(i: int) -> dict[str, Any]:
    message_id = f"soak-{i}-{uuid.uuid4().hex[:6]}"
    kind = i % 3
    if kind == 0:
        return {
            "id": message_id,
            "channel": "sms",
            "to": f"+1425{i:05d}{OUTCOME_NUMBERS[i % 8]}",
            "content": {"text": f"soak {message_id}"},
        }
    if kind == 1:
        tag = random.choice(["", "", "+noreport", "+duplicate", "+reorder", "+bounce"])
        return {
            "id": message_id,
            "channel": "email",
            "to": f"s{i}{tag}@example.com",
            "content": {"subject": "soak", "text": message_id},
        }
    return {
        "id": message_id,
        "channel": "whatsapp",
        "to": f"+1425{i:05d}{OUTCOME_NUMBERS[i % 8]}",
        "content": {"text": f"soak {message_id}"},
    }


class Soak:
    def __init__(
        self, minutes: float, messages: int, kill_every: float, log_dir: Path, seed: int, heal_after: float = 40.0
    ) -> None:
        self.duration = min(minutes, 10.0) * 60
        self.heal_after = heal_after  # seconds the pipeline gets to finish alone before the operator heals
        self.messages = messages
        self.kill_every = kill_every
        self.log_dir = log_dir
        self.rng = random.Random(seed)
        random.seed(seed)
        self.data_dir = Path(tempfile.mkdtemp(prefix="soak-azurite-"))
        self.azurite = Azurite(data_dir=self.data_dir, log_path=log_dir / "azurite.log")
        self.acs = AcsEmulator(report_delay=0.3, late_delay=3, max_events_per_batch=DEPLOYED_MAX_EVENTS_PER_BATCH)
        self.env: dict[str, str] = {}
        self.runner: RunnerProcess | None = None
        self.kills = 0
        self.azurite_restarts = 0

    def start_runner(self) -> None:
        log = self.log_dir / f"runner-{self.kills}.log"
        self.runner = RunnerProcess(
            REPO_ROOT, env=self.env, storage=self.env["AzureWebJobsStorage"], log_path=log, grace_period=3
        ).start()
        self.acs.set_webhook(f"{self.runner.url}/runtime/webhooks/eventgrid?functionName=record_event")

    def faults(self) -> None:
        seconds = self.duration
        self.acs.add_fault("429", rate=0.05, retryAfter=1, seconds=seconds)
        self.acs.add_fault("503", rate=0.03, seconds=seconds)
        self.acs.add_fault("latency", rate=0.10, latencyMs=300, seconds=seconds)
        self.acs.add_fault("drop", rate=0.01, phase="after", seconds=seconds)

    async def produce(self, client: ContactMessagesClient, ids: list[str]) -> None:
        """Enqueue evenly over the first 60% of the run; every fifth request goes through HTTP."""
        window = self.duration * 0.6
        start = time.monotonic()
        for i in range(self.messages):
            body = request(i)
            ids.append(body["id"])
            if i % 5 == 0 and self.runner is not None:
                await asyncio.to_thread(self._post, body)
            else:
                await client.enqueue(body)
            await asyncio.sleep(max(0.0, start + window * (i + 1) / self.messages - time.monotonic()))

    def _post(self, body: dict[str, Any]) -> None:
        for _ in range(20):  # the runner may be mid-restart: a producer retries
            runner = self.runner
            try:
                assert runner is not None
                request_ = urllib.request.Request(  # noqa: S310 - loopback http only
                    f"{runner.url}/api/messages",
                    data=json.dumps(body).encode(),
                    method="POST",
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(request_, timeout=10):  # noqa: S310 - loopback
                    return
            except (OSError, AssertionError):
                time.sleep(0.5)
        raise RuntimeError("intake unreachable for 10 s")

    async def chaos(self) -> None:
        """Kill and restart the runner every `kill_every` s; restart Azurite once half way."""
        start = time.monotonic()
        next_kill = start + self.kill_every
        restart_azurite_at = start + self.duration / 2
        while time.monotonic() - start < self.duration:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            if now >= next_kill and self.runner is not None:
                self.runner.kill()
                self.kills += 1
                await asyncio.to_thread(self.start_runner)
                next_kill = now + self.kill_every * self.rng.uniform(0.8, 1.2)
            if self.azurite_restarts == 0 and now >= restart_azurite_at:
                await asyncio.to_thread(self._restart_azurite)

    def _restart_azurite(self) -> None:
        self.azurite.stop()
        self.azurite.start()
        self.azurite_restarts += 1

    async def run(self) -> dict[str, Any]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.azurite.start()
        self.acs.start()
        self.env = {
            **app_env(self.azurite.connection_string),
            "ACS_CONNECTION_STRING": self.acs.connection_string,
            "EMAIL_SENDERS": "noreply@contoso.example",
            "WHATSAPP_CHANNELS": "6b36a8e2-0000-4000-8000-000000000001",
            "RATE_LIMITS": json.dumps({"sms": 6000, "email": 6000, "whatsapp": 6000}),
            "DELIVERY_SLA_MINUTES": json.dumps({"sms": 0.5, "email": 0.5, "whatsapp": 0.5}),
            "RECONCILE_SCHEDULE": "*/10 * * * * *",
            "RETENTION_SCHEDULE": "0 0 0 1 1 *",
            "DEVSTACK_QUEUE_LOCK_SECONDS": "30",
        }
        self.faults()
        self.start_runner()
        client = ContactMessagesClient.from_connection_string(self.env["AzureWebJobsStorage"], self.env["SEND_QUEUE"])
        ids: list[str] = []
        try:
            await client.ensure_queue()
            await asyncio.gather(self.produce(client, ids), self.chaos())
            return await self.settle(ids)
        finally:
            await client.close()
            if self.runner is not None:
                self.runner.terminate()
            self.acs.stop()
            self.azurite.stop()

    async def settle(self, ids: list[str]) -> dict[str, Any]:
        """Let the pipeline finish, then heal as an operator would and count what happened."""
        self.acs.clear_faults()
        skew = [timedelta()]  # advanced for the operator's reconcile of stuck rows
        svc = await build_services(load_settings(self.env), clock=lambda: utc_now() + skew[0])
        try:
            heal_at = time.monotonic() + self.heal_after
            deadline = heal_at + 80
            statuses: dict[str, Status | None] = {}
            while time.monotonic() < deadline:
                statuses = {
                    i: (r.status if r else None)
                    for i, r in zip(ids, await asyncio.gather(*(svc.ledger.get(i) for i in ids)), strict=True)
                }
                if all(s in SETTLED for s in statuses.values()):
                    break
                if time.monotonic() > heal_at:  # stuck rows: the reconcile an operator would run
                    skew[0] = timedelta(minutes=20)
                    await svc.reconcile.run()
                await asyncio.sleep(2)
            lost = [i for i, s in statuses.items() if s not in SETTLED]
            dead = []
            for message_id, status in statuses.items():
                if status == Status.DEAD_LETTERED:
                    row = await svc.ledger.get(message_id)
                    dead.append({"id": message_id, "reason": row.get("Reason") if row else None})
            return {
                "accepted": len([s for s in statuses.values() if s is not None]),
                "requested": len(ids),
                "final": dict(Counter(str(s) for s in statuses.values())),
                "lost": lost,
                "duplicates": self.acs.duplicates(),
                "dead_lettered": dead,
                "kills": self.kills,
                "azurite_restarts": self.azurite_restarts,
            }
        finally:
            await svc.close()


def main(argv: list[str] | None = None) -> int:
    cli = parser(__doc__ or "")
    cli.add_argument("--minutes", type=float, default=5.0)
    cli.add_argument("--messages", type=int, default=1500)
    cli.add_argument("--kill-every", type=float, default=60.0)
    cli.add_argument("--seed", type=int, default=11)
    cli.add_argument("--heal-after", type=float, default=40.0, help="seconds before the operator's reconcile")
    args = cli.parse_args(argv)
    soak = Soak(
        args.minutes, args.messages, args.kill_every, args.results_dir / "logs" / "soak", args.seed, args.heal_after
    )
    started = time.monotonic()
    result = asyncio.run(soak.run())
    elapsed = time.monotonic() - started
    print(
        f"requested {result['requested']}, accepted {result['accepted']} in {elapsed:.0f} s "
        f"({result['kills']} runner kills, {result['azurite_restarts']} Azurite restart)"
    )
    print("final statuses: " + ", ".join(f"{k}={v}" for k, v in sorted(result["final"].items())))
    print(f"duplicate sends: {len(result['duplicates'])}; lost: {len(result['lost'])}")
    reasons = Counter(str(d["reason"])[:80] for d in result["dead_lettered"])
    print(f"dead-lettered: {len(result['dead_lettered'])} " + json.dumps(dict(reasons)))
    failures = len(result["lost"]) + len(result["duplicates"])
    extra = {k: v for k, v in result.items() if k != "duplicates"}
    # value = messages lost or sent twice; floor = messages requested; ratio = the failure share (must be 0)
    write_result(
        args.results_dir,
        "soak",
        float(failures),
        float(result["requested"]),
        "messages",
        duplicate_sends=len(result["duplicates"]),
        elapsed_s=round(elapsed, 1),
        **extra,
    )
    return 1 if result["lost"] or result["duplicates"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
