"""WhatsApp (Advanced Messages) sends through the official NotificationMessagesClient."""

from __future__ import annotations

import json

import pytest
from azure.communication.messages import NotificationMessagesClient
from azure.communication.messages.models import (
    MessageTemplate,
    MessageTemplateText,
    TemplateNotificationContent,
    TextNotificationContent,
    WhatsAppMessageTemplateBindings,
    WhatsAppMessageTemplateBindingsComponent,
)
from azure.core.exceptions import HttpResponseError

from devstack.acs import AcsEmulator
from tests.devstack.acs.receiver import Receiver

CHANNEL = "6b36a8e2-0000-4000-8000-000000000001"


def test_text_message_gets_a_receipt_per_recipient(whatsapp: NotificationMessagesClient, acs: AcsEmulator) -> None:
    """A text message to two numbers returns two receipts, each logged as a send."""
    content = TextNotificationContent(
        channel_registration_id=CHANNEL, to=["+15555550100", "+15555550101"], content="Hi"
    )

    result = whatsapp.send(content)

    assert [r.to for r in result.receipts] == ["+15555550100", "+15555550101"]
    assert [s.message_id for s in acs.sends("whatsapp")] == [r.message_id for r in result.receipts]
    assert {s.sender for s in acs.sends()} == {CHANNEL}


def test_template_message_is_accepted_with_its_content(whatsapp: NotificationMessagesClient, acs: AcsEmulator) -> None:
    """A template message is accepted and its template is what the sends log keeps as content."""
    template = MessageTemplate(
        name="sample_shipping_confirmation",
        language="en_us",
        template_values=[MessageTemplateText(name="days", text="5")],
        bindings=WhatsAppMessageTemplateBindings(body=[WhatsAppMessageTemplateBindingsComponent(ref_value="days")]),
    )
    content = TemplateNotificationContent(channel_registration_id=CHANNEL, to=["+15555550100"], template=template)

    [receipt] = whatsapp.send(content).receipts

    [record] = acs.sends()
    assert record.message_id == receipt.message_id
    assert json.loads(record.content)["template"]["name"] == "sample_shipping_confirmation"


def test_rejected_number_fails_the_request(whatsapp: NotificationMessagesClient, acs: AcsEmulator) -> None:
    """A `…06` number makes the whole request fail with 400, and nothing is sent."""
    content = TextNotificationContent(channel_registration_id=CHANNEL, to=["+15555550106"], content="Hi")

    with pytest.raises(HttpResponseError) as caught:
        whatsapp.send(content)

    assert caught.value.status_code == 400
    assert acs.sends() == []
    assert [t.final for t in acs.truth()] == ["Rejected"]


def test_status_events_use_the_receipt_message_id(whatsapp: NotificationMessagesClient, receiver: Receiver) -> None:
    """A default recipient gets Sent then Delivered, about the receipt's messageId."""
    content = TextNotificationContent(channel_registration_id=CHANNEL, to=["+15555550100"], content="Hi")
    [receipt] = whatsapp.send(content).receipts

    events = receiver.wait_events(receipt.message_id, 2)

    assert [e["data"]["status"] for e in events] == ["Sent", "Delivered"]
    assert events[1]["subject"] == f"advancedMessage/{receipt.message_id}/status/Delivered"
    assert events[1]["data"]["from"] == CHANNEL
    assert events[1]["data"]["channelType"] == "whatsapp"
