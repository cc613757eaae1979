"""The host's side of its worker processes (`FUNCTIONS_WORKER_PROCESS_COUNT`, default 1) and round-robin
dispatch.

Why round-robin: the host's default dispatcher load balancer hands each invocation to the next
worker channel in turn. A worker process that exits is replaced, as the host restarts a dead
language worker; its invocations in flight fail, so their triggers retry as they would in Azure.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.host.bindings import RemoteError
from devstack.host.indexer import FunctionSpec
from devstack.host.worker import FunctionTimeoutError, Invocation, Invoked
from devstack.host.worker_ipc import frame, read_frame

log = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 60.0
# The folder that holds the `devstack` package: the worker process needs it on its path whatever app
# it runs, and whatever the working directory (the app root) is.
RUNNER_ROOT = Path(__file__).resolve().parents[2]

# Run by `python -c` so that the worker's sys.path is set before anything imports azure.functions:
# the "worker-bundled" packages go first, as the Python worker (<= 3.12) puts its own bundled
# libraries ahead of the app's unless PYTHON_ISOLATE_WORKER_DEPENDENCIES is set, in which case they
# go last. The runner's own folder goes last too, so that the app's modules and packages win.
_BOOTSTRAP = """\
import sys
runner_root, bundled, isolate = sys.argv[1:4]
del sys.argv[1:4]
if bundled:
    sys.path.insert(len(sys.path) if isolate == "1" else 0, bundled)
sys.path.append(runner_root)
from devstack.host.worker_process import main
main(sys.argv[1:])
"""


@dataclass(frozen=True)
class WorkerPlan:
    """How to start a worker process: the app to index, the logging level, and the packages the worker
    brings with it (`--worker-packages`), with whether they are isolated from the app's."""

    processes: int
    app_dir: Path
    script_file: str
    verbose: bool = False
    worker_packages: Path | None = None
    isolate_worker_packages: bool = False

    def argv(self, fd: int) -> list[str]:
        bundled = str(self.worker_packages) if self.worker_packages else ""
        isolate = "1" if self.isolate_worker_packages else "0"
        argv = [sys.executable, "-c", _BOOTSTRAP, str(RUNNER_ROOT), bundled, isolate, "--fd", str(fd)]
        argv += ["--app-dir", str(self.app_dir), "--script", self.script_file]
        return argv + (["--verbose"] if self.verbose else [])


class WorkerProcess:
    """One worker process and its socket: sends invocations, matches replies to callers."""

    def __init__(self, plan: WorkerPlan) -> None:
        self._plan = plan
        self._pending: dict[int, asyncio.Future[tuple[str, Any]]] = {}
        self._ids = itertools.count()
        self._writer: asyncio.StreamWriter | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._replies: asyncio.Task[None] | None = None
        self.exited = asyncio.Event()

    async def start(self) -> None:
        ours, theirs = socket.socketpair()
        argv = self._plan.argv(theirs.fileno())
        with theirs:
            self._process = subprocess.Popen(argv, pass_fds=[theirs.fileno()])  # noqa: S603 - our own module
        reader, self._writer = await asyncio.open_unix_connection(sock=ours)
        ready = await asyncio.wait_for(read_frame(reader), START_TIMEOUT_SECONDS)
        if ready is None or ready[0] != "ready":
            code = self._process.wait()
            raise RuntimeError(f"worker process exited during startup (exit code {code})")
        self._replies = asyncio.create_task(self._read_replies(reader))

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def invoke(self, call: Invocation) -> Invoked:
        call_id = next(self._ids)
        reply: asyncio.Future[tuple[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = reply
        self._send(("invoke", call_id, call))
        try:
            kind, payload = await reply
        except asyncio.CancelledError:  # shutdown or the caller gave up: the worker cancels it too
            self._send(("cancel", call_id))
            raise
        finally:
            self._pending.pop(call_id, None)
        if kind == "ok":
            return payload  # type: ignore[no-any-return]
        if kind == "timeout":
            raise FunctionTimeoutError(payload)
        if kind == "error":
            raise payload
        raise asyncio.CancelledError

    def _send(self, message: tuple[Any, ...]) -> None:
        if self._writer is None or self._writer.is_closing():
            raise RemoteError("WorkerProcessExited", __name__, "the worker process has exited", "")
        self._writer.write(frame(message))

    async def _read_replies(self, reader: asyncio.StreamReader) -> None:
        while (message := await read_frame(reader)) is not None:
            kind, call_id, payload = message
            future = self._pending.get(call_id)
            if future is not None and not future.done():
                future.set_result((kind, payload))
        self._lost()

    def _lost(self) -> None:
        gone = RemoteError("WorkerProcessExited", __name__, "the worker process exited during the invocation", "")
        for future in self._pending.values():
            if not future.done():
                future.set_exception(gone)
        if self._writer is not None:
            self._writer.close()
        self.exited.set()

    def stop(self) -> None:
        """Close the socket: the worker exits when it sees the end of the stream."""
        if self._writer is not None:
            self._writer.close()


class ProcessWorkers:
    """A `WorkerChannel` over several worker processes."""

    def __init__(self, plan: WorkerPlan) -> None:
        self._plan = plan
        self._workers: list[WorkerProcess] = []
        self._turn = itertools.count()
        self._stopping = False
        self._watchers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._workers = [WorkerProcess(self._plan) for _ in range(self._plan.processes)]
        await asyncio.gather(*(worker.start() for worker in self._workers))
        for worker in self._workers:
            self._watch(worker)
        log.info(
            "Started %d worker process(es) (FUNCTIONS_WORKER_PROCESS_COUNT): pids %s",
            len(self._workers),
            ", ".join(str(w.pid) for w in self._workers),
        )

    def _watch(self, worker: WorkerProcess) -> None:
        task = asyncio.create_task(self._replace_when_exited(worker))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _replace_when_exited(self, worker: WorkerProcess) -> None:
        await worker.exited.wait()
        if self._stopping:
            return
        log.error("Worker process %s exited; starting a new one", worker.pid)
        self._workers.remove(worker)  # the others take its turns meanwhile
        replacement = WorkerProcess(self._plan)
        await replacement.start()
        self._workers.append(replacement)
        self._watch(replacement)

    async def invoke(self, spec: FunctionSpec, call: Invocation) -> Invoked:
        """The function's spec stays here: the worker process indexed the app itself."""
        if not self._workers:
            raise RemoteError("WorkerProcessExited", __name__, "no worker process is running", "")
        worker = self._workers[next(self._turn) % len(self._workers)]
        return await worker.invoke(call)

    def stop(self) -> None:
        self._stopping = True
        for worker in self._workers:
            worker.stop()
