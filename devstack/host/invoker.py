"""One invocation, end to end: decode the trigger, call the function, write its outputs, log it.

Why here and not in each trigger: every trigger needs the same worker semantics (converter-based
decode with trigger metadata, `context`, fresh `Out` slots, the `$return` rule, outputs only after
success) and the same host semantics (functionTimeout, the retry policy loop, one log line per
invocation). The trigger code only decides what a result means (delete, 202, next schedule ...).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Protocol

from azure.functions import meta

from devstack.host import bindings
from devstack.host.indexer import FunctionSpec
from devstack.host.outputs import OutputTarget, OutputWriter
from devstack.host.retry import RetryPolicy
from devstack.host.worker import FunctionTimeoutError, Invocation, Invoked, user_frames

log = logging.getLogger("devstack.host.invocations")


class WorkerChannel(Protocol):
    """Where invocations run: the worker processes (FUNCTIONS_WORKER_PROCESS_COUNT, default 1)."""

    async def start(self) -> None: ...

    async def invoke(self, spec: FunctionSpec, call: Invocation) -> Invoked: ...

    def stop(self) -> None: ...


class Outcome(StrEnum):
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    TIMED_OUT = "TimedOut"


@dataclass(frozen=True)
class InvocationResult:
    outcome: Outcome
    invocation_id: str
    error: BaseException | None = None
    return_value: meta.Datum | None = None

    @property
    def succeeded(self) -> bool:
        return self.outcome is Outcome.SUCCEEDED


@dataclass(frozen=True)
class LoadedFunction:
    """A function ready to run: its spec, resolved output targets and retry policy."""

    spec: FunctionSpec
    outputs: dict[str, OutputTarget]
    retry: RetryPolicy | None

    @property
    def name(self) -> str:
        return self.spec.name


class Executor:
    def __init__(self, worker: WorkerChannel, writer: OutputWriter, function_timeout: timedelta | None) -> None:
        self._worker = worker
        self._writer = writer
        self._timeout = function_timeout.total_seconds() if function_timeout is not None else None

    async def execute(
        self, function: LoadedFunction, trigger: meta.Datum, metadata: dict[str, meta.Datum] | None
    ) -> InvocationResult:
        """Run with the retry policy (an in-memory loop, as `FunctionExecutorExtensions` does)."""
        policy = function.retry
        delays = policy.delays() if policy is not None else None
        retries, error = 0, None
        while True:
            retry = bindings.RetryState.after(retries, policy.max_retry_count if policy else 0, error)
            result = await self._attempt(function, trigger, metadata, retry)
            if result.outcome is not Outcome.FAILED or policy is None or delays is None or not policy.allows(retries):
                return result
            retries, error = retries + 1, result.error
            await asyncio.sleep(delays.next().total_seconds())

    async def _attempt(
        self,
        function: LoadedFunction,
        trigger: meta.Datum,
        metadata: dict[str, meta.Datum] | None,
        retry: bindings.RetryState,
    ) -> InvocationResult:
        invocation_id = str(uuid.uuid4())
        started = time.perf_counter()
        try:
            value = await self._run(function, trigger, metadata, retry, invocation_id)
        except asyncio.CancelledError:
            _log_line(function.name, invocation_id, started, "Cancelled", None)
            raise
        except FunctionTimeoutError as exc:
            result = InvocationResult(Outcome.TIMED_OUT, invocation_id, exc)
        except Exception as exc:
            result = InvocationResult(Outcome.FAILED, invocation_id, exc)
        else:
            result = InvocationResult(Outcome.SUCCEEDED, invocation_id, return_value=value)
        _log_line(function.name, invocation_id, started, result.outcome.value, result.error)
        return result

    async def _run(
        self,
        function: LoadedFunction,
        trigger: meta.Datum,
        metadata: dict[str, meta.Datum] | None,
        retry: bindings.RetryState,
        invocation_id: str,
    ) -> meta.Datum | None:
        call = Invocation(function.name, trigger, metadata, retry, invocation_id, self._timeout)
        invoked = await self._worker.invoke(function.spec, call)
        for name, datum in invoked.writes:
            await self._writer.write(function.outputs[name], datum)
        return invoked.returned


def _log_line(name: str, invocation_id: str, started: float, outcome: str, error: BaseException | None) -> None:
    duration_ms = (time.perf_counter() - started) * 1000
    if error is None:
        log.info(
            "Executed 'Functions.%s' (%s, Id=%s, Duration=%.0fms)",
            name,
            outcome,
            invocation_id,
            duration_ms,
            extra={"function_name": name},
        )
        return
    remote = error if isinstance(error, bindings.RemoteError) else None  # raised in a worker process
    log.error(
        "Executed 'Functions.%s' (%s, Id=%s, Duration=%.0fms, Exception=%s: %s)%s",
        name,
        outcome,
        invocation_id,
        duration_ms,
        remote.type_name if remote else type(error).__name__,
        error,
        f"\n{remote.stack_trace.rstrip()}" if remote else "",
        exc_info=None if remote or outcome == Outcome.TIMED_OUT else user_frames(error),
        extra={"function_name": name},
    )
