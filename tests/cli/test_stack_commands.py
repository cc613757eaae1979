"""`contactmsg stack start|stop|demo`: the local stack as a user starts it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "contactmsg", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )


def test_stack_start_detached_serves_the_cli_then_stops() -> None:
    """`stack start --detach` leaves the stack running for other commands; `stack stop` ends it."""
    started = _cli("stack", "start", "--detach")
    assert started.returncode == 0, started.stderr
    try:
        sent = _cli("--json", "send", "sms", "+14255550100", "--text", "hi", "--id", f"stack-{os.getpid()}")
        assert sent.returncode == 0, sent.stderr
        status = json.loads(_cli("--json", "status", f"stack-{os.getpid()}").stdout)
        assert status["status"] in {"Accepted", "Sending", "Sent", "Delivered"}
    finally:
        stopped = _cli("stack", "stop")
    assert "stopped 3 process(es)" in stopped.stdout


def test_stack_demo_ends_with_every_message_where_expected() -> None:
    """`stack demo` (what `make run` does) exits 0 and prints the summary table."""
    demo = _cli("stack", "demo", timeout=300)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "what happened to each message" in demo.stdout
    assert "duplicate sends: 0" in demo.stdout
