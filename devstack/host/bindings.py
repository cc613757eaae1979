"""The Python worker's binding objects: `Out`, `Context`, retry/trace contexts, the generic binding.

Why: user code receives these objects and may inspect them (`context.retry_context.retry_count`,
`context.thread_local_storage.invocation_id`); converters come from the library's own registry
(`azure.functions.meta.get_binding_registry()`), and bindings without a converter (`table`, or a
`str`/`bytes` annotation) go through the worker's `GenericBinding`, reproduced here.
"""

from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from azure.functions import _abc as azf_abc
from azure.functions import meta

# The worker shares one threading.local across invocations and sets `invocation_id` on it per thread.
INVOCATION_LOCAL = threading.local()
_REGISTRY = meta.get_binding_registry()  # type: ignore[no-untyped-call]


class Out(func.Out[Any]):
    """A fresh output slot per invocation; `None` means "write nothing"."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


@dataclass(frozen=True)
class RetryState:
    """What the retry context shows, as plain values: it crosses to worker processes unchanged."""

    retry_count: int
    max_retry_count: int
    source: str = ""
    stack_trace: str = ""
    message: str = ""

    @classmethod
    def after(cls, retry_count: int, max_retry_count: int, error: BaseException | None) -> RetryState:
        """The state for an attempt that follows a failure with `error` (None on the first attempt)."""
        if error is None:
            return cls(retry_count, max_retry_count)
        if isinstance(error, RemoteError):
            return cls(retry_count, max_retry_count, error.source, error.stack_trace, error.message)
        stack = "".join(traceback.format_exception(error))
        return cls(retry_count, max_retry_count, type(error).__module__, stack, f"{type(error).__name__}: {error}")


class RemoteError(Exception):
    """A function's exception raised in a worker process, as the host receives it: its type name,
    module, text and traceback (the exception object itself may not survive pickling)."""

    def __init__(self, type_name: str, source: str, text: str, stack_trace: str) -> None:
        super().__init__(type_name, source, text, stack_trace)
        self.type_name = type_name
        self.source = source
        self.text = text
        self.stack_trace = stack_trace

    @classmethod
    def capture(cls, error: BaseException, stack_trace: str) -> RemoteError:
        return cls(type(error).__name__, type(error).__module__, str(error), stack_trace)

    @property
    def message(self) -> str:
        return f"{self.type_name}: {self.text}"

    def __str__(self) -> str:
        return self.text


class RpcException(azf_abc.RpcException):
    """The previous attempt's failure, as the worker exposes it on the retry context."""

    def __init__(self, state: RetryState) -> None:
        self._state = state

    @property
    def source(self) -> str:
        return self._state.source

    @property
    def stack_trace(self) -> str:
        return self._state.stack_trace

    @property
    def message(self) -> str:
        return self._state.message


class RetryContext(azf_abc.RetryContext):
    def __init__(self, state: RetryState) -> None:
        self._state = state
        self._exception = RpcException(state)

    @property
    def retry_count(self) -> int:
        return self._state.retry_count

    @property
    def max_retry_count(self) -> int:
        return self._state.max_retry_count

    @property
    def exception(self) -> RpcException:
        return self._exception


class TraceContext(azf_abc.TraceContext):
    """No distributed tracing locally: empty values, like a host without Application Insights."""

    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return ""

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class Context(func.Context):
    def __init__(self, function_name: str, directory: str, invocation_id: str, retry: RetryContext) -> None:
        self._function_name = function_name
        self._directory = directory
        self._invocation_id = invocation_id
        self._retry = retry
        self._trace = TraceContext()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return INVOCATION_LOCAL

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._directory

    @property
    def trace_context(self) -> TraceContext:
        return self._trace

    @property
    def retry_context(self) -> RetryContext:
        return self._retry


class GenericBinding:
    """`azure_functions_worker/bindings/generic.py`: raw str/bytes in and out."""

    @staticmethod
    def has_trigger_support() -> bool:
        return False

    @staticmethod
    def check_input_type_annotation(pytype: type) -> bool:
        return isinstance(pytype, type) and issubclass(pytype, (str, bytes))

    @staticmethod
    def check_output_type_annotation(pytype: type) -> bool:
        return isinstance(pytype, type) and issubclass(pytype, (str, bytes, bytearray))

    @staticmethod
    def decode(data: meta.Datum, *, trigger_metadata: Any) -> Any:
        if data.type in ("string", "bytes", "json", None):
            return data.value
        raise ValueError(f'unexpected type of data received for the "generic" binding {data.type!r}')

    @staticmethod
    def encode(obj: Any, *, expected_type: Any) -> meta.Datum:
        if isinstance(obj, str):
            return meta.Datum(type="string", value=obj)
        if isinstance(obj, bytes | bytearray):
            return meta.Datum(type="bytes", value=bytes(obj))
        raise NotImplementedError


def converter(bind_type: str) -> Any:
    """The library converter for a binding type, or the generic binding (worker `get_binding`)."""
    found = _REGISTRY.get(bind_type) if bind_type != "generic" else None
    return found if found is not None else GenericBinding


def decode(bind_type: str, datum: meta.Datum, metadata: dict[str, meta.Datum] | None) -> Any:
    """Worker `from_incoming_proto`: trigger bindings get metadata, others an empty dict."""
    binding = converter(bind_type)
    if metadata is None and not binding.has_trigger_support():
        metadata = {}
    try:
        return binding.decode(datum, trigger_metadata=metadata)
    except NotImplementedError as exc:
        raise TypeError(
            f"unable to decode incoming TypedData: unsupported combination of TypedData field "
            f"{datum.type!r} and expected binding type {binding}"
        ) from exc


def encode(bind_type: str, value: Any, pytype: Any) -> meta.Datum:
    """Worker `get_datum`: a value the converter cannot encode fails the invocation."""
    binding = converter(bind_type)
    try:
        datum: meta.Datum = binding.encode(value, expected_type=pytype)
    except NotImplementedError as exc:
        raise TypeError(
            f"unable to encode outgoing TypedData: unsupported type {type(value)!r} for binding {binding}"
        ) from exc
    return datum
