"""Session fixtures shared by the whole suite: one real Azurite per test session.

Integration tests start the emulators themselves, so the suite never skips them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.azurite import Azurite
from tests.pii import offenders


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """A real in-memory Azurite on free ports, for the whole session."""
    log = Path(tmp_path_factory.mktemp("azurite")) / "azurite.log"
    instance = Azurite(log_path=log).start()
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def storage_connection_string(azurite: Azurite) -> str:
    return azurite.connection_string


class _Collector(logging.Handler):
    """Keeps every log record of the session, message and custom dimensions, for the PII scan."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        self.lines.append(f"{record.name} {message} {extras}")


_STANDARD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
LOG_COLLECTOR = _Collector()
EXTRA_LOG_FILES: list[Path] = []  # log files of subprocesses (the runner), scanned too


# Set when this process runs a test that drives the pipeline, whose logs the PII scan must then see.
_RAN_THE_PIPELINE: list[str] = []
PIPELINE_TESTS = ("tests/integration/", "tests/e2e/")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if not _RAN_THE_PIPELINE and item.nodeid.startswith(PIPELINE_TESTS):
        _RAN_THE_PIPELINE.append(item.nodeid)


@pytest.fixture(scope="session", autouse=True)
def collect_logs() -> Iterator[_Collector]:
    """Capture every log record of the session (INFO and up from our code, WARNING from Azure SDKs);
    when the session ends, scan them and the runners' log files for PII (tests/pii.py). A finding fails
    the run as an error at the teardown of the process's last test."""
    root = logging.getLogger()
    root.addHandler(LOG_COLLECTOR)
    previous = root.level
    root.setLevel(logging.INFO)
    logging.getLogger("shared").setLevel(logging.DEBUG)
    yield LOG_COLLECTOR
    root.removeHandler(LOG_COLLECTOR)
    root.setLevel(previous)
    lines = _captured_lines()
    if _RAN_THE_PIPELINE:  # the scan means something only if the pipeline logged
        assert any("message_id=" in line for line in lines), f"no pipeline log line after {_RAN_THE_PIPELINE[0]}"
    found = offenders(lines)
    assert found == [], "raw addresses or message text in logs:\n" + "\n".join(found[:20])


def _captured_lines() -> list[str]:
    lines = list(LOG_COLLECTOR.lines)
    for path in EXTRA_LOG_FILES:
        if path.exists():
            lines += path.read_text(errors="replace").splitlines()
    return lines
