"""Plain data shared by every part of the ACS emulator.

Why a module of its own: the HTTP handlers, the event dispatcher, the admin API and the in-process
`AcsEmulator` all speak about the same sends, outcomes and deliveries. Keeping the records here as
frozen dataclasses (with one `to_json` each) gives every view one spelling of every field.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

DEFAULT_TOPIC = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/local/providers/"
    "Microsoft.Communication/communicationServices/local-acs"
)


class Channel(StrEnum):
    """The three ACS messaging channels the emulator serves."""

    SMS = "sms"
    EMAIL = "email"
    WHATSAPP = "whatsapp"


class Final(StrEnum):
    """The last status the emulator intends a send to reach (the ground truth)."""

    DELIVERED = "Delivered"
    READ = "Read"
    FAILED = "Failed"
    BOUNCED = "Bounced"
    SUPPRESSED = "Suppressed"
    QUARANTINED = "Quarantined"
    FILTERED_SPAM = "FilteredSpam"
    NO_REPORT = "NoReport"
    REJECTED = "Rejected"


class EventSchema(StrEnum):
    """Which Event Grid delivery schema the webhook subscription uses."""

    EVENTGRID = "eventgrid"
    CLOUDEVENTS = "cloudevents"


class DataCasing(StrEnum):
    """Casing of event `data` keys: camelCase as in the Learn docs, PascalCase as in the spec samples."""

    CAMEL = "camel"
    PASCAL = "pascal"


class DeliveryOutcome(StrEnum):
    """How one event delivery to the webhook ended."""

    DELIVERED = "delivered"
    DEAD_LETTERED = "deadLettered"
    NO_WEBHOOK = "noWebhook"


def sha256_hex(text: str) -> str:
    """Hex SHA-256 of a UTF-8 string: how sends are compared without keeping content in the logs."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def iso(moment: datetime) -> str:
    """ISO 8601 with a `Z` suffix and microseconds, as Event Grid writes `eventTime`."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class SendRecord:
    """One accepted send to one recipient (a repeat of the same repeatability id is not a new record)."""

    seq: int
    channel: Channel
    to: str
    sender: str
    message_id: str
    content_sha256: str
    at: datetime
    tag: str | None = None
    operation_id: str | None = None
    repeatability_id: str | None = None
    content: str = field(default="", repr=False)

    def to_json(self, *, with_content: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "seq": self.seq,
            "channel": str(self.channel),
            "to": self.to,
            "from": self.sender,
            "tag": self.tag,
            "operationId": self.operation_id,
            "repeatabilityId": self.repeatability_id,
            "messageId": self.message_id,
            "contentSha256": self.content_sha256,
            "at": iso(self.at),
        }
        if with_content:
            body["content"] = self.content
        return body


@dataclass(frozen=True)
class TruthRecord:
    """What the emulator intends to happen to one send, for comparison with the app's own ledger."""

    channel: Channel
    to: str
    final: Final
    message_id: str | None
    at: datetime
    tag: str | None = None
    operation_id: str | None = None
    repeatability_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "channel": str(self.channel),
            "to": self.to,
            "final": str(self.final),
            "messageId": self.message_id,
            "tag": self.tag,
            "operationId": self.operation_id,
            "repeatabilityId": self.repeatability_id,
            "at": iso(self.at),
        }


@dataclass(frozen=True)
class DeliveryRecord:
    """The end of one event delivery (all attempts included), as the events log shows it."""

    event_id: str
    event_type: str
    subject: str
    message_id: str | None
    status: str | None
    outcome: DeliveryOutcome
    attempts: int
    http_statuses: tuple[int | None, ...]
    reason: str | None
    at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "eventId": self.event_id,
            "eventType": self.event_type,
            "subject": self.subject,
            "messageId": self.message_id,
            "status": self.status,
            "outcome": str(self.outcome),
            "attempts": self.attempts,
            "httpStatuses": list(self.http_statuses),
            "reason": self.reason,
            "at": iso(self.at),
        }


@dataclass(frozen=True)
class InboundRecord:
    """One simulated inbound message (SMS or WhatsApp) that was handed to the dispatcher."""

    channel: Channel
    sender: str
    to: str
    message_id: str
    event_id: str
    at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "channel": str(self.channel),
            "from": self.sender,
            "to": self.to,
            "messageId": self.message_id,
            "eventId": self.event_id,
            "at": iso(self.at),
        }
