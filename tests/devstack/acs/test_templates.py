"""WhatsApp templates and the 24-hour window in the emulator, through the official SDK clients."""

from __future__ import annotations

from azure.communication.messages import MessageTemplateClient, NotificationMessagesClient
from azure.communication.messages.models import (
    MessageTemplate,
    MessageTemplateText,
    TemplateNotificationContent,
    TextNotificationContent,
    WhatsAppMessageTemplateBindings,
    WhatsAppMessageTemplateBindingsComponent,
)

from devstack.acs import AcsEmulator
from devstack.acs.templates import TEMPLATES
from tests.devstack.acs.conftest import credential
from tests.devstack.acs.receiver import Receiver

CHANNEL = "6b36a8e2-0000-4000-8000-000000000001"
USER = "+15555550140"


def _template(name: str, *values: str, to: str = USER) -> TemplateNotificationContent:
    texts = [MessageTemplateText(name=str(i), text=v) for i, v in enumerate(values, 1)]
    bindings = WhatsAppMessageTemplateBindings(
        body=[WhatsAppMessageTemplateBindingsComponent(ref_value=t.name) for t in texts]
    )
    template = MessageTemplate(name=name, language="en_US", template_values=texts, bindings=bindings)
    return TemplateNotificationContent(channel_registration_id=CHANNEL, to=[to], template=template)


def _failure(receiver: Receiver, message_id: str) -> str:
    [event] = receiver.wait_events(message_id, 1)
    assert event["data"]["status"] == "Failed"
    return str(event["data"]["error"]["channelCode"])


def test_the_template_list_pages_through_every_state(acs: AcsEmulator) -> None:
    """MessageTemplateClient.list_templates follows nextLink pages and reads every item's state."""
    client = MessageTemplateClient(acs.endpoint, credential(acs), retry_total=0)
    items = list(client.list_templates(CHANNEL, maxpagesize=3))
    assert [(i.name, i.status) for i in items] == [(t.name, t.status) for t in TEMPLATES]
    assert {i.status for i in items} == {"approved", "pending", "paused", "rejected"}
    assert items[0].kind == "whatsApp" and items[0].content["components"][0]["type"] == "BODY"
    assert acs.request_counts()["templates"] == 3


def test_meta_refuses_templates_it_will_not_send_after_accepting_them(
    whatsapp: NotificationMessagesClient, acs: AcsEmulator, receiver: Receiver
) -> None:
    """Accepted (202), then Failed: unknown or pending 132001, paused 132015, wrong parameter count 132000."""
    cases = {("no_such", "1"): "132001", ("new_offer", "1"): "132001", ("spring_sale", "1"): "132015"}
    for (name, value), code in cases.items():
        [receipt] = whatsapp.send(_template(name, value)).receipts
        assert _failure(receiver, receipt.message_id) == code
    [receipt] = whatsapp.send(_template("order_update", "A-1")).receipts
    assert _failure(receiver, receipt.message_id) == "132000"
    [receipt] = whatsapp.send(_template("order_update", "A-1", "shipped")).receipts
    assert [e["data"]["status"] for e in receiver.wait_events(receipt.message_id, 2)] == ["Sent", "Delivered"]


def test_free_text_outside_the_window_fails_with_131047_when_enforced(
    whatsapp: NotificationMessagesClient, acs: AcsEmulator, receiver: Receiver
) -> None:
    """With serviceWindow on, text to a user who never wrote fails, a template to them does not; after
    their message, text is delivered."""
    acs.configure(service_window=True)
    text = TextNotificationContent(channel_registration_id=CHANNEL, to=[USER], content="Hi")
    [cold] = whatsapp.send(text).receipts
    assert _failure(receiver, cold.message_id) == "131047"
    acs.inbound(USER, CHANNEL, "hello", channel="whatsapp")
    [warm] = whatsapp.send(text).receipts
    assert [e["data"]["status"] for e in receiver.wait_events(warm.message_id, 2)] == ["Sent", "Delivered"]
    [template] = whatsapp.send(_template("sample_template", to="+15555550141")).receipts
    assert [e["data"]["status"] for e in receiver.wait_events(template.message_id, 2)] == ["Sent", "Delivered"]
