"""Runs last (by name): the logs captured across the whole suite carry no PII or content."""

from __future__ import annotations

import re

from tests.conftest import EXTRA_LOG_FILES, LOG_COLLECTOR
from tests.integration.conftest import EMAIL_SENDER, SMS_SENDER

PHONE = re.compile(r"\+\d{10,15}\b")
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# Text the tests put in message bodies; none of it may reach a log line.
CONTENT_MARKERS = ("code for ", "wa e2e", "hello from the demo", "Your order")
# Our sender identities are not personal data, and operator identities are logged on purpose (audit).
OUR_OWN_IDENTITIES = {SMS_SENDER, EMAIL_SENDER, "+18005550100", "DoNotReply@contoso.example", "ops@example.com"}


def _lines() -> list[str]:
    lines = list(LOG_COLLECTOR.lines)
    for path in EXTRA_LOG_FILES:
        if path.exists():
            lines += path.read_text(errors="replace").splitlines()
    return lines


def test_the_suite_produced_logs_to_scan() -> None:
    """The scan is meaningful only if the pipeline logged something."""
    assert any("message_id=" in line for line in _lines())


def test_no_raw_phone_number_email_or_content_in_any_log_line() -> None:
    """Recipients appear masked and message text never appears."""
    offenders = []
    for line in _lines():
        found = set(PHONE.findall(line)) | set(EMAIL.findall(line))
        found -= OUR_OWN_IDENTITIES
        if found or any(marker in line for marker in CONTENT_MARKERS):
            offenders.append(line[:300])
    assert offenders == [], "\n".join(offenders[:20])
