"""shared.telemetry: off without a connection string, Azure Monitor OpenTelemetry with one, no network."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared import telemetry
from shared.errors import ConfigurationError
from shared.observability import count, emit, log_context

REPO = Path(__file__).resolve().parents[1]
FAKE_CONNECTION_STRING = (
    "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
    "IngestionEndpoint=https://ingestion.invalid/;LiveEndpoint=https://live.invalid/"
)


def _run_isolated(code: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter (clean sys.modules) with every socket call refused."""
    guard = textwrap.dedent(
        """
        import socket

        def _refuse(*args, **kwargs):
            raise AssertionError("network call attempted")

        socket.socket.connect = _refuse
        socket.create_connection = _refuse
        socket.getaddrinfo = _refuse
        """
    )
    return subprocess.run(  # noqa: S603 - this interpreter, running code written in this file
        [sys.executable, "-c", guard + textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.fixture
def fresh_telemetry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Forget any earlier configuration and restore the loggers telemetry quiets."""
    monkeypatch.setattr(telemetry, "_configured", False)
    levels = {name: logging.getLogger(name).level for name in telemetry._QUIET_LOGGERS}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def fake_distro(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace azure.monitor.opentelemetry with a module that records its configure calls."""
    calls: list[dict[str, Any]] = []
    module = types.ModuleType("azure.monitor.opentelemetry")

    def configure_azure_monitor(**kwargs: Any) -> None:
        calls.append(kwargs)

    module.configure_azure_monitor = configure_azure_monitor  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "azure.monitor.opentelemetry", module)
    return calls


@pytest.mark.parametrize("value", [None, "", "   "])
def test_unset_connection_string_configures_nothing(value: str | None, fresh_telemetry: None) -> None:
    """No connection string (or a blank one) returns False and leaves the process untouched."""
    assert telemetry.configure_telemetry(value) is False
    assert telemetry._configured is False


def test_importing_telemetry_does_not_import_the_distro() -> None:
    """Importing shared.telemetry keeps OpenTelemetry out of the process (cold start is measured)."""
    result = _run_isolated(
        """
        import sys
        import shared.telemetry
        heavy = sorted(m for m in sys.modules if m.startswith(("azure.monitor", "opentelemetry")))
        assert not heavy, heavy
        """
    )
    assert result.returncode == 0, result.stderr


def test_unset_branch_imports_nothing_adds_no_handler_and_makes_no_network_call() -> None:
    """Without a connection string nothing is imported, no handler is added and no socket is opened."""
    result = _run_isolated(
        """
        import logging, sys
        from shared.telemetry import configure_telemetry
        before = list(logging.getLogger().handlers)
        assert configure_telemetry(None) is False
        assert configure_telemetry("") is False
        assert logging.getLogger().handlers == before
        heavy = sorted(m for m in sys.modules if m.startswith(("azure.monitor", "opentelemetry")))
        assert not heavy, heavy
        """
    )
    assert result.returncode == 0, result.stderr


def test_connection_string_configures_azure_monitor(fresh_telemetry: None, fake_distro: list[dict[str, Any]]) -> None:
    """A connection string configures the distro once, with live metrics and unused instrumentations off."""
    assert telemetry.configure_telemetry(f"  {FAKE_CONNECTION_STRING}  ") is True
    assert telemetry.configure_telemetry(FAKE_CONNECTION_STRING) is True

    assert len(fake_distro) == 1
    (kwargs,) = fake_distro
    assert kwargs["connection_string"] == FAKE_CONNECTION_STRING
    assert kwargs["enable_live_metrics"] is False
    assert kwargs["sampling_ratio"] == 1.0 and kwargs["enable_trace_based_sampling_for_logs"] is False
    disabled = {name for name, option in kwargs["instrumentation_options"].items() if not option["enabled"]}
    assert {"requests", "urllib3", "flask", "django"} <= disabled
    assert "azure_sdk" not in disabled


def test_connection_string_quiets_the_azure_loggers(fresh_telemetry: None, fake_distro: list[dict[str, Any]]) -> None:
    """Exporter HTTP logging is raised to WARNING so exports are not themselves exported."""
    logging.getLogger("azure").setLevel(logging.INFO)
    telemetry.configure_telemetry(FAKE_CONNECTION_STRING)
    assert logging.getLogger("azure").level == logging.WARNING


def test_invalid_connection_string_is_a_configuration_error(
    fresh_telemetry: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The distro's ValueError for a malformed connection string becomes a ConfigurationError."""
    module = types.ModuleType("azure.monitor.opentelemetry")

    def configure_azure_monitor(**kwargs: Any) -> None:
        raise ValueError("Invalid connection string")

    module.configure_azure_monitor = configure_azure_monitor  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "azure.monitor.opentelemetry", module)

    with pytest.raises(ConfigurationError, match="APPLICATIONINSIGHTS_CONNECTION_STRING"):
        telemetry.configure_telemetry("InstrumentationKey=not-a-guid")
    assert telemetry._configured is False


def test_logged_dimensions_become_custom_dimensions() -> None:
    """The distro's logging handler turns emit()/count() dimensions into Application Insights customDimensions."""
    from azure.monitor.opentelemetry.exporter.export.logs._exporter import _convert_log_to_envelope
    from opentelemetry.instrumentation.logging.handler import LoggingHandler
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = logging.getLogger("tests.telemetry.dimensions")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = LoggingHandler(logger_provider=provider)
    logger.addHandler(handler)
    try:
        with log_context(message_id="m-1"):
            emit(logger, "message.sent", "sent", channel="sms")
        count(logger, "sent", channel="sms")
    finally:
        logger.removeHandler(handler)
        provider.shutdown()

    envelopes = [_convert_log_to_envelope(record) for record in exporter.get_finished_logs()]
    dimensions = [envelope.data.base_data.properties for envelope in envelopes]  # type: ignore[union-attr]
    assert dimensions[0]["event"] == "message.sent"
    assert dimensions[0]["message_id"] == "m-1"
    assert dimensions[0]["channel"] == "sms"
    assert dimensions[1]["event"] == "metric"
    assert dimensions[1]["metric_name"] == "sent"
    assert float(dimensions[1]["value"]) == 1
    assert envelopes[0].data.base_data.message == "sent message_id=m-1 channel=sms"  # type: ignore[union-attr]


def test_a_trace_sampling_ratio_samples_spans_and_never_logs(
    fresh_telemetry: None, fake_distro: list[dict[str, Any]]
) -> None:
    """TRACE_SAMPLING_RATIO reaches the distro's Application Insights sampler; logs stay unsampled."""
    telemetry.configure_telemetry(FAKE_CONNECTION_STRING, 0.1)
    (kwargs,) = fake_distro
    assert kwargs["sampling_ratio"] == 0.1 and kwargs["enable_trace_based_sampling_for_logs"] is False
