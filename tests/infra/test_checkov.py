"""checkov over infra/: zero failed checks, every skip justified where it is made and actually used.

checkov has a large dependency tree, so it lives in its own virtual environment, .venv-infra, built
by `make infra-venv` from requirements-infra.txt (`make unit` builds it first). A missing checkov is
a failure, not a skip: CI must never pass without having run it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.infra.bicep import INFRA, REPO

CHECKOV = REPO / ".venv-infra" / "bin" / "checkov"
SKIP = re.compile(r"checkov:skip=([A-Z0-9_]+)(?::\s*(.*))?")


def _source_skips() -> Iterator[tuple[Path, int, str, str]]:
    for path in sorted(INFRA.rglob("*.bicep")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            match = SKIP.search(line)
            if match:
                yield path, number, match.group(1), (match.group(2) or "").strip()


def _reports(output: str) -> list[dict[str, Any]]:
    parsed = json.loads(output)
    return parsed if isinstance(parsed, list) else [parsed]


@pytest.fixture(scope="module")
def checkov_reports() -> list[dict[str, Any]]:
    """checkov's JSON reports for infra/, all frameworks, run once for this module."""
    if not CHECKOV.is_file():
        pytest.fail(f"{CHECKOV.relative_to(REPO)} is missing: run `make infra-venv` (or `make unit`) first")
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    result = subprocess.run(  # noqa: S603 - the pinned checkov from .venv-infra, fixed arguments
        [str(CHECKOV), "--directory", "infra", "--output", "json", "--skip-download", "--compact"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert result.returncode in (0, 1), result.stderr[-4000:]
    return _reports(result.stdout)


def test_checkov_reports_no_failed_check(checkov_reports: list[dict[str, Any]]) -> None:
    """Zero failed checks over infra/ (fix it, or skip in place with a reason)."""
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}:{c['file_line_range']})"
        for report in checkov_reports
        for c in report.get("results", {}).get("failed_checks", [])
    ]
    assert failed == []


def test_checkov_parsed_every_bicep_file(checkov_reports: list[dict[str, Any]]) -> None:
    """No parsing errors: checkov silently ignores the checks of a file it cannot parse."""
    bicep = [report for report in checkov_reports if report.get("check_type") == "bicep"]
    assert bicep, "checkov produced no Bicep report"
    assert bicep[0]["summary"]["parsing_errors"] == 0, bicep[0]["results"].get("parsing_errors")
    assert bicep[0]["summary"]["resource_count"] >= 50


def test_every_skip_is_used(checkov_reports: list[dict[str, Any]]) -> None:
    """Each `checkov:skip` comment suppresses a check that checkov actually ran (no stale skips)."""
    used = {
        (Path(c["file_path"]).name, c["check_id"])
        for report in checkov_reports
        for c in report.get("results", {}).get("skipped_checks", [])
    }
    written = {(path.name, check) for path, _, check, _ in _source_skips()}
    assert written - used == set()


def test_every_skip_is_justified_in_place() -> None:
    """Each skip comment names one check and gives a real reason on the same line."""
    skips = list(_source_skips())
    assert skips, "expected some justified skips"
    for path, number, check, reason in skips:
        assert re.fullmatch(r"CKV2?_AZURE_\d+", check), f"{path.name}:{number}: {check}"
        assert len(reason) >= 40, f"{path.name}:{number}: {check} needs a reason, not {reason!r}"
