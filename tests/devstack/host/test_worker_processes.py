"""FUNCTIONS_WORKER_PROCESS_COUNT: the runner starts that many worker processes (1 by default; the app
never runs in the runner's own process), spreads invocations over them round-robin, replaces a worker
that dies, and leaves none behind when killed.

The rest of the runner suite also passes with FUNCTIONS_WORKER_PROCESS_COUNT=2 in the environment,
except the test that expects one module-level client across invocations (two processes, two clients).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from devstack.host.process import RunnerProcess
from tests.devstack.host.helpers import http, wait_for

pytestmark = pytest.mark.usefixtures("azurite")


def _pids(runner: RunnerProcess, calls: int = 6) -> list[int]:
    replies = [http("GET", f"{runner.url}/api/whoami") for _ in range(calls)]
    assert all(reply.status == 200 for reply in replies), [reply.status for reply in replies]
    return [int(reply.json()["pid"]) for reply in replies]


def _alive(pid: int) -> bool:
    """Running, and not a zombie left for a parent that no longer reaps it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _log(runner: RunnerProcess) -> str:
    assert runner.log_path is not None
    return runner.log_path.read_text(encoding="utf-8", errors="replace")


def _log_once_it_has(runner: RunnerProcess, text: str) -> str:
    return wait_for(lambda: log if text in (log := _log(runner)) else None)


def _two_workers(runner: RunnerProcess) -> set[int] | None:
    pids = set(_pids(runner, 4))
    return pids if len(pids) == 2 else None


def _the_one_worker(runner: RunnerProcess, calls: int = 6) -> int:
    """The pid of the single worker process that ran `calls` invocations; never the runner's own."""
    pids = set(_pids(runner, calls))
    assert len(pids) == 1
    assert runner.pid not in pids
    return pids.pop()


@pytest.mark.parametrize("count", ["1", None], ids=["one", "unset"])
def test_one_worker_process_runs_functions_apart_from_the_runner(
    start_runner: Callable[..., RunnerProcess], count: str | None
) -> None:
    """As in Azure, the app's code never runs in the host's process, even with one worker."""
    env = {"ENQUEUE_QUEUE": "unused"} | ({"FUNCTIONS_WORKER_PROCESS_COUNT": count} if count else {})
    _the_one_worker(start_runner("web", env=env))


def test_invocations_alternate_over_the_worker_processes(start_runner: Callable[..., RunnerProcess]) -> None:
    runner = start_runner("web", env={"ENQUEUE_QUEUE": "unused", "FUNCTIONS_WORKER_PROCESS_COUNT": "3"})
    pids = _pids(runner)
    assert len(set(pids)) == 3
    assert runner.pid not in pids
    assert pids[:3] == pids[3:]  # round-robin: the same order twice


def test_a_function_error_in_a_worker_keeps_its_type_and_traceback(
    start_runner: Callable[..., RunnerProcess],
) -> None:
    runner = start_runner("web", env={"ENQUEUE_QUEUE": "unused", "FUNCTIONS_WORKER_PROCESS_COUNT": "2"})
    assert http("GET", f"{runner.url}/api/boom").status == 500
    log = _log_once_it_has(runner, "boom from the function")
    assert "Exception=ValueError: boom from the function" in log
    assert 'raise ValueError("boom from the function")' in log  # the worker's traceback, user frames


def test_a_worker_that_dies_is_replaced(start_runner: Callable[..., RunnerProcess]) -> None:
    runner = start_runner("web", env={"ENQUEUE_QUEUE": "unused", "FUNCTIONS_WORKER_PROCESS_COUNT": "2"})
    before = set(_pids(runner, 2))
    assert http("POST", f"{runner.url}/api/crash").status == 500  # its invocation fails, as in Azure
    _log_once_it_has(runner, "exited; starting a new one")
    after = wait_for(lambda: _two_workers(runner))
    assert len(after & before) == 1  # one survivor, one replacement


def test_killing_the_runner_ends_its_workers(start_runner: Callable[..., RunnerProcess]) -> None:
    runner = start_runner("web", env={"ENQUEUE_QUEUE": "unused", "FUNCTIONS_WORKER_PROCESS_COUNT": "2"})
    workers = set(_pids(runner, 2))
    assert all(_alive(pid) for pid in workers)
    runner.kill()
    wait_for(lambda: not any(_alive(pid) for pid in workers) or None)


def test_an_invalid_count_falls_back_to_one_with_a_warning(start_runner: Callable[..., RunnerProcess]) -> None:
    runner = start_runner("web", env={"ENQUEUE_QUEUE": "unused", "FUNCTIONS_WORKER_PROCESS_COUNT": "eleven"})
    _the_one_worker(runner, 2)
    assert "FUNCTIONS_WORKER_PROCESS_COUNT=eleven is not a whole number from 1 to 10; using 1" in _log(runner)
