"""Where user code runs, inside a worker process: `async def` on the process's one long-lived event
loop, `def` in a thread pool.

Why one long-lived loop: module-level async SDK clients are reused across invocations, as the Python
worker allows (never `asyncio.run()` per invocation). The host's polling, lock renewal and HTTP server
live in another process (worker_pool.py), so a function that blocks this loop stalls other async
invocations but never the host, as in Azure.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from azure.functions import meta

from devstack.host import bindings
from devstack.host.bindings import INVOCATION_LOCAL
from devstack.host.indexer import FunctionSpec
from devstack.host.log_levels import CURRENT_FUNCTION

_INTERNAL_PREFIXES = (
    str(Path(__file__).parent),
    str(Path(concurrent.futures.__file__).parent),
    str(Path(asyncio.__file__).parent),
)


class FunctionTimeoutError(TimeoutError):
    """The invocation ran past host.json `functionTimeout`."""


@dataclass(frozen=True)
class Invocation:
    """One call as the host hands it to a worker: plain values, so it crosses to a worker process as is."""

    function: str
    trigger: meta.Datum
    metadata: dict[str, meta.Datum] | None
    retry: bindings.RetryState
    invocation_id: str
    timeout: float | None


@dataclass(frozen=True)
class Invoked:
    """What a successful invocation hands back to the host: the `$return` value and the output
    bindings to write (by binding name), already encoded as the worker encodes them."""

    returned: meta.Datum | None
    writes: tuple[tuple[str, meta.Datum], ...]


class Worker:
    """Runs user functions: async ones on the caller's loop (the worker process's, which does nothing
    else but read invocations), sync ones in the thread pool."""

    def __init__(self, thread_count: int | None = None) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=thread_count, thread_name_prefix="python-worker")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Worker:
        """PYTHON_THREADPOOL_THREAD_COUNT, unset = Python's default (min(32, cpu + 4))."""
        value = environ.get("PYTHON_THREADPOOL_THREAD_COUNT", "").strip()
        return cls(int(value) if value else None)

    async def call(
        self,
        function: Callable[..., Any],
        is_async: bool,
        kwargs: dict[str, Any],
        invocation_id: str,
        timeout: float | None,
    ) -> Any:
        """Run one invocation; on timeout the async task is cancelled (a sync thread cannot be)."""
        wrapped: asyncio.Future[Any]
        if is_async:
            wrapped = asyncio.ensure_future(function(**kwargs))
        else:
            context = contextvars.copy_context()  # CURRENT_FUNCTION for log categories, as async calls get it
            wrapped = asyncio.wrap_future(
                self._pool.submit(context.run, self._run_sync, function, kwargs, invocation_id)
            )
        if timeout is None:
            return await wrapped
        scope = asyncio.timeout(timeout)
        try:
            async with scope:
                return await wrapped
        except TimeoutError as exc:
            if scope.expired():  # not a TimeoutError raised by the function itself
                raise FunctionTimeoutError(f"Timeout value of {timeout:g}s was exceeded by function.") from exc
            raise

    @staticmethod
    def _run_sync(function: Callable[..., Any], kwargs: dict[str, Any], invocation_id: str) -> Any:
        INVOCATION_LOCAL.invocation_id = invocation_id
        try:
            return function(**kwargs)
        finally:
            INVOCATION_LOCAL.invocation_id = None

    def stop(self) -> None:
        """Stop accepting work; running threads are abandoned (the process is about to exit)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


async def run_function(worker: Worker, spec: FunctionSpec, call: Invocation) -> Invoked:
    """The worker's side of one invocation: decode with the converters, fresh `Out` slots and
    `context`, call, apply the `$return` rule, encode what the function set."""
    kwargs: dict[str, Any] = {p.name: bindings.decode(p.bind_type, call.trigger, call.metadata) for p in spec.inputs}
    slots = {p.name: bindings.Out() for p in spec.outputs}
    if spec.needs_context:
        retry = bindings.RetryContext(call.retry)
        kwargs["context"] = bindings.Context(spec.name, spec.directory, call.invocation_id, retry)
    running = CURRENT_FUNCTION.set(spec.name)
    try:
        result = await worker.call(spec.func, spec.is_async, {**kwargs, **slots}, call.invocation_id, call.timeout)
    finally:
        CURRENT_FUNCTION.reset(running)
    if result is not None and spec.return_binding is None:
        raise RuntimeError(f"function {spec.name!r} without a $return binding returned a non-None value")
    writes = tuple(
        (p.name, bindings.encode(p.bind_type, slots[p.name].get(), p.pytype))
        for p in spec.outputs
        if slots[p.name].get() is not None
    )
    returned = bindings.encode(spec.return_binding.type, result, spec.return_pytype) if spec.return_binding else None
    return Invoked(returned, writes)


def user_frames(error: BaseException) -> tuple[type[BaseException], BaseException, TracebackType | None]:
    """The exception with the runner's own frames dropped from the front of its traceback."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_INTERNAL_PREFIXES):
        tb = tb.tb_next
    return type(error), error, tb or error.__traceback__
