"""Repeatable requests: a repeat returns the original result and is never a second send."""

from __future__ import annotations

import uuid
from email.utils import formatdate

from azure.communication.email import EmailClient
from azure.communication.messages import NotificationMessagesClient
from azure.communication.messages.models import TextNotificationContent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.acs import AcsEmulator
from tests.devstack.acs.conftest import SENDER, email_message, signed_post, wait_for

SMS_TARGET = "/sms?api-version=2021-03-07"


def sms_body(repeatability_id: str) -> dict[str, object]:
    recipient = {"to": "+15555550100", "repeatabilityRequestId": repeatability_id}
    recipient["repeatabilityFirstSent"] = formatdate(usegmt=True)
    return {
        "from": SENDER,
        "smsRecipients": [recipient],
        "message": "Hi",
        "smsSendOptions": {"enableDeliveryReport": True},
    }


def test_repeated_sms_repeatability_id_is_one_send(acs: AcsEmulator) -> None:
    """The same repeatabilityRequestId twice returns the same messageId and records one send, two requests."""
    body = sms_body(str(uuid.uuid4()))

    first = signed_post(acs, SMS_TARGET, body)
    second = signed_post(acs, SMS_TARGET, body)

    assert first[0] == second[0] == 202
    assert first[2] == second[2]
    assert len(acs.sends()) == 1
    assert acs.request_counts()["sms"] == 2


def test_repeated_whatsapp_repeatability_header_is_one_send(
    whatsapp: NotificationMessagesClient, acs: AcsEmulator
) -> None:
    """The same Repeatability-Request-ID header twice returns the original receipt and records one send."""
    headers = {"Repeatability-Request-ID": str(uuid.uuid4()), "Repeatability-First-Sent": formatdate(usegmt=True)}
    content = TextNotificationContent(channel_registration_id="channel-1", to=["+15555550100"], content="Hi")

    first = whatsapp.send(content, headers=headers)
    second = whatsapp.send(content, headers=headers)

    assert first.receipts[0].message_id == second.receipts[0].message_id
    assert len(acs.sends()) == 1
    assert acs.request_counts()["whatsapp"] == 2


def test_repeated_email_operation_id_is_one_send(email: EmailClient, acs: AcsEmulator) -> None:
    """The same Operation-Id twice is the same operation: one send, and both pollers succeed."""
    operation_id = str(uuid.uuid4())
    message = email_message("ann@example.com")

    first = email.begin_send(message, operation_id=operation_id).result()
    second = email.begin_send(message, operation_id=operation_id).result()

    assert first == second == {"id": operation_id, "status": "Succeeded"}
    [record] = acs.sends()
    assert record.repeatability_id == operation_id
    assert acs.request_counts()["email"] == 2


def test_repeat_schedules_no_second_report(acs: AcsEmulator) -> None:
    """A repeated SMS request does not plan a second delivery report."""
    body = sms_body(str(uuid.uuid4()))
    signed_post(acs, SMS_TARGET, body)
    signed_post(acs, SMS_TARGET, body)

    wait_for(lambda: acs.events() and acs.pending_deliveries() == 0)
    assert [e.status for e in acs.events()] == ["Delivered"]


# The REST spec's own example for api-version 2021-03-07 (the one azure-communication-sms 1.1.0 calls),
# specification/communication/data-plane/Sms/stable/2021-03-07/examples/send.json: two recipients share
# one repeatability id; the one without repeatabilityFirstSent is refused.
SPEC_EXAMPLE = {
    "from": "+18001110000",
    "smsRecipients": [
        {
            "to": "+11234567893",
            "repeatabilityRequestId": "fda6d242-46aa-4247-8bf6-619a1206f9c3",
            "repeatabilityFirstSent": "Mon, 01 Apr 2019 06:22:03 GMT",
        },
        {"to": "+11234567894", "repeatabilityRequestId": "fda6d242-46aa-4247-8bf6-619a1206f9c3"},
    ],
    "message": "Hello world!",
    "smsSendOptions": {"enableDeliveryReport": True, "tag": "testSmsRequest", "validityPeriodSeconds": 300},
}
REFUSED_FIRST_SENT = {
    "to": "+11234567894",
    "httpStatusCode": 400,
    "repeatabilityResult": "rejected",
    "errorMessage": "Request sent with Invalid DateTime value for repeatability-first-sent. "
    "Expected is DateTime ,RFC1123 pattern.",
    "successful": False,
}


def test_the_spec_example_refuses_a_repeatability_id_without_first_sent(acs: AcsEmulator) -> None:
    status, _, body = signed_post(acs, SMS_TARGET, SPEC_EXAMPLE)
    accepted, refused = body["value"]
    assert status == 202
    assert (accepted["httpStatusCode"], accepted["repeatabilityResult"], accepted["successful"]) == (
        202,
        "accepted",
        True,
    )
    assert refused == REFUSED_FIRST_SENT  # no messageId: "only present if message processed"
    assert [record.to for record in acs.sends()] == ["+11234567893"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    first_sent=st.one_of(
        st.text(max_size=40).filter(lambda text: not text.endswith(" GMT")),
        st.sampled_from(["2019-04-01T06:22:03Z", "Mon, 01 Apr 2019 06:22:03", "yesterday GMT", "1554099723"]),
        st.integers(),
        st.none(),
    )
)
def test_a_first_sent_that_is_not_an_rfc1123_date_is_refused(acs: AcsEmulator, first_sent: object) -> None:
    recipient = {"to": "+15555550100", "repeatabilityRequestId": str(uuid.uuid4())}
    if first_sent is not None:
        recipient["repeatabilityFirstSent"] = first_sent  # type: ignore[assignment]
    sends_before = len(acs.sends())
    body = {"from": SENDER, "smsRecipients": [recipient], "message": "Hi"}
    status, _, answer = signed_post(acs, SMS_TARGET, body)
    assert status == 202
    assert answer["value"] == [{**REFUSED_FIRST_SENT, "to": "+15555550100"}]
    assert len(acs.sends()) == sends_before


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(count=st.integers(min_value=2, max_value=6), repeats=st.integers(min_value=1, max_value=3))
def test_recipients_sharing_a_repeatability_id_keep_their_own_results(
    acs: AcsEmulator, count: int, repeats: int
) -> None:
    """Each recipient is its own send under a shared id, and each repeat returns that recipient's own result."""
    shared_id, first_sent = str(uuid.uuid4()), formatdate(usegmt=True)
    recipients = [
        {"to": f"+1555555{n:04d}", "repeatabilityRequestId": shared_id, "repeatabilityFirstSent": first_sent}
        for n in range(count)
    ]
    body = {"from": SENDER, "smsRecipients": recipients, "message": "Hi"}
    first = signed_post(acs, SMS_TARGET, body)[2]["value"]
    for _ in range(repeats):  # again, and in the other order
        body["smsRecipients"] = list(reversed(body["smsRecipients"]))  # type: ignore[arg-type]
        again = {item["to"]: item for item in signed_post(acs, SMS_TARGET, body)[2]["value"]}
        assert [again[item["to"]] for item in first] == first
    assert [item["to"] for item in first] == [recipient["to"] for recipient in recipients]
    assert len({item["messageId"] for item in first}) == count
    mine = [record for record in acs.sends() if record.repeatability_id == shared_id]
    assert sorted(record.to for record in mine) == sorted(r["to"] for r in recipients)
