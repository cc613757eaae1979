"""The app's spans and log records join the host's request telemetry for the same invocation, and each
record reaches Application Insights by one path only (issue 15, finding 8). In memory, no network."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import function_app
from shared import telemetry
from shared.observability import emit

REPO = Path(__file__).resolve().parents[1]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
HOST_SPAN_ID = "00f067aa0ba902b7"
log = logging.getLogger("shared.services.sending")


class _Trace:
    trace_parent = f"00-{TRACE_ID}-{HOST_SPAN_ID}-01"
    trace_state = "az=1"
    attributes: dict[str, str] = {}


class _Context:
    """What the worker passes as `context`: only the attributes every 4.x worker has."""

    invocation_id = "inv-1"
    function_name = "send_message"
    trace_context = _Trace()


class _OldContext:
    """A context from a worker that exposes no trace context at all."""

    invocation_id = "inv-2"


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """Telemetry switched on with in-memory exporters in place of Application Insights (the same logging
    handler class the Azure Monitor distro attaches)."""
    spans, records = InMemorySpanExporter(), InMemoryLogRecordExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    logs = LoggerProvider()
    logs.add_log_record_processor(SimpleLogRecordProcessor(records))
    handler = LoggingHandler(logger_provider=logs)
    monkeypatch.setattr(telemetry, "_configured", True)
    monkeypatch.setattr(telemetry, "_tracer_provider", provider)
    logging.getLogger().addHandler(handler)
    yield SimpleNamespace(spans=spans, records=records)
    logging.getLogger().removeHandler(handler)
    provider.shutdown()
    logs.shutdown()


def _services_that(handle: Any) -> Any:
    async def services() -> Any:
        return SimpleNamespace(sending=SimpleNamespace(handle=handle))

    return services


async def test_a_send_invocation_is_a_child_of_the_hosts_request(
    exported: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The invocation's span has the host's trace id and the host's span as parent, and a record logged
    during it carries the same trace id (operation_Id) and the app's span id (operation_ParentId)."""

    async def handle(delivery: Any) -> None:
        emit(log, "message.sending", "sending", message_id="m-1")

    monkeypatch.setattr(function_app, "_services", _services_that(handle))
    await function_app.send_message(QueueMessage(id="q-1", body=b"{}"), _Context())

    [span] = exported.spans.get_finished_spans()
    assert span.name == "send_message"
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and format(span.parent.span_id, "016x") == HOST_SPAN_ID
    [record] = [
        r.log_record for r in exported.records.get_finished_logs() if r.log_record.body == "sending message_id=m-1"
    ]
    assert format(record.trace_id, "032x") == TRACE_ID and record.span_id == span.context.span_id
    assert record.attributes is not None and record.attributes["message_id"] == "m-1"


async def test_a_failed_invocation_is_marked_but_its_exception_is_left_to_the_host(
    exported: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host reports a failed invocation's exception; the app's span only says it failed."""

    async def handle(delivery: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(function_app, "_services", _services_that(handle))
    with pytest.raises(RuntimeError):
        await function_app.send_message(QueueMessage(id="q-2", body=b"{}"), _Context())
    [span] = exported.spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR and span.events == ()


@pytest.mark.parametrize("context", [_OldContext(), SimpleNamespace(trace_context=SimpleNamespace(trace_parent=""))])
async def test_a_context_without_a_trace_still_runs_the_invocation(
    exported: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, context: Any
) -> None:
    """An older worker's context (no trace_context) or the local runner's empty one: a root span, no error."""
    handled: list[Any] = []

    async def handle(delivery: Any) -> None:
        handled.append(delivery)

    monkeypatch.setattr(function_app, "_services", _services_that(handle))
    await function_app.send_message(QueueMessage(id="q-3", body=b"{}"), context)
    [span] = exported.spans.get_finished_spans()
    assert handled and span.parent is None


async def test_without_telemetry_nothing_is_traced(monkeypatch: pytest.MonkeyPatch) -> None:
    """No connection string: the invocation runs without any span (and imports no OpenTelemetry)."""
    monkeypatch.setattr(telemetry, "_configured", False)
    with telemetry.invocation_span("x", _Trace.trace_parent):
        from opentelemetry import trace

        assert not trace.get_current_span().get_span_context().is_valid


def test_the_host_forwards_none_of_the_apps_own_records() -> None:
    """Every function's user category is off in host.json: the app's records (with their custom
    dimensions) reach Application Insights through OpenTelemetry only, never a second time through
    the host. The host keeps its own categories: requests, and exceptions of failed invocations."""
    levels = json.loads((REPO / "host.json").read_text())["logging"]["logLevel"]
    functions = re.findall(r'@app\.function_name\(name="([^"]+)"\)', (REPO / "function_app.py").read_text())
    assert len(functions) == len(function_app.app._function_builders)
    assert {f"Function.{name}.User": "None" for name in functions}.items() <= levels.items()
    assert levels["Function"] == "Warning" and levels["Host.Results"] == "Information"
    assert {c for c in levels if c.startswith("Function.")} == {f"Function.{name}.User" for name in functions}


def test_every_handler_takes_the_invocation_context() -> None:
    """Each function asks the worker for `context`, the only source of the host's trace context."""
    for builder in function_app.app._function_builders:
        user_function = builder._function._func
        assert "context" in user_function.__annotations__, user_function.__name__
        assert user_function.__annotations__["context"] in ("func.Context", func.Context)
