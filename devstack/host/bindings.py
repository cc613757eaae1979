"""The Python worker's binding objects: `Out`, `Context`, retry/trace contexts, the generic binding.

Why: user code receives these objects and may inspect them (`context.retry_context.retry_count`,
`context.thread_local_storage.invocation_id`); converters come from the library's own registry
(`azure.functions.meta.get_binding_registry()`), and bindings without a converter (`table`, or a
`str`/`bytes` annotation) go through the worker's `GenericBinding`, reproduced here.
"""

from __future__ import annotations

import threading
import traceback
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


class RpcException(azf_abc.RpcException):
    """The previous attempt's failure, as the worker exposes it on the retry context."""

    def __init__(self, error: BaseException | None) -> None:
        self._error = error

    @property
    def source(self) -> str:
        return type(self._error).__module__ if self._error else ""

    @property
    def stack_trace(self) -> str:
        return "".join(traceback.format_exception(self._error)) if self._error else ""

    @property
    def message(self) -> str:
        return f"{type(self._error).__name__}: {self._error}" if self._error else ""


class RetryContext(azf_abc.RetryContext):
    def __init__(self, retry_count: int, max_retry_count: int, error: BaseException | None) -> None:
        self._retry_count = retry_count
        self._max_retry_count = max_retry_count
        self._exception = RpcException(error)

    @property
    def retry_count(self) -> int:
        return self._retry_count

    @property
    def max_retry_count(self) -> int:
        return self._max_retry_count

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
