"""Telemetry to Application Insights through OpenTelemetry, switched on by a connection string.

Why: the structured records of `shared.observability` carry their dimensions as logging `extra`
fields, and the Functions host does not forward those from the Python worker. The Azure Monitor
OpenTelemetry distro attaches a logging handler that exports every extra field of a record as a
custom dimension, so `customDimensions.event`, `customDimensions.message_id` and the rest are what
the workbook and the alerts query (infra/workbook, infra/alerts).

The distro is imported only when a connection string is set: it is a heavy import and cold start is
measured, and without a connection string (the local stack, tests) nothing is configured and nothing
is sent anywhere.

In Azure, ingestion uses Microsoft Entra ID: the exporter reads APPLICATIONINSIGHTS_AUTHENTICATION_STRING
(`Authorization=AAD`, set by infra/modules/appsettings.bicep) and authenticates with the app's managed
identity, because the Application Insights component accepts no key-based ingestion.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shared.errors import ConfigurationError

# Loggers that would otherwise log every export request at INFO and feed it back into the exporter.
_QUIET_LOGGERS = ("azure", "azure.monitor.opentelemetry", "opentelemetry")

# Instrumentations the distro enables by default that this app has no use for. The Azure SDK
# instrumentation stays on: it records the calls to ACS and Storage as dependencies; the HTTP-library
# ones would record the same calls a second time.
_DISABLED_INSTRUMENTATIONS = ("django", "fastapi", "flask", "psycopg2", "requests", "urllib", "urllib3")

_lock = threading.Lock()
_configured = False
_tracer_provider: Any = None  # None: the global one that configure_azure_monitor installs (tests set their own)


def configure_telemetry(connection_string: str | None, trace_sampling_ratio: float = 1.0) -> bool:
    """Export log records, with their custom dimensions, to Application Insights; True if enabled.

    `trace_sampling_ratio` samples spans (the invocation span and the Azure SDK calls under it, recorded as
    dependencies: about ten per message) with Application Insights' own sampler, which keeps a trace
    whole and marks each kept item with the count it stands for, so the portal's totals stay right. Log
    records are never sampled: the `metric` records are what the workbook and the alerts count, and
    trace-based log sampling (on by default once sampling is, per
    https://learn.microsoft.com/azure/azure-monitor/app/opentelemetry-sampling) would drop them with
    their trace, so it is turned off explicitly.

    Without a connection string this does nothing at all: no import, no handler, no network call.
    Once configured, further calls return True without configuring again (one pipeline per process).
    """
    if connection_string is None or not connection_string.strip():
        return False
    global _configured
    with _lock:
        if not _configured:
            _configure_azure_monitor(connection_string.strip(), trace_sampling_ratio)
            _configured = True
    return True


def _configure_azure_monitor(connection_string: str, trace_sampling_ratio: float) -> None:
    # Imported here, not at module level: importing shared.telemetry must stay cheap (cold start).
    from azure.monitor.opentelemetry import configure_azure_monitor

    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        configure_azure_monitor(
            connection_string=connection_string,
            enable_live_metrics=False,
            sampling_ratio=trace_sampling_ratio,
            enable_trace_based_sampling_for_logs=False,
            instrumentation_options={name: {"enabled": False} for name in _DISABLED_INSTRUMENTATIONS},
        )
    except ValueError as exc:
        raise ConfigurationError(f"APPLICATIONINSIGHTS_CONNECTION_STRING is invalid: {exc}") from exc


@contextmanager
def invocation_span(name: str, trace_parent: str | None, trace_state: str | None = None) -> Iterator[None]:
    """Run one invocation's work in a span that is a child of the host's request for that invocation.

    The host gives each invocation a W3C trace context (the worker's `Context.trace_context`); the
    request telemetry the host sends to Application Insights carries its trace id as `operation_Id`.
    Started under it, this span, the Azure SDK dependency spans beneath it and every log record emitted
    meanwhile (the distro's logging handler stamps the current span) share that `operation_Id`, so one
    query shows an invocation whole. The worker does the same attach only when the app opts into the
    worker's own OpenTelemetry (PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY; azure_functions_worker/otel.py,
    `configure_opentelemetry`); this app configures the distro itself, so it attaches here.

    Exceptions are not recorded on the span: the host already reports a failed invocation as an
    exception, and a second copy would count every failure twice. Without telemetry configured this
    does nothing and imports nothing.
    """
    if not _configured:
        yield
        return
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier = {"traceparent": trace_parent} if trace_parent else {}
    if trace_parent and trace_state:
        carrier["tracestate"] = trace_state
    parent = TraceContextTextMapPropagator().extract(carrier)
    tracer = trace.get_tracer("contact-messages", tracer_provider=_tracer_provider)
    with tracer.start_as_current_span(
        name, context=parent, kind=trace.SpanKind.INTERNAL, record_exception=False, set_status_on_exception=True
    ):
        yield
