"""`python -m devstack.eventgrid`: the foreground topic process the local stack runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.devstack.eventgrid.subscriber import Subscriber

ROOT = Path(__file__).resolve().parents[3]
TOPIC = [sys.executable, "-m", "devstack.eventgrid", "--port", "0"]


def test_cli_subscribes_prints_its_endpoint_and_stops_on_sigterm(subscriber: Subscriber) -> None:
    """With --subscriber the handshake runs at start; the banner names the endpoint; SIGTERM exits 0."""
    process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed argv
        [*TOPIC, "--log-level", "WARNING", "--subscriber", subscriber.url("cli-hook"), "--time-scale", "0.01"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        endpoint = process.stdout.readline().rsplit(" ", 1)[-1].strip()
        assert endpoint.startswith("http://127.0.0.1:") and endpoint.endswith("/api/events")
        assert subscriber.handshakes("cli-hook")[0]["method"] == "OPTIONS"
        health_url = endpoint.removesuffix("/api/events") + "/admin/health"
        with urllib.request.urlopen(health_url, timeout=10) as response:  # noqa: S310 - loopback
            health = json.loads(response.read())
        assert [s["endpoint"] for s in health["subscriptions"]] == [subscriber.url("cli-hook")]
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
    assert code == 0


def test_cli_refuses_settings_event_grid_would_refuse() -> None:
    """31 delivery attempts is a configuration error (exit 2) before anything listens."""
    result = subprocess.run(  # noqa: S603 - this interpreter, fixed argv
        [*TOPIC, "--max-delivery-attempts", "31", "--subscriber", "http://127.0.0.1:9/hook"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2 and "1 to 30" in result.stderr
