"""The suite's PII scan: no raw phone number, email address or message text in any log line.

`tests/conftest.py` runs it over every log record a test process captured (and the runner log files
its tests wrote) when that process's session ends, so it holds whether the suite runs in one process
or in several (`make test` runs two workers)."""

from __future__ import annotations

import re
from collections.abc import Iterable

PHONE = re.compile(r"\+\d{10,15}\b")
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# Text the tests put in message bodies; none of it may reach a log line.
CONTENT_MARKERS = ("code for ", "wa e2e", "hello from the demo", "Your order")
# Our sender identities are not personal data, and operator identities are logged on purpose (audit).
# (tests/integration/conftest.py's SMS_SENDER and EMAIL_SENDER are among them.)
OUR_OWN_IDENTITIES = frozenset(
    {"+18005550100", "noreply@contoso.example", "DoNotReply@contoso.example", "ops@example.com"}
)


def offenders(lines: Iterable[str]) -> list[str]:
    """The lines (cut to 300 characters) that carry a raw address that is not ours, or message text."""
    found_in = []
    for line in lines:
        found = (set(PHONE.findall(line)) | set(EMAIL.findall(line))) - OUR_OWN_IDENTITIES
        if found or any(marker in line for marker in CONTENT_MARKERS):
            found_in.append(line[:300])
    return found_in
