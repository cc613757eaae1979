"""Simulated recipients: the number or address chooses the events, as documented in docs/acs-emulator.md."""

from __future__ import annotations

import pytest
from azure.communication.email import EmailClient
from azure.communication.messages import NotificationMessagesClient
from azure.communication.messages.models import TextNotificationContent
from azure.communication.sms import SmsClient

from devstack.acs import AcsEmulator, Settings
from devstack.acs.outcomes import email_keyword, email_plan, sms_plan, whatsapp_plan
from tests.devstack.acs.conftest import SENDER, email_message, wait_for
from tests.devstack.acs.receiver import Receiver


def send_sms(sms: SmsClient, to: str) -> str:
    [result] = sms.send(from_=SENDER, to=to, message="Hi", enable_delivery_report=True)
    return str(result.message_id)


def send_whatsapp(whatsapp: NotificationMessagesClient, to: str) -> str:
    content = TextNotificationContent(channel_registration_id="channel-1", to=[to], content="Hi")
    return str(whatsapp.send(content).receipts[0].message_id)


def send_email(email: EmailClient, address: str, **extra: object) -> str:
    return str(email.begin_send(email_message(address, **extra)).result()["id"])


def statuses(events: list[dict[str, object]]) -> list[object]:
    return [event["data"]["status"] for event in events]  # type: ignore[index]


@pytest.mark.parametrize(
    ("to", "final"),
    [
        ("+15555550101", "Failed"),
        ("+15555550102", "NoReport"),
        ("+15555550103", "Delivered"),
        ("+15555550106", "Rejected"),
        ("+15555550118", "Failed"),
        ("+15555550199", "Delivered"),
    ],
)
def test_sms_number_table(to: str, final: str) -> None:
    """The last two digits of an SMS number pick its final status."""
    assert sms_plan(to).final == final


@pytest.mark.parametrize(
    ("to", "final"),
    [
        ("+15555550101", "Failed"),
        ("+15555550105", "Read"),
        ("+15555550107", "Read"),
        ("+15555550118", "Failed"),
        ("+15555550100", "Delivered"),
    ],
)
def test_whatsapp_number_table(to: str, final: str) -> None:
    """The last two digits of a WhatsApp number pick its final status."""
    assert whatsapp_plan(to).final == final


@pytest.mark.parametrize(
    ("address", "final"),
    [
        ("a+bounce@x.com", "Bounced"),
        ("a+suppressed@x.com", "Suppressed"),
        ("a+quarantined@x.com", "Quarantined"),
        ("a+filtered@x.com", "FilteredSpam"),
        ("a+failed@x.com", "Failed"),
        ("a+noreport@x.com", "NoReport"),
        ("a+opfail@x.com", "Failed"),
        ("a+engage@x.com", "Delivered"),
        ("plain@x.com", "Delivered"),
    ],
)
def test_email_keyword_table(address: str, final: str) -> None:
    """The +keyword of an email address picks its final status."""
    assert email_plan(address).final == final


def test_email_keyword_may_carry_a_suffix() -> None:
    """`ann+bounce-7@x` still means bounce, so tests can use unique addresses."""
    assert email_keyword("Ann+Bounce-7@example.com") == "bounce"


def test_sms_01_reports_failed(sms: SmsClient, receiver: Receiver) -> None:
    """A `…01` SMS gets a Failed delivery report with its segments counted as failed."""
    message_id = send_sms(sms, "+15555550101")

    [event] = receiver.wait_events(message_id, 1)

    assert event["data"]["deliveryStatus"] == "Failed"
    assert event["data"]["deliveryAttempts"][0]["segmentsFailed"] == 1


def test_sms_02_never_reports(sms: SmsClient, acs: AcsEmulator, receiver: Receiver) -> None:
    """A `…02` SMS gets no report, even after a later send's report has arrived."""
    silent = send_sms(sms, "+15555550102")
    control = send_sms(sms, "+15555550100")

    receiver.wait_events(control, 1)

    assert receiver.events_for(silent) == []
    assert [t.final for t in acs.truth()] == ["NoReport", "Delivered"]


def test_sms_03_reports_late(sms: SmsClient, receiver: Receiver) -> None:
    """A `…03` SMS reports after the late delay, so a later normal send's report arrives first."""
    late = send_sms(sms, "+15555550103")
    normal = send_sms(sms, "+15555550100")

    receiver.wait_events(late, 1)

    arrived = [event["data"]["messageId"] for event in receiver.events()]
    assert arrived == [normal, late]


def test_sms_04_delivers_the_same_event_three_times(sms: SmsClient, receiver: Receiver) -> None:
    """A `…04` SMS gets the identical Delivered event (same envelope id) three times."""
    message_id = send_sms(sms, "+15555550104")

    events = receiver.wait_events(message_id, 3)

    assert len(events) == 3
    assert events[0] == events[1] == events[2]


