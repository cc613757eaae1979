"""One Python worker process: `python -m devstack.host.worker_process`.

Why: in Azure the host and the Python worker are separate processes, always, and the host may start
several workers (`FUNCTIONS_WORKER_PROCESS_COUNT`), spreading invocations over them, so that functions
use more than one core despite the GIL. This process indexes the app itself, as a worker does, then
runs each invocation it is sent with `Worker` (sync functions in the thread pool; async ones on this
process's loop, which only reads invocations). The app's code never shares a process, a GIL or a loop
with the host's polling and HTTP server, so what the app costs is measured apart from the stand-in.

Lifecycle: SIGINT/SIGTERM are ignored (a Ctrl-C reaches the whole process group, and the host
decides when work stops); the process exits as soon as its socket to the host closes, which also
happens when the host is killed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import azure.functions as func

from devstack.host.bindings import RemoteError
from devstack.host.config import host_environment, load_host_config
from devstack.host.indexer import FunctionSpec, load_app
from devstack.host.log_levels import apply_log_levels, configure_logging
from devstack.host.worker import FunctionTimeoutError, Invocation, Worker, run_function, user_frames
from devstack.host.worker_ipc import frame, read_frame

log = logging.getLogger("devstack.host.worker")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack.host.worker_process")
    parser.add_argument("--fd", type=int, required=True, help="inherited socket to the host")
    parser.add_argument("--app-dir", type=Path, required=True)
    parser.add_argument("--script", default="function_app.py")
    parser.add_argument("--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    configure_logging(args.verbose)
    apply_log_levels(load_host_config(args.app_dir, host_environment()).log_levels)
    sock = socket.socket(fileno=args.fd)
    specs = {spec.name: spec for spec in load_app(args.app_dir, args.script)}
    # As the Python worker logs its version at start: which azure-functions the app really got.
    log.info("Worker process %d uses azure-functions %s from %s", os.getpid(), func.__version__, func.__file__)
    asyncio.run(WorkerServer(specs).serve(sock))
    os._exit(0)  # never join a sync function still running on a pool thread


class WorkerServer:
    def __init__(self, specs: dict[str, FunctionSpec]) -> None:
        self._specs = specs
        self._worker = Worker.from_environ()
        self._running: dict[int, asyncio.Task[None]] = {}
        self._writer: asyncio.StreamWriter | None = None

    async def serve(self, sock: socket.socket) -> None:
        reader, self._writer = await asyncio.open_unix_connection(sock=sock)
        self._send(("ready", os.getpid(), sorted(self._specs)))
        while (message := await read_frame(reader)) is not None:
            kind, call_id, *rest = message
            if kind == "invoke":
                self._running[call_id] = asyncio.create_task(self._invoke(call_id, rest[0]))
            elif kind == "cancel" and call_id in self._running:
                self._running[call_id].cancel()
        # The host closed the socket or died: nothing is left to report to.
        self._worker.stop()

    async def _invoke(self, call_id: int, call: Invocation) -> None:
        try:
            reply = await self._outcome(call_id, call)
        finally:
            self._running.pop(call_id, None)
        try:
            self._send(reply)
        except Exception as exc:  # an output value pickle cannot carry
            self._send(("error", call_id, _remote(exc)))

    async def _outcome(self, call_id: int, call: Invocation) -> tuple[str, int, Any]:
        """The reply for one invocation: ok with what to write, timeout, error, or cancelled."""
        try:
            invoked = await run_function(self._worker, self._specs[call.function], call)
        except asyncio.CancelledError:
            return ("cancelled", call_id, None)
        except FunctionTimeoutError as exc:
            return ("timeout", call_id, str(exc))
        except Exception as exc:
            return ("error", call_id, _remote(exc))
        return ("ok", call_id, invoked)

    def _send(self, message: tuple[Any, ...]) -> None:
        assert self._writer is not None
        data = frame(message)  # pickled before writing: a failure leaves the stream intact
        if not self._writer.is_closing():
            self._writer.write(data)


def _remote(error: BaseException) -> RemoteError:
    return RemoteError.capture(error, "".join(traceback.format_exception(*user_frames(error))))


if __name__ == "__main__":
    main()
