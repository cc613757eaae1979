"""ACS system events in the exact shapes Event Grid delivers them (acs-contract §7).

Why: the app's `record_event` function is written against real payloads, so the emulator builds the
same envelopes, subjects and data fields, in either delivery schema and either data-key casing. An
`EventSpec` is schema-neutral; `render` turns it into the request body at delivery time, so a
change of schema or casing through the admin API applies to events already scheduled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from devstack.acs.models import DataCasing, EventSchema, iso

SMS_DELIVERY_REPORT = "Microsoft.Communication.SMSDeliveryReportReceived"
SMS_RECEIVED = "Microsoft.Communication.SMSReceived"
EMAIL_DELIVERY_REPORT = "Microsoft.Communication.EmailDeliveryReportReceived"
EMAIL_ENGAGEMENT = "Microsoft.Communication.EmailEngagementTrackingReportReceived"
WHATSAPP_STATUS = "Microsoft.Communication.AdvancedMessageDeliveryStatusUpdated"
WHATSAPP_RECEIVED = "Microsoft.Communication.AdvancedMessageReceived"

DATA_VERSION = "1.0"
METADATA_VERSION = "1"
CONTENT_TYPES = {
    EventSchema.EVENTGRID: "application/json; charset=utf-8",
    EventSchema.CLOUDEVENTS: "application/cloudevents+json; charset=utf-8",
}


@dataclass(frozen=True)
class EventSpec:
    """One event before rendering: its identity, its camelCase data and what it is about."""

    event_id: str
    event_type: str
    subject: str
    event_time: datetime
    data: dict[str, Any]
    message_id: str | None = None
    status: str | None = None


@dataclass(frozen=True)
class Rendering:
    """What to put on the wire for one event (the fixed parts of one delivery request)."""

    schema: EventSchema
    casing: DataCasing
    topic: str
    subscription_name: str


def pascal_keys(value: Any) -> Any:
    """Upper-case the first letter of every dict key, recursively (the spec samples' casing)."""
    if isinstance(value, dict):
        return {key[:1].upper() + key[1:]: pascal_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [pascal_keys(item) for item in value]
    return value


def envelope(spec: EventSpec, rendering: Rendering) -> dict[str, Any]:
    """The event as one element of the delivered JSON array."""
    data = pascal_keys(spec.data) if rendering.casing is DataCasing.PASCAL else spec.data
    if rendering.schema is EventSchema.CLOUDEVENTS:
        return {
            "id": spec.event_id,
            "source": rendering.topic,
            "subject": spec.subject,
            "type": spec.event_type,
            "time": iso(spec.event_time),
            "specversion": "1.0",
            "data": data,
        }
    return {
        "id": spec.event_id,
        "topic": rendering.topic,
        "subject": spec.subject,
        "data": data,
        "eventType": spec.event_type,
        "dataVersion": DATA_VERSION,
        "metadataVersion": METADATA_VERSION,
        "eventTime": iso(spec.event_time),
    }


def request_body(spec: EventSpec, rendering: Rendering) -> bytes:
    """A JSON array of one event: Event Grid delivers one event per request unless batching is on."""
    return json.dumps([envelope(spec, rendering)]).encode("utf-8")


def request_headers(spec: EventSpec, rendering: Rendering, delivery_count: int) -> dict[str, str]:
    """The `aeg-*` headers Event Grid puts on every webhook delivery (acs-contract §8)."""
    return {
        "Content-Type": CONTENT_TYPES[rendering.schema],
        "aeg-event-type": "Notification",
        "aeg-subscription-name": rendering.subscription_name,
        "aeg-delivery-count": str(delivery_count),
        "aeg-data-version": DATA_VERSION,
        "aeg-metadata-version": METADATA_VERSION,
        "aeg-output-event-id": spec.event_id,
    }


def phone_subject(number: str) -> str:
    """`/phonenumber/15555555555`: the ACS number, digits only, with the leading slash of the samples
    (an alphanumeric sender ID is used as it is)."""
    digits = "".join(ch for ch in number if ch.isdigit())
    return "/phonenumber/" + (digits if number.lstrip("+").isdigit() else number)
