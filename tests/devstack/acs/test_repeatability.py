"""Repeatable requests: a repeat returns the original result and is never a second send."""

from __future__ import annotations

import uuid
from email.utils import formatdate

from azure.communication.email import EmailClient
from azure.communication.messages import NotificationMessagesClient
from azure.communication.messages.models import TextNotificationContent

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
