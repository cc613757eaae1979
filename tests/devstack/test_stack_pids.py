"""`stack stop` signals only the processes it recorded: a stale stack.json never kills a stranger.

Real child processes throughout: a recorded entry whose start time or command line no longer matches
(what a reused pid looks like) is left running and reported; a matching one gets SIGTERM.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devstack.stack import LocalStack, ProcessRecord, StopReport, _from_ps, write_state


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A harmless child that would run for a minute unless signalled."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    # Right after the fork the child still shows the parent's command line (this test's Python) until it
    # has exec'd; a record taken then would not match the process later, and it would look reused.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        observed = ProcessRecord.observe(process.pid)
        if observed is not None and "time.sleep(60)" in " ".join(observed.cmdline):
            break
        time.sleep(0.01)
    yield process
    if process.poll() is None:
        process.kill()
    process.wait(10)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "stack.json"


def _record(process: subprocess.Popen[bytes]) -> ProcessRecord:
    record = ProcessRecord.observe(process.pid)
    assert record is not None
    return record


def _still_running(process: subprocess.Popen[bytes]) -> bool:
    """True if the process is alive after long enough for a SIGTERM to have ended it."""
    try:
        process.wait(1.0)
    except subprocess.TimeoutExpired:
        return True
    return False


def test_a_recorded_process_that_is_still_ours_gets_sigterm(sleeper: subprocess.Popen[bytes], state: Path) -> None:
    write_state(state, [_record(sleeper)])

    report = LocalStack.stop_recorded(state)

    assert report == StopReport(stopped=(sleeper.pid,), stale=())
    assert sleeper.wait(10) == -signal.SIGTERM
    assert not state.exists()


@pytest.mark.parametrize(
    "recorded",
    [
        pytest.param(lambda r: dataclasses.replace(r, started="another-boot:1"), id="start-time"),
        pytest.param(lambda r: dataclasses.replace(r, cmdline=("node", "unrelated.js")), id="command-line"),
    ],
)
def test_a_pid_now_running_something_else_is_left_alone_and_reported(
    sleeper: subprocess.Popen[bytes], state: Path, recorded: Callable[[ProcessRecord], ProcessRecord]
) -> None:
    """What a reused pid looks like: the pid is alive, but not with the start time or command recorded."""
    write_state(state, [recorded(_record(sleeper))])

    report = LocalStack.stop_recorded(state)

    assert report == StopReport(stopped=(), stale=(sleeper.pid,))
    assert _still_running(sleeper)
    assert not state.exists()


def test_a_state_file_with_bare_pids_cannot_be_verified_so_nothing_is_signalled(
    sleeper: subprocess.Popen[bytes], state: Path
) -> None:
    """The format written before start times were recorded: `{"pids": [...]}`."""
    state.write_text(json.dumps({"pids": [sleeper.pid]}))

    report = LocalStack.stop_recorded(state)

    assert report == StopReport(stopped=(), stale=(sleeper.pid,))
    assert _still_running(sleeper)
    assert not state.exists()


def test_a_process_that_has_exited_is_reported_stale(state: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    record = _record(gone)
    gone.wait(10)
    write_state(state, [record])

    assert LocalStack.stop_recorded(state) == StopReport(stopped=(), stale=(record.pid,))


def test_mixed_entries_stop_the_live_one_and_report_the_stale_one(
    sleeper: subprocess.Popen[bytes], state: Path
) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_state(state, [_record(sleeper), dataclasses.replace(_record(other), started="0:0")])

        report = LocalStack.stop_recorded(state)

        assert report == StopReport(stopped=(sleeper.pid,), stale=(other.pid,))
        assert sleeper.wait(10) == -signal.SIGTERM
        assert _still_running(other)
    finally:
        other.kill()
        other.wait(10)


def _stopping_child(marks: Path, linger: float = 0.0, ignore_sigterm: bool = False) -> subprocess.Popen[bytes]:
    """A child that notes when SIGTERM arrives (`marks`.signalled) and when it exits after lingering
    `linger` s (`marks`.exited), as the runner does while it finishes its work; or that ignores SIGTERM."""
    handler = (
        "signal.SIG_IGN"
        if ignore_sigterm
        else f"lambda *_: (note('signalled'), time.sleep({linger}), note('exited'), sys.exit(0))"
    )
    script = (
        "import pathlib, signal, sys, time\n"
        f"def note(what): pathlib.Path({str(marks)!r} + '.' + what).write_text(repr(time.time()))\n"
        f"signal.signal(signal.SIGTERM, {handler})\n"
        "note('ready')\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script])  # noqa: S603 - the script is built above
    ready = marks.with_name(marks.name + ".ready")
    while not ready.exists():  # the handler must be in place before the test signals
        assert child.poll() is None
        time.sleep(0.01)
    return child


def _mark(marks: Path, what: str) -> float:
    return float(marks.with_name(f"{marks.name}.{what}").read_text())


def test_recorded_processes_stop_one_after_another_and_are_gone_on_return(tmp_path: Path, state: Path) -> None:
    """The next process (Azurite after the runner) gets SIGTERM only once the previous one has exited,
    and `stop_recorded` returns only when all have."""
    runner, storage = tmp_path / "runner", tmp_path / "storage"
    first, second = _stopping_child(runner, linger=0.5), _stopping_child(storage)
    try:
        write_state(state, [_record(first), _record(second)])

        report = LocalStack.stop_recorded(state)

        assert report == StopReport(stopped=(first.pid, second.pid), stale=())
        assert (first.poll(), second.poll()) == (0, 0)
        assert _mark(storage, "signalled") >= _mark(runner, "exited")
    finally:
        for child in (first, second):
            child.kill()
            child.wait(10)


def test_a_process_that_outlives_the_timeout_is_killed_and_reported(tmp_path: Path, state: Path) -> None:
    """The wait is bounded: a process that ignores SIGTERM gets SIGKILL and is named as killed."""
    stubborn = _stopping_child(tmp_path / "stubborn", ignore_sigterm=True)
    try:
        write_state(state, [_record(stubborn)])

        report = LocalStack.stop_recorded(state, timeout=0.5)

        assert report == StopReport(stopped=(stubborn.pid,), stale=(), killed=(stubborn.pid,))
        assert stubborn.wait(10) == -signal.SIGKILL
    finally:
        stubborn.kill()
        stubborn.wait(10)


def test_detach_then_stop_detached_terminates_the_recorded_process(
    sleeper: subprocess.Popen[bytes], state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real writer and the CLI's entry point: what `stack start --detach` / `stack stop` do."""
    LocalStack(ports={}, emulator=sleeper).detach(state)

    assert json.loads(state.read_text())["processes"][0]["pid"] == sleeper.pid
    assert LocalStack.stop_detached(state) == 1
    assert sleeper.wait(10) == -signal.SIGTERM
    assert capsys.readouterr().err == ""


