"""The workbook and the alerts are valid and only use names declared in shared/observability.py.

Operators query Application Insights by `customDimensions.<name>`; a query that names an undeclared
event, counter or dimension shows an empty chart or an alert that never fires, with no error.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from shared.observability import DIMENSIONS, EVENTS, METRICS
from tests.infra.bicep import INFRA, bicep_files, declared_resources, kql_problems, loaded_files

WORKBOOK = INFRA / "workbook" / "contact-messages.workbook.json"
ALERT_QUERIES = sorted((INFRA / "alerts").glob("*.kql"))
VOCABULARY = {"events": EVENTS, "metrics": METRICS, "dimensions": DIMENSIONS}


def _workbook() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(WORKBOOK.read_text())
    return document


def _workbook_queries() -> dict[str, str]:
    return {item["name"]: item["content"]["query"] for item in _workbook()["items"] if item["type"] == 3}


def _all_queries() -> dict[str, str]:
    queries = {f"workbook:{name}": query for name, query in _workbook_queries().items()}
    queries.update({f"alert:{path.name}": path.read_text() for path in ALERT_QUERIES})
    return queries


def test_workbook_is_a_workbook() -> None:
    """The workbook JSON is a Notebook/1.0 document whose query items target Application Insights."""
    document = _workbook()
    assert document["version"] == "Notebook/1.0"
    names = [item["name"] for item in document["items"]]
    assert len(names) == len(set(names)), "item names must be unique"
    for item in document["items"]:
        if item["type"] == 3:
            content = item["content"]
            assert content["version"] == "KqlItem/1.0"
            assert content["resourceType"] == "microsoft.insights/components"
            assert content["query"].strip()


def test_workbook_is_deployed_by_bicep() -> None:
    """A Microsoft.Insights/workbooks resource embeds this very file."""
    workbooks = [r for r in declared_resources() if r.type == "Microsoft.Insights/workbooks"]
    assert len(workbooks) == 1
    assert WORKBOOK.resolve() in loaded_files(workbooks[0].file)


def test_workbook_covers_the_operational_questions() -> None:
    """Outcomes per channel, latency, throttling, poison depth, reconciliation, status feed and cost have a panel."""
    text = "\n".join(_workbook_queries().values())
    for needle in (
        '"sent", "delivered", "failed", "expired"',
        '"delivery_latency_ms"',
        '"throttled"',
        '"poison_depth"',
        '"reconcile.summary"',
        '"cost_estimate"',
        '"feed_published", "feed_publish_failed", "feed_republished"',
    ):
        assert needle in text, f"no workbook panel uses {needle}"


@pytest.mark.parametrize(("name", "query"), sorted(_all_queries().items()))
def test_query_uses_only_declared_names(name: str, query: str) -> None:
    """Each workbook and alert query reads only declared events, counters and dimensions."""
    assert kql_problems(query, **VOCABULARY) == []


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ('traces | where tostring(customDimensions.event) == "message.bounced"', "undeclared event 'message.bounced'"),
        (
            'traces | where tostring(customDimensions.event) == "metric" '
            '| extend m = tostring(customDimensions.metric_name) | where m in ("sent", "bounced")',
            "undeclared metric 'bounced'",
        ),
        (
            'traces | where tostring(customDimensions.event) == "metric" | summarize by tostring(customDimensions.to)',
            "undeclared dimension customDimensions.to",
        ),
        (
            'traces | where tostring(customDimensions.event) == "metric" | project customDimensions["phone"]',
            "undeclared dimension customDimensions.phone",
        ),
        (
            'customEvents | where name == "sent"',
            "query must start with one of ['requests', 'traces'], not 'customEvents'",
        ),
        ("traces | take 10", "a traces query must filter on customDimensions.event"),
    ],
)
def test_checker_rejects_undeclared_names(query: str, problem: str) -> None:
    """The checker itself catches an undeclared event, counter, dimension or table."""
    assert problem in kql_problems(query, **VOCABULARY)


def test_every_alert_query_is_used_and_no_kql_is_inline() -> None:
    """Each infra/alerts/*.kql is loaded by the Bicep, and no Bicep file writes KQL inline."""
    loaded = {path for bicep in bicep_files() for path in loaded_files(bicep)}
    assert {path.resolve() for path in ALERT_QUERIES} <= loaded
    for bicep in bicep_files():
        assert "customDimensions" not in bicep.read_text(), f"{bicep.name}: put KQL in infra/alerts/*.kql"


def _alerts_bicep() -> Path:
    return INFRA / "modules" / "alerts.bicep"


def test_alert_rules_cover_the_failure_modes() -> None:
    """Poison depth, failure rate, Unknown/Expired, function failures, ACS 403s, Event Grid dead-letters and the
    status feed (publish failures, outbox age) alert."""
    text = _alerts_bicep().read_text()
    kqls = (
        "poison-depth.kql",
        "failure-rate.kql",
        "unknown-expired.kql",
        "function-failures.kql",
        "acs-forbidden.kql",
        "feed-publish-failed.kql",
        "feed-outbox-age.kql",
    )
    for kql in kqls:
        assert f"'../alerts/{kql}'" in text
    metric_alerts = [r for r in declared_resources() if r.type == "Microsoft.Insights/metricAlerts"]
    criteria = [c for alert in metric_alerts for c in alert.properties["criteria"]["allOf"]]
    assert {(c["metricNamespace"], c["metricName"]) for c in criteria} == {
        ("Microsoft.EventGrid/systemTopics", "DeadLetteredCount")
    }
    action_groups = [r for r in declared_resources() if r.type == "Microsoft.Insights/actionGroups"]
    assert len(action_groups) == 1
    assert action_groups[0].properties["emailReceivers"][0]["emailAddress"] == "alertEmail"


RUNBOOK = INFRA.parent / "docs" / "runbook.md"
# The runbook may also read exceptions, for the stack traces behind a failure.
RUNBOOK_TABLES = frozenset({"traces", "requests", "exceptions"})


def _runbook_queries() -> list[str]:
    return re.findall(r"```kql\n(.*?)```", RUNBOOK.read_text(), flags=re.DOTALL)


def test_runbook_has_queries_for_every_alert() -> None:
    """The runbook has an Alerts section per alert rule, each with at least one KQL query."""
    text = RUNBOOK.read_text()
    for rule in (
        "alert-poison-queue-depth",
        "alert-failure-rate",
        "alert-unknown-or-expired-spike",
        "alert-eventgrid-dead-letters",
        "alert-function-failures",
        "alert-acs-forbidden",
    ):
        section = text.split(f"(`{rule}`)", 1)
        assert len(section) == 2, f"no runbook section for {rule}"
        assert "```kql" in section[1].split("\n### ", 1)[0], f"no query under {rule}"


@pytest.mark.parametrize("query", _runbook_queries())
def test_runbook_query_uses_only_declared_names(query: str) -> None:
    """Runbook KQL uses only declared names, so an operator never runs a query that silently matches nothing."""
    assert kql_problems(query, **VOCABULARY, tables=RUNBOOK_TABLES) == []
