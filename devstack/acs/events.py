"""ACS system events in the exact shapes Event Grid delivers them (acs-contract §7).

Why: the app's `record_event` function is written against real payloads, so the emulator builds the
same envelopes, subjects and data fields, in either delivery schema and either data-key casing. An
`EventSpec` is schema-neutral; `request_body` renders it at delivery time, so a change of schema or
casing through the admin API applies to events already scheduled.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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
# a CloudEvents subscription with batching on delivers arrays under the batch media type
CLOUDEVENTS_BATCH_CONTENT_TYPE = "application/cloudevents-batch+json; charset=utf-8"
# what `json.dumps` puts between array items, so a body built from `encoded` items is byte-identical
ARRAY_SEPARATOR = b", "


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
    """What to put on the wire for one event (the fixed parts of one delivery request).

    `batched` says the subscription has batching on (max events per batch above 1); it only changes
    the CloudEvents content type, since the Event Grid schema is an array either way.
    """

    schema: EventSchema
    casing: DataCasing
    topic: str
    subscription_name: str
    batched: bool = False


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


def encoded(spec: EventSpec, rendering: Rendering) -> bytes:
    """One event as the JSON bytes it takes up inside the delivered array (how batches are measured)."""
    return json.dumps(envelope(spec, rendering)).encode("utf-8")


def request_body(specs: Sequence[EventSpec], rendering: Rendering) -> bytes:
    """A JSON array of the events: one per request unless batching is on (the same bytes as
    `json.dumps` of the list, so a body's size is known from its items' `encoded` sizes)."""
    return b"[" + ARRAY_SEPARATOR.join(encoded(spec, rendering) for spec in specs) + b"]"


def content_type(rendering: Rendering) -> str:
    if rendering.batched and rendering.schema is EventSchema.CLOUDEVENTS:
        return CLOUDEVENTS_BATCH_CONTENT_TYPE
    return CONTENT_TYPES[rendering.schema]


def request_headers(specs: Sequence[EventSpec], rendering: Rendering, delivery_count: int) -> dict[str, str]:
    """The `aeg-*` headers Event Grid puts on every webhook delivery (acs-contract §8).

    Event Grid sends `aeg-event-type: Notification` for batches too. Which id `aeg-output-event-id`
    carries for a batch is not documented; the emulator uses the first event's.
    """
    return {
        "Content-Type": content_type(rendering),
        "aeg-event-type": "Notification",
        "aeg-subscription-name": rendering.subscription_name,
        "aeg-delivery-count": str(delivery_count),
        "aeg-data-version": DATA_VERSION,
        "aeg-metadata-version": METADATA_VERSION,
        "aeg-output-event-id": specs[0].event_id,
    }


def phone_subject(number: str) -> str:
    """`/phonenumber/15555555555`: the ACS number, digits only, with the leading slash of the samples
    (an alphanumeric sender ID is used as it is)."""
    digits = "".join(ch for ch in number if ch.isdigit())
    return "/phonenumber/" + (digits if number.lstrip("+").isdigit() else number)
