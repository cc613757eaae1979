"""SMS sends through the official SmsClient: results, the sends log and delivery reports."""

from __future__ import annotations

from azure.communication.sms import SmsClient

from devstack.acs import AcsEmulator
from tests.devstack.acs.conftest import SENDER, signed_post, wait_for
from tests.devstack.acs.receiver import Receiver


def test_single_recipient_send_is_accepted_and_logged(sms: SmsClient, acs: AcsEmulator) -> None:
    """A one-recipient send returns a successful result whose messageId is in the sends log."""
    [result] = sms.send(from_=SENDER, to="+15555550100", message="Hello", tag="order-1")

    assert result.successful
    assert result.http_status_code == 202
    assert result.message_id.startswith("Outgoing_")
    [record] = acs.sends()
    assert (record.channel, record.to, record.sender, record.tag) == ("sms", "+15555550100", SENDER, "order-1")
    assert record.message_id == result.message_id


def test_multi_recipient_send_returns_one_result_per_recipient(sms: SmsClient, acs: AcsEmulator) -> None:
    """Each recipient of one send gets its own result and messageId, and its own log record."""
    results = sms.send(from_=SENDER, to=["+15555550110", "+15555550111"], message="Hello both")

    assert [r.to for r in results] == ["+15555550110", "+15555550111"]
    assert len({r.message_id for r in results}) == 2
    assert [s.message_id for s in acs.sends()] == [r.message_id for r in results]


def test_rejected_recipient_fails_inside_a_202(sms: SmsClient, acs: AcsEmulator) -> None:
    """A `…06` number is refused per recipient (400 inside the 202), while the others are sent."""
    ok, bad = sms.send(from_=SENDER, to=["+15555550100", "+15555550106"], message="Hi")

    assert ok.successful
    assert not bad.successful
    assert bad.http_status_code == 400
    assert bad.error_message == "Invalid To phone number format."
    assert [s.to for s in acs.sends()] == ["+15555550100"]


def test_a_number_that_is_not_its_own_e164_form_is_refused(sms: SmsClient, acs: AcsEmulator) -> None:
    """`+112345678901` (eleven digits after +1, the REST spec's own refused example) is refused inside the
    202, although a phone-number library reads it as +1 234 567 8901 after a national prefix."""
    [bad] = sms.send(from_=SENDER, to="+112345678901", message="Hi")

    assert (bad.successful, bad.http_status_code, bad.error_message) == (False, 400, "Invalid To phone number format.")
    assert acs.sends() == []


def test_a_result_without_repeatability_has_no_repeatability_result(acs: AcsEmulator) -> None:
    """Only a repeatable request gets `repeatabilityResult`, as in the REST spec's example."""
    body = {"from": SENDER, "smsRecipients": [{"to": "+15555550100"}], "message": "Hi"}
    status, _, answer = signed_post(acs, "/sms?api-version=2021-03-07", body)

    assert status == 202
    assert "repeatabilityResult" not in answer["value"][0]


def test_delivery_report_echoes_tag_and_message_id(sms: SmsClient, receiver: Receiver) -> None:
    """The delivery report carries the send's messageId (also as envelope id) and its tag."""
    [result] = sms.send(from_=SENDER, to="+15555550100", message="Hi", enable_delivery_report=True, tag="m-42")

    [event] = wait_for(lambda: receiver.events_for(result.message_id))
    assert event["id"] == result.message_id
    assert event["eventType"] == "Microsoft.Communication.SMSDeliveryReportReceived"
    assert event["subject"] == "/phonenumber/18005550100"
    assert event["data"]["deliveryStatus"] == "Delivered"
    assert event["data"]["tag"] == "m-42"


def test_no_report_without_enable_delivery_report(sms: SmsClient, acs: AcsEmulator) -> None:
    """Like the real service, an SMS sent without enable_delivery_report gets no report (truth: NoReport)."""
    sms.send(from_=SENDER, to="+15555550100", message="Hi")

    [truth] = acs.truth()
    assert truth.final == "NoReport"
    assert acs.pending_deliveries() == 0


def test_same_text_sent_twice_shows_as_duplicate(sms: SmsClient, acs: AcsEmulator) -> None:
    """Two SDK sends of the same text to the same number are two sends, and duplicates() groups them."""
    first = sms.send(from_=SENDER, to="+15555550100", message="Once only")[0]
    second = sms.send(from_=SENDER, to="+15555550100", message="Once only")[0]

    [group] = acs.duplicates()
    assert group["count"] == 2
    assert group["messageIds"] == [first.message_id, second.message_id]
