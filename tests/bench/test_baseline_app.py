"""The baseline app (bench/baseline: the campaign-mailer pattern) runs on the project's runner and
emulator: messages of every channel are sent and their statuses upserted from Event Grid."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from pathlib import Path

from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from bench import side_by_side
from bench.kills import BASELINE_DIR, PIPELINE, baseline_env, extra_sends, under_kills
from bench.latency import LatencyProfile
from bench.throughput import requests, start_acs
from devstack.azurite import Azurite
from devstack.host.process import RunnerProcess


def test_the_baseline_sends_every_channel_and_records_each_status(azurite: Azurite, tmp_path: Path) -> None:
    conn = azurite.connection_string
    acs = start_acs(LatencyProfile.INSTANT)
    env = baseline_env(conn, acs)
    runner = RunnerProcess(BASELINE_DIR, env=env, storage=conn, log_path=tmp_path / "runner.log")
    try:
        runner.start()
        acs.set_webhook(f"{runner.url}/runtime/webhooks/eventgrid?functionName=record_event")
        queue = QueueClient.from_connection_string(
            conn, env["SEND_QUEUE"], message_encode_policy=TextBase64EncodePolicy()
        )
        queue.create_queue()
        for request in requests(9):
            queue.send_message(json.dumps({**request, "id": str(uuid.uuid4())}))
        deadline = time.monotonic() + 60
        rows: dict[str, str] = {}
        while time.monotonic() < deadline:
            rows = asyncio.run(side_by_side.statuses(conn, env["STATUS_TABLE"]))
            if len(acs.sends()) >= 9 and len(rows) >= 9 and all(status == "Delivered" for status in rows.values()):
                break
            time.sleep(0.2)
        assert Counter(str(send.channel) for send in acs.sends()) == {"sms": 3, "email": 3, "whatsapp": 3}
        assert set(rows.values()) == {"Delivered"} and len(rows) == 9
    finally:
        runner.terminate()
        acs.stop()


def test_side_by_side_writes_each_profile(azurite: Azurite, tmp_path: Path) -> None:
    """The pipeline against the baseline, at a tiny size (timings are never asserted)."""
    argv = ["--n", "12", "--repeats", "1", "--profiles", "instant", "--kills", "0", "--results-dir", str(tmp_path)]
    assert side_by_side.main([*argv, "--storage", azurite.connection_string]) == 0
    record = json.loads((tmp_path / "baseline.json").read_text())
    instant = record["profiles"]["instant"]
    assert instant["pipeline_msg_s"] > 0 and instant["baseline_msg_s"] > 0
    assert instant["target"] == ">= 0.8" and instant["duplicate_sends"] == {"pipeline": 0, "baseline": 0}
    assert all(set(run["stall"]) == {"pipeline", "baseline"} for run in instant["runs"])


def test_extra_sends_count_every_send_beyond_the_first_of_its_group() -> None:
    assert extra_sends([{"count": 2}, {"count": 4}]) == 4
    assert extra_sends([]) == 0


def test_the_pipeline_sends_nothing_twice_when_its_runner_is_killed(azurite: Azurite, tmp_path: Path) -> None:
    """One kill while it sends; the message held by the killed runner comes back after the queue lock."""
    run = under_kills(PIPELINE, azurite.connection_string, 30, kills=1, every=0.5, log_dir=tmp_path)
    assert run["settled"] and run["kills"] == 1
    assert run["duplicate_sends"] == 0
