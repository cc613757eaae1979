"""host.json `logging.logLevel` (and its app-setting overrides) decide what the runner writes, per
category, as the host decides what reaches the console and Application Insights."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from devstack.host.log_levels import CURRENT_FUNCTION, LogLevels, category_of
from devstack.host.process import RunnerProcess
from tests.devstack.host.helpers import http, wait_for

OVERRIDE = "AzureFunctionsJobHost__logging__logLevel__"


def _record(name: str, function: str | None = None) -> logging.LogRecord:
    record = logging.LogRecord(name, logging.INFO, __file__, 1, "x", (), None)
    if function is not None:
        record.function_name = function
    return record


def test_the_most_specific_category_prefix_wins() -> None:
    levels = LogLevels.from_config({"default": "Information", "Function": "Warning"}, {})
    assert levels.minimum("Function.send.User") == logging.WARNING
    assert levels.minimum("Host.General") == logging.INFO
    specific = LogLevels.from_config({"Function": "Warning", "Function.send.User": "Debug"}, {})
    assert specific.minimum("Function.send.User") == logging.DEBUG
    assert specific.minimum("Function.other.User") == logging.WARNING
    assert LogLevels.from_config({}, {}).minimum("anything") == logging.INFO


def test_app_settings_override_host_json() -> None:
    levels = LogLevels.from_config({"Function": "Warning"}, {f"{OVERRIDE}Function": "None"})
    assert levels.minimum("Function.x") > logging.CRITICAL
    with pytest.raises(ValueError, match="unknown level 'Loud'"):
        LogLevels.from_config({"Function": "Loud"}, {})


def test_categories_follow_the_host() -> None:
    assert category_of(_record("devstack.host.invocations", function="send")) == "Function.send"
    assert category_of(_record("devstack.host.runner")) == "Host.General"
    assert category_of(_record("shared.services.sending")) == "Host.General"  # outside any invocation
    token = CURRENT_FUNCTION.set("send")
    try:
        assert category_of(_record("shared.services.sending")) == "Function.send.User"
        assert category_of(_record("azure.core")) == "Function.send.User"  # SDK logs during the call
    finally:
        CURRENT_FUNCTION.reset(token)


def _log_after_calls(runner: RunnerProcess) -> str:
    assert http("GET", f"{runner.url}/api/logs").status == 200
    assert runner.log_path is not None
    path = runner.log_path
    return wait_for(lambda: text if "warning from the logs function" in (text := path.read_text()) else None)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_function_logs_below_the_configured_level_are_not_written(
    start_runner: Callable[..., RunnerProcess], workers: str
) -> None:
    env = {"ENQUEUE_QUEUE": "unused", "FUNCTIONS_WORKER_PROCESS_COUNT": workers, f"{OVERRIDE}Function": "Warning"}
    log = _log_after_calls(start_runner("web", env=env))
    assert "information from the logs function" not in log
    assert "Executed 'Functions.logs'" not in log  # category Function.logs, also below Warning
    assert "Host started" in log  # Host.General stays at the default


def test_a_more_specific_setting_lets_one_functions_logs_through(start_runner: Callable[..., RunnerProcess]) -> None:
    env = {
        "ENQUEUE_QUEUE": "unused",
        f"{OVERRIDE}Function": "Warning",
        f"{OVERRIDE}Function.logs.User": "Information",
    }
    log = _log_after_calls(start_runner("web", env=env))
    assert "information from the logs function" in log
    assert "Executed 'Functions.logs'" not in log