def test_sms_05_second_report_is_older(sms: SmsClient, receiver: Receiver) -> None:
    """A `…05` SMS gets two Delivered reports with different ids, the second with an earlier eventTime."""
    message_id = send_sms(sms, "+15555550105")

    first, second = receiver.wait_events(message_id, 2)

    assert first["id"] != second["id"]
    assert first["data"] == second["data"]
    assert second["eventTime"] < first["eventTime"]


def test_whatsapp_05_arrives_in_reverse_order(whatsapp: NotificationMessagesClient, receiver: Receiver) -> None:
    """A `…05` WhatsApp number gets Read, Delivered, Sent, whose timestamps say the opposite order."""
    message_id = send_whatsapp(whatsapp, "+15555550105")

    events = receiver.wait_events(message_id, 3)

    assert statuses(events) == ["Read", "Delivered", "Sent"]
    assert [e["eventTime"] for e in events] == sorted((e["eventTime"] for e in events), reverse=True)


def test_whatsapp_07_is_read(whatsapp: NotificationMessagesClient, receiver: Receiver) -> None:
    """A `…07` WhatsApp number gets Sent, Delivered, Read in order."""
    message_id = send_whatsapp(whatsapp, "+15555550107")

    assert statuses(receiver.wait_events(message_id, 3)) == ["Sent", "Delivered", "Read"]


def test_whatsapp_01_fails_with_a_channel_error(whatsapp: NotificationMessagesClient, receiver: Receiver) -> None:
    """A `…01` WhatsApp number gets a Failed status carrying the WhatsApp error code."""
    message_id = send_whatsapp(whatsapp, "+15555550101")

    [event] = receiver.wait_events(message_id, 1)

    assert event["data"]["status"] == "Failed"
    assert event["data"]["error"]["channelCode"] == "131026"


def test_email_bounce(email: EmailClient, receiver: Receiver) -> None:
    """An `+bounce` address gets a Bounced delivery report."""
    operation_id = send_email(email, "ann+bounce@example.com")

    [event] = receiver.wait_events(operation_id, 1)

    assert event["data"]["status"] == "Bounced"


def test_email_suppressed_has_no_internet_message_id(email: EmailClient, receiver: Receiver) -> None:
    """An `+suppressed` address gets Suppressed without internetMessageId, as the real service sends it."""
    operation_id = send_email(email, "ann+suppressed@example.com")

    [event] = receiver.wait_events(operation_id, 1)

    assert event["data"]["status"] == "Suppressed"
    assert "internetMessageId" not in event["data"]


def test_email_reorder_sends_engagement_before_report(email: EmailClient, receiver: Receiver) -> None:
    """An `+reorder` address gets its view engagement event before the Delivered report."""
    operation_id = send_email(email, "ann+reorder@example.com")

    view, report = receiver.wait_events(operation_id, 2)

    assert view["eventType"] == "Microsoft.Communication.EmailEngagementTrackingReportReceived"
    assert view["data"]["engagementType"] == "view"
    assert report["data"]["status"] == "Delivered"


def test_email_engage_reports_then_view_and_click(email: EmailClient, receiver: Receiver) -> None:
    """An `+engage` address gets Delivered, then view, then click."""
    operation_id = send_email(email, "ann+engage@example.com")

    events = receiver.wait_events(operation_id, 3)

    kinds = [e["data"].get("status") or e["data"]["engagementType"] for e in events]
    assert kinds == ["Delivered", "view", "click"]


def test_email_engagement_needs_tracking(email: EmailClient, acs: AcsEmulator, receiver: Receiver) -> None:
    """With userEngagementTrackingDisabled an `+engage` address gets only its Delivered report."""
    operation_id = send_email(email, "ann+engage@example.com", userEngagementTrackingDisabled=True)

    wait_for(lambda: acs.events() and acs.pending_deliveries() == 0)

    assert statuses(receiver.events_for(operation_id)) == ["Delivered"]


def test_truth_lists_the_intended_final_status(sms: SmsClient, email: EmailClient, acs: AcsEmulator) -> None:
    """The truth view holds the intended final status of every send, keyed by provider message id."""
    failed = send_sms(sms, "+15555550101")
    bounced = send_email(email, "ann+bounce@example.com")

    truth = {t.message_id: t.final for t in acs.truth()}

    assert truth == {failed: "Failed", bounced: "Bounced"}


def test_late_delay_defaults_to_ten_report_delays() -> None:
    """Without an explicit late delay, late reports wait ten report delays."""
    assert Settings(report_delay=0.3).effective_late_delay == pytest.approx(3.0)
