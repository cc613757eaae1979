"""Inbound simulation: messages "from users" reach the webhook as SMSReceived / AdvancedMessageReceived."""

from __future__ import annotations

import pytest

from devstack.acs import AcsAdminClient, AcsEmulator, AdminApiError
from tests.devstack.acs.conftest import SENDER, wait_for
from tests.devstack.acs.receiver import Receiver


def test_inbound_sms_stop_reaches_the_webhook(acs: AcsEmulator, receiver: Receiver) -> None:
    """An inbound STOP is delivered as SMSReceived with the sender, the app's number and the text."""
    record = acs.inbound("+15555550123", SENDER, "STOP")

    [event] = wait_for(lambda: receiver.events_for(record.message_id))

    assert event["eventType"] == "Microsoft.Communication.SMSReceived"
    assert event["subject"] == "/phonenumber/18005550100"
    data = event["data"]
    assert (data["from"], data["to"], data["message"], data["segmentCount"]) == ("+15555550123", SENDER, "STOP", 1)
    assert data["messageId"].startswith("Incoming_")


def test_inbound_whatsapp_through_admin_api(acs: AcsEmulator, receiver: Receiver) -> None:
    """POST /admin/inbound with channel whatsapp emits AdvancedMessageReceived to the channel registration."""
    admin = AcsAdminClient(acs.endpoint)

    record = admin.inbound("+15555550123", "channel-1", "START", channel="whatsapp")

    [event] = wait_for(lambda: receiver.events_for(record["messageId"]))
    assert event["eventType"] == "Microsoft.Communication.AdvancedMessageReceived"
    assert event["subject"] == "advancedMessage/sender/+15555550123/recipient/channel-1"
    assert (event["data"]["content"], event["data"]["messageType"]) == ("START", "text")
    assert admin.inbound_log()[0]["messageId"] == record["messageId"]


def test_inbound_requires_a_phone_number_sender(acs: AcsEmulator) -> None:
    """An inbound message from something that is not an E.164 number is refused with 400."""
    admin = AcsAdminClient(acs.endpoint)

    with pytest.raises(AdminApiError) as caught:
        admin.inbound("alice", SENDER, "STOP")

    assert caught.value.status == 400