def test_stop_detached_names_stale_entries_on_stderr(
    sleeper: subprocess.Popen[bytes], state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_state(state, [dataclasses.replace(_record(sleeper), cmdline=("something", "else"))])

    assert LocalStack.stop_detached(state) == 0
    assert _still_running(sleeper)
    err = capsys.readouterr().err
    assert "stale" in err
    assert str(sleeper.pid) in err
    assert not state.exists()


def test_no_state_file_stops_nothing(state: Path) -> None:
    assert LocalStack.stop_recorded(state) == StopReport()
    assert LocalStack.stop_detached(state) == 0


@pytest.fixture
def without_proc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Read processes the way platforms without /proc (macOS, BSD) do: through `ps`."""
    if shutil.which("ps") is None:
        pytest.skip("no ps on this machine")
    monkeypatch.setattr("devstack.stack.PROC", tmp_path / "no-proc")


@pytest.mark.usefixtures("without_proc")
def test_without_proc_ps_tells_our_process_from_a_stranger(sleeper: subprocess.Popen[bytes], state: Path) -> None:
    record = _record(sleeper)
    assert record == _from_ps(sleeper.pid)
    assert "time.sleep(60)" in record.cmdline[0]

    write_state(state, [dataclasses.replace(record, cmdline=("something else",))])
    assert LocalStack.stop_recorded(state) == StopReport(stopped=(), stale=(sleeper.pid,))
    assert _still_running(sleeper)

    write_state(state, [record])
    assert LocalStack.stop_recorded(state) == StopReport(stopped=(sleeper.pid,), stale=())
    assert sleeper.wait(10) == -signal.SIGTERM
