"""A time-bounded outage: every send endpoint answers 503 for N seconds, then serves normally.

This is what an outage test of the app asks of the emulator (`acs.outage(90, retry_after=5)` in
process, `AcsAdminClient.outage(...)` or `POST /admin/faults {"kind": "503", "seconds": 90}` from
another process). Here the outage lasts a second, so that the suite stays quick.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest

from devstack.acs import AcsEmulator
from devstack.acs.client import AcsAdminClient
from tests.devstack.acs.conftest import SENDER, signed_post, signed_request, wait_for

OUTAGE_SECONDS = 1.0


def sms(acs: AcsEmulator) -> tuple[int, dict[str, str]]:
    body = {"from": SENDER, "smsRecipients": [{"to": "+15555550100"}], "message": "Hi"}
    status, headers, _ = signed_post(acs, "/sms?api-version=2021-03-07", body)
    return status, headers


def email(acs: AcsEmulator) -> tuple[int, dict[str, str]]:
    body = {
        "senderAddress": "DoNotReply@contoso.azurecomm.net",
        "recipients": {"to": [{"address": "ann@example.com"}]},
        "content": {"subject": "s", "plainText": "t"},
    }
    headers = {"Operation-Id": str(uuid.uuid4())}
    status, answer_headers, _ = signed_post(acs, "/emails:send?api-version=2025-09-01", body, headers)
    return status, answer_headers


def email_status(acs: AcsEmulator) -> tuple[int, dict[str, str]]:
    status, headers, _ = signed_request(acs, "GET", f"/emails/operations/{uuid.uuid4()}?api-version=2025-09-01")
    return status, headers


def whatsapp(acs: AcsEmulator) -> tuple[int, dict[str, str]]:
    body = {"channelRegistrationId": "channel-1", "to": ["+15555550100"], "kind": "text", "content": "Hi"}
    status, headers, _ = signed_post(acs, "/messages/notifications:send?api-version=2025-01-15", body)
    return status, headers


ENDPOINTS: dict[str, tuple[Callable[[AcsEmulator], tuple[int, dict[str, str]]], int]] = {
    "sms": (sms, 202),
    "email": (email, 202),
    "email operation": (email_status, 404),  # an unknown operation, once the service answers again
    "whatsapp": (whatsapp, 202),
}


@pytest.mark.parametrize("retry_after", [5, None], ids=["with-retry-after", "without-retry-after"])
@pytest.mark.parametrize("through", ["in-process", "admin-client"])
def test_every_send_endpoint_is_unavailable_for_the_outage_then_healthy(
    acs: AcsEmulator, through: str, retry_after: int | None
) -> None:
    started = time.monotonic()
    if through == "in-process":
        acs.outage(OUTAGE_SECONDS, retry_after=retry_after)
    else:
        AcsAdminClient(acs.endpoint).outage(OUTAGE_SECONDS, retry_after=retry_after)

    during = {name: call(acs) for name, (call, _) in ENDPOINTS.items()}
    assert time.monotonic() - started < OUTAGE_SECONDS, "too slow to probe inside the outage"
    assert {name: status for name, (status, _) in during.items()} == dict.fromkeys(ENDPOINTS, 503)
    expected_header = None if retry_after is None else str(retry_after)
    assert {name: headers.get("Retry-After") for name, (_, headers) in during.items()} == dict.fromkeys(
        ENDPOINTS, expected_header
    )
    assert acs.sends() == []

    wait_for(lambda: sms(acs)[0] == 202, timeout=OUTAGE_SECONDS + 5)
    assert time.monotonic() - started >= OUTAGE_SECONDS
    after = {name: call(acs)[0] for name, (call, _) in ENDPOINTS.items()}
    assert after == {name: status for name, (_, status) in ENDPOINTS.items()}
    assert acs.faults() == []
