"""Event data for each channel: what a delivery report, an engagement or an inbound message carries.

Why separate from `events`: the envelope is the same for every event, while each ACS event type has
its own data fields and subject. Each send target knows how to describe a step of its plan as an
`EventSpec`, which keeps the dispatcher channel-agnostic.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from devstack.acs import events
from devstack.acs.events import EventSpec
from devstack.acs.models import iso
from devstack.acs.outcomes import Step, StepKind

_SMS_DETAILS = {"Delivered": "No error.", "Failed": "Failed to deliver: the destination is unreachable."}
_EMAIL_DETAILS = {
    "Delivered": "No error.",
    "Expanded": "Recipient is a distribution list; delivered to its members.",
    "Bounced": "Recipient mailbox does not exist.",
    "Suppressed": "Recipient is on the suppression list.",
    "Quarantined": "Message was quarantined by the recipient's mail server.",
    "FilteredSpam": "Message was identified as spam.",
    "Failed": "Email was dropped after several attempts to deliver.",
}
_WHATSAPP_ERROR = {"channelCode": "131026", "channelMessage": "Message Undeliverable."}


class Target(Protocol):
    """A recipient of an accepted send that can describe its planned events."""

    def event_id(self, step: Step) -> str: ...

    def event(self, step: Step, at: datetime, event_id: str) -> EventSpec: ...


def _new_id(step: Step) -> str:
    return str(uuid.uuid4())


def sms_segments(text: str) -> int:
    """How many SMS segments a text needs (GSM-7: 160/153 characters, otherwise UCS-2: 70/67)."""
    single, multi = (160, 153) if text.isascii() else (70, 67)
    length = len(text)
    return 1 if length <= single else -(-length // multi)


@dataclass(frozen=True)
class SmsTarget:
    """One SMS recipient: reports carry the send's messageId and echo its tag."""

    message_id: str
    sender: str
    to: str
    segments: int
    tag: str | None = None

    def event_id(self, step: Step) -> str:
        """The report's envelope id is its messageId, as in the samples; a repeated report gets its own."""
        return str(uuid.uuid4()) if step.fresh_id else self.message_id

    def event(self, step: Step, at: datetime, event_id: str) -> EventSpec:
        ok = step.status == "Delivered"
        data: dict[str, Any] = {
            "messageId": self.message_id,
            "from": self.sender.lstrip("+"),
            "to": self.to,
            "deliveryStatus": step.status,
            "deliveryStatusDetails": _SMS_DETAILS.get(step.status, step.status),
            "deliveryAttempts": [
                {
                    "timestamp": iso(at),
                    "segmentsSucceeded": self.segments if ok else 0,
                    "segmentsFailed": 0 if ok else self.segments,
                }
            ],
            "receivedTimestamp": iso(at),
        }
        if self.tag is not None:
            data["tag"] = self.tag
        return EventSpec(
            event_id=event_id,
            event_type=events.SMS_DELIVERY_REPORT,
            subject=events.phone_subject(self.sender),
            event_time=at,
            data=data,
            message_id=self.message_id,
            status=step.status,
        )


@dataclass(frozen=True)
class EmailTarget:
    """One email recipient: events carry the operation id as messageId."""

    operation_id: str
    sender: str
    recipient: str

    def event_id(self, step: Step) -> str:
        return _new_id(step)

    def event(self, step: Step, at: datetime, event_id: str) -> EventSpec:
        data = self._engagement(step, at) if step.kind is StepKind.ENGAGEMENT else self._report(step, at)
        return EventSpec(
            event_id=event_id,
            event_type=events.EMAIL_ENGAGEMENT if step.kind is StepKind.ENGAGEMENT else events.EMAIL_DELIVERY_REPORT,
            subject=f"sender/{self.sender}/message/{self.operation_id}",
            event_time=at,
            data=data,
            message_id=self.operation_id,
            status=step.status,
        )

    def _report(self, step: Step, at: datetime) -> dict[str, Any]:
        data: dict[str, Any] = {
            "sender": self.sender,
            "recipient": self.recipient,
            "messageId": self.operation_id,
            "status": step.status,
            "deliveryStatusDetails": {"statusMessage": _EMAIL_DETAILS.get(step.status, step.status)},
            "deliveryAttemptTimestamp": iso(at),
        }
        if step.status != "Suppressed":  # the real service sends no internetMessageId for Suppressed
            data["internetMessageId"] = f"<{self.operation_id}@emulator.acs.local>"
        return data

    def _engagement(self, step: Step, at: datetime) -> dict[str, Any]:
        return {
            "sender": self.sender,
            "recipient": self.recipient,
            "messageId": self.operation_id,
            "internetMessageId": f"<{self.operation_id}@emulator.acs.local>",
            "userActionTimestamp": iso(at),
            "engagementContext": "https://example.com/link" if step.status == "click" else "",
            "userAgent": "Mozilla/5.0 (emulated mail client)",
            "engagementType": step.status,
        }


@dataclass(frozen=True)
class WhatsAppTarget:
    """One WhatsApp recipient: status updates carry the receipt messageId."""

    message_id: str
    channel_id: str
    to: str

    def event_id(self, step: Step) -> str:
        return _new_id(step)

    def event(self, step: Step, at: datetime, event_id: str) -> EventSpec:
        data: dict[str, Any] = {
            "messageId": self.message_id,
            "status": step.status,
            "channelType": "whatsapp",
            "from": self.channel_id,
            "to": self.to,
            "receivedTimestamp": iso(at),
        }
        if step.status == "Failed":
            code, message = step.error or (_WHATSAPP_ERROR["channelCode"], _WHATSAPP_ERROR["channelMessage"])
            data["error"] = {"channelCode": code, "channelMessage": message}
        return EventSpec(
            event_id=event_id,
            event_type=events.WHATSAPP_STATUS,
            subject=f"advancedMessage/{self.message_id}/status/{step.status}",
            event_time=at,
            data=data,
            message_id=self.message_id,
            status=step.status,
        )


def incoming_sms_id(at: datetime) -> str:
    """`Incoming_<yyyyMMddHHmmss><guid>`, the shape of inbound SMS message ids."""
    return f"Incoming_{at:%Y%m%d%H%M%S}{uuid.uuid4()}"


def sms_received(sender: str, to: str, message: str, at: datetime) -> EventSpec:
    """An inbound SMS to one of the app's numbers (STOP, START, HELP …)."""
    message_id = incoming_sms_id(at)
    data = {
        "messageId": message_id,
        "from": sender,
        "to": to,
        "message": message,
        "segmentCount": sms_segments(message),
        "receivedTimestamp": iso(at),
    }
    return EventSpec(str(uuid.uuid4()), events.SMS_RECEIVED, events.phone_subject(to), at, data, message_id)


def whatsapp_received(sender: str, channel_id: str, message: str, at: datetime) -> EventSpec:
    """An inbound WhatsApp text message to the app's channel registration."""
    message_id = str(uuid.uuid4())
    data = {
        "content": message,
        "messageId": message_id,
        "channelType": "whatsapp",
        "messageType": "text",
        "from": sender,
        "to": channel_id,
        "receivedTimestamp": iso(at),
    }
    subject = f"advancedMessage/sender/{sender}/recipient/{channel_id}"
    return EventSpec(str(uuid.uuid4()), events.WHATSAPP_RECEIVED, subject, at, data, message_id)
