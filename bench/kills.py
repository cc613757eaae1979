"""Duplicate sends under runner kills: the pipeline and the baseline app, the same kills for both.

Each app gets an Azurite and an ACS emulator of its own and `n` mixed messages on its queue; while it
works through them its runner is killed (SIGKILL, a crash: nothing in flight completes) `kills` times,
`every` seconds apart, and started again at once. The queue lock is shortened
(DEVSTACK_QUEUE_LOCK_SECONDS) so that what a killed runner held comes back within the run. Once every
message was sent at least once and the queue is empty, the emulator counts the sends it accepted more
than once for the same channel, recipient and content.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.storage.queue import TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient

from bench.common import REPO_ROOT, SMS_SENDER, bounded, storage
from bench.latency import LatencyProfile
from bench.throughput import pipeline_env, requests, start_acs
from devstack.acs import AcsEmulator
from devstack.host.process import RunnerProcess

BASELINE_DIR = REPO_ROOT / "bench" / "baseline"
QUEUE_LOCK_SECONDS = 10
# The emulator answers at once, so the pipeline's ACS calls may wait far less than in Azure; its claim
# lease (the sum plus 20 s) follows, and an email a killed runner held is recovered within the run too.
FAST_ACS_TIMEOUTS = json.dumps({"connectSeconds": 2, "readSeconds": 5})
SETTLE_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class App:
    """An app under test: where it lives, and its settings on given storage and emulator."""

    name: str
    directory: Path

    def env(self, conn: str, acs: AcsEmulator) -> dict[str, str]:
        if self.name == "pipeline":
            return pipeline_env(conn, acs) | {"ACS_TIMEOUTS": FAST_ACS_TIMEOUTS}
        return baseline_env(conn, acs)


def baseline_env(conn: str, acs: AcsEmulator) -> dict[str, str]:
    """The baseline app's settings (bench/baseline/function_app.py): its own queue and table."""
    suffix = uuid.uuid4().hex[:10]
    return {
        "AzureWebJobsStorage": conn,
        "ACS_CONNECTION_STRING": acs.connection_string,
        "SEND_QUEUE": f"baseline-{suffix}",
        "STATUS_TABLE": f"baseline{suffix}",
        "SMS_SENDER": SMS_SENDER,
        "EMAIL_SENDER": "noreply@contoso.example",
        "WHATSAPP_CHANNEL": "6b36a8e2-0000-4000-8000-000000000001",
    }


PIPELINE = App("pipeline", REPO_ROOT)
BASELINE = App("baseline", BASELINE_DIR)


def extra_sends(duplicates: list[dict[str, Any]]) -> int:
    """Sends beyond the first of each (channel, recipient, content) group the emulator reports."""
    return sum(int(group["count"]) - 1 for group in duplicates)


class KilledRun:
    """One app working through `n` messages while its runner is killed and started again."""

    def __init__(self, app: App, conn: str, log_dir: Path) -> None:
        self.app = app
        self.conn = conn
        self.log_dir = log_dir
        self.acs = start_acs(LatencyProfile.INSTANT)
        self.env = app.env(conn, self.acs) | {"DEVSTACK_QUEUE_LOCK_SECONDS": str(QUEUE_LOCK_SECONDS)}
        self.runner: RunnerProcess | None = None
        self.starts = 0

    def start_runner(self) -> None:
        log = self.log_dir / f"kills-{self.app.name}-runner-{self.starts}.log"
        self.runner = RunnerProcess(
            self.app.directory, env=self.env, storage=self.conn, log_path=log, grace_period=3
        ).start()
        self.starts += 1
        self.acs.set_webhook(f"{self.runner.url}/runtime/webhooks/eventgrid?functionName=record_event")

    async def run(self, n: int, kills: int, every: float) -> dict[str, Any]:
        queue = QueueClient.from_connection_string(
            self.conn, self.env["SEND_QUEUE"], message_encode_policy=TextBase64EncodePolicy()
        )
        try:
            await queue.create_queue()
            self.start_runner()
            batch = [json.dumps({**r, "id": str(uuid.uuid4())}) for r in requests(n)]
            await bounded(batch, queue.send_message, 16)
            sent_at_kills = []  # shows that each kill landed while the app was sending
            for _ in range(kills):
                await asyncio.sleep(every)
                assert self.runner is not None
                sent_at_kills.append(len(self.acs.sends()))
                self.runner.kill()
                await asyncio.to_thread(self.start_runner)
            settled = await self._settle(queue, n)
            duplicates = extra_sends(self.acs.duplicates())
            return {"kills": kills, "sent_at_kills": sent_at_kills, "settled": settled, "duplicate_sends": duplicates}
        finally:
            await queue.close()
            if self.runner is not None:
                self.runner.terminate()
            self.acs.stop()

    async def _settle(self, queue: QueueClient, n: int) -> bool:
        """Until every message was sent and the queue stayed empty for longer than the queue lock."""
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        empty_since: float | None = None
        while time.monotonic() < deadline:
            sent = len({(s.channel, s.to, s.content_sha256) for s in self.acs.sends()})
            waiting = (await queue.get_queue_properties()).approximate_message_count
            if sent >= n and waiting == 0:
                empty_since = empty_since or time.monotonic()
                if time.monotonic() - empty_since > QUEUE_LOCK_SECONDS + 2:
                    return True
            else:
                empty_since = None
            await asyncio.sleep(0.5)
        return False


def under_kills(app: App, storage_arg: str | None, n: int, kills: int, every: float, log_dir: Path) -> dict[str, Any]:
    with storage(storage_arg) as conn:
        return asyncio.run(KilledRun(app, conn, log_dir).run(n, kills, every))
