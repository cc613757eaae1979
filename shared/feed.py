"""The status feed's event contract: one CloudEvent per ledger transition (issue 17).

Why: downstream systems (a CRM, an order service, a support desk) learn what happened to a message
from an Event Grid custom topic instead of polling the HTTP API. The event is CloudEvents 1.0
(https://learn.microsoft.com/azure/event-grid/cloud-event-schema): type
`ContactMessages.MessageStatusChanged`, subject `messages/<id>`, and `data` as `StatusChange` below.

Versioning is carried by `dataschema` (the URL of `schemas/message-status-changed.v1.json`), not by
the type name: fields may be added within v1 (consumers ignore what they do not know), so a
subscription's event-type filter never has to change for them; a breaking change gets a v2 schema
and a new `dataschema`, published beside v1 until subscribers have moved.

Event Grid keeps no order and delivers at least once
(https://learn.microsoft.com/azure/event-grid/delivery-and-retry), so every change carries its
per-message `sequence`, and the event id is derived from (message id, sequence): republishing the
same change (after a crash, or a replay) gives the same id, which is what subscribers dedupe by.

Never in an event: message content or a raw recipient address. The recipient is only ever the
masked form (`shared.privacy.mask`); the metadata is the producer's, which the send request
contract already limits to small non-PII values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from pydantic import ConfigDict, Field, TypeAdapter

from shared.models import Channel, Status
from shared.privacy import mask

EVENT_TYPE = "ContactMessages.MessageStatusChanged"
DATA_SCHEMA = "https://contact-messages.dev/schemas/message-status-changed.v1.json"
# CloudEvents `source`: with `id` it names the event uniquely; deployments may give their own.
DEFAULT_SOURCE = "/contact-messages"
_METADATA_VALUE = str | int | float | bool


@dataclass(frozen=True)
class StatusChange:
    """One ledger transition as subscribers see it (the CloudEvent's `data`, camelCase keys)."""

    __pydantic_config__ = ConfigDict(
        title="Contact Messages status change (data schema version 1)",
        field_title_generator=lambda name, info: info.alias or name,
    )

    message_id: Annotated[
        str, Field(alias="messageId", description="The message id (the producer's or the assigned one).")
    ]
    sequence: Annotated[
        int, Field(ge=1, description="1 for the first status of the message, +1 per transition; order by it.")
    ]
    status: Annotated[Status, Field(description="The status the message moved to.")]
    previous_status: Annotated[
        Status | None, Field(alias="previousStatus", description="The status before; null for the first one.")
    ]
    channel: Channel
    recipient_masked: Annotated[
        str, Field(alias="recipientMasked", description="The recipient, masked (`+1******0100`, `a***@e***.com`).")
    ]
    changed_at: Annotated[datetime, Field(alias="changedAt", description="When the transition happened (UTC).")]
    reason: Annotated[
        str | None, Field(description="Why it moved (a failure code, an expiry), when the status alone does not say.")
    ] = None
    correlation_id: Annotated[
        str | None, Field(alias="correlationId", description="The send request's correlationId.")
    ] = None
    metadata: Annotated[
        Mapping[str, _METADATA_VALUE], Field(description="The send request's metadata, as it was sent.")
    ] = field(default_factory=dict)
    segments: Annotated[int | None, Field(ge=0, description="Billed segments (SMS), when known.")] = None
    cost_estimate: Annotated[
        float | None,
        Field(alias="costEstimate", description="Estimated cost from the configured price table, when known."),
    ] = None

    def __post_init__(self) -> None:
        if self.sequence < 1:
            raise ValueError("sequence starts at 1")
        if self.changed_at.tzinfo is None:
            raise ValueError("changed_at must be time-zone aware")
        if "*" not in self.recipient_masked:
            # a guard at the one place a raw address could slip into the feed
            raise ValueError("recipient_masked must be masked (use StatusChange.masking)")

    @staticmethod
    def masking(recipient: str, **fields: Any) -> StatusChange:
        """A change built from the raw recipient, which is masked here and never kept."""
        return StatusChange(recipient_masked=mask(recipient), **fields)

    @property
    def event_id(self) -> str:
        """Deterministic: the same transition always has the same id."""
        return event_id(self.message_id, self.sequence)


STATUS_CHANGE_ADAPTER: TypeAdapter[StatusChange] = TypeAdapter(StatusChange)


def event_id(message_id: str, sequence: int) -> str:
    """The CloudEvent id of a message's `sequence`-th status. The sequence is digits only, so the id
    splits back at its last `:` into exactly one (message id, sequence): no two changes share an id."""
    return f"{message_id}:{sequence}"


def subject(message_id: str) -> str:
    return f"messages/{message_id}"


def data_of(change: StatusChange) -> dict[str, Any]:
    """The event's `data`: JSON-ready, camelCase, every field present (null when unknown)."""
    data: dict[str, Any] = STATUS_CHANGE_ADAPTER.dump_python(change, by_alias=True, mode="json")
    return data


def cloud_event(change: StatusChange, source: str = DEFAULT_SOURCE) -> dict[str, Any]:
    """The change as a CloudEvents 1.0 JSON object, ready for `EventGridPublisherClient.send`."""
    data = data_of(change)
    return {
        "specversion": "1.0",
        "id": change.event_id,
        "source": source,
        "type": EVENT_TYPE,
        "subject": subject(change.message_id),
        "time": data["changedAt"],
        "dataschema": DATA_SCHEMA,
        "datacontenttype": "application/json",
        "data": data,
    }


def status_change_json_schema() -> dict[str, Any]:
    """The published JSON Schema of the event's `data`, generated from `StatusChange`."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": DATA_SCHEMA,
        **STATUS_CHANGE_ADAPTER.json_schema(by_alias=True),
    }
