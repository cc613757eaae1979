"""`contactmsg stack start|stop|demo`: the local stack as a user starts it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from contactmsg.context import Exit
from devstack.stack import PIDS_FILE, read_state

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
    assert "stopped 4 process(es)" in stopped.stdout


def test_stack_stop_returns_once_the_runner_the_emulator_the_topic_and_azurite_have_exited() -> None:
    """`stack stop` reports the processes stopped only when they are gone: the runner is stopped first,
    while storage still answers, so it exits within its grace period instead of a minute and a half."""
    started = _cli("stack", "start", "--detach")
    assert started.returncode == 0, started.stderr
    recorded = read_state(PIDS_FILE)
    stopped = _cli("stack", "stop")
    assert "stopped 4 process(es)" in stopped.stdout, stopped.stderr
    assert [record.pid for record in recorded if record.is_running()] == []


def test_stack_start_while_a_stack_runs_says_so_in_one_line_and_leaves_it_running() -> None:
    """A second `stack start` exits 3 with one line naming `stack stop`, not a traceback from the runner."""
    started = _cli("stack", "start", "--detach")
    assert started.returncode == 0, started.stderr
    try:
        recorded = read_state(PIDS_FILE)
        again = _cli("stack", "start", "--detach")
        assert again.returncode == Exit.FAILED
        assert len(again.stderr.strip().splitlines()) == 1, again.stderr
        assert "already running" in again.stderr and "python -m contactmsg stack stop" in again.stderr
        assert all(record.is_running() for record in recorded)
    finally:
        _cli("stack", "stop")


def test_stack_demo_ends_with_every_message_where_expected() -> None:
    """`stack demo` (what `make run` does) exits 0 and prints the summary table."""
    demo = _cli("stack", "demo", timeout=300)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "what happened to each message" in demo.stdout
    assert "duplicate sends: 0" in demo.stdout
    # channel fallback, end to end: each WhatsApp message that failed or was refused reached its SMS alternative
    assert "outcome: delivered by sms after whatsapp failed" in demo.stdout
    assert "outcome: delivered by sms after whatsapp was refused" in demo.stdout
