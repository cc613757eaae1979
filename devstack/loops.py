"""Event loops for the parts of the local stack that stand in for services running elsewhere.

Why: in Azure the Functions host is a .NET process and ACS is a remote service; neither takes CPU
from the Python worker. Locally the runner's host side (queue polling, deletes, the HTTP server)
and the ACS emulator share the machine with the app, so they run on uvloop when it is installed,
which spends less CPU per request than asyncio's default loop. The app's own code (the worker loop
and worker processes) stays on asyncio's default loop, as the Python worker runs it.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def stand_in_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory, or None (asyncio's default) where uvloop is not installed (Windows)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_stand_in(coroutine: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on the stand-in loop; no global policy is set, so other loops stay default."""
    with asyncio.Runner(loop_factory=stand_in_loop_factory()) as runner:
        return runner.run(coroutine)


def serve_until_stopped(coroutine: Coroutine[Any, Any, None], config_error: type[Exception]) -> int:
    """A stand-in's exit code: 0 once stopped, 2 for a setting it refuses (`config_error`), 1 when it
    cannot listen."""
    try:
        run_stand_in(coroutine)
    except config_error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0


async def until_terminated() -> None:
    """Wait for SIGTERM or SIGINT (how `stack stop` and Ctrl-C end a stand-in)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
