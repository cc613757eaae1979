"""The custom topic's publish API: `POST /api/events?api-version=2018-01-01`, as the SDK calls it.

Why here: publishers must meet what Event Grid accepts and refuses before anything is delivered. From
"Publish events to Azure Event Grid custom topics using access keys"
(https://learn.microsoft.com/azure/event-grid/post-to-custom-topic): 200 on success, 400 when the
event data has an incorrect format, 401 for an invalid key, 413 when the array or an event exceeds
the size limits (1 MB per request); errors come as `{"error": {"code", "message", "details": [...]}}`.
A topic takes one input schema: the Event Grid schema (a JSON array, `application/json`) or
CloudEvents 1.0 (`application/cloudevents-batch+json`, or one event as `application/cloudevents+json`).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from devstack.acs.models import EventSchema

MAX_REQUEST_BYTES = 1024 * 1024
CLOUDEVENT_REQUIRED = ("id", "source", "type", "specversion")
EVENTGRID_REQUIRED = ("id", "subject", "eventType", "eventTime", "dataVersion")


class PublishRefused(Exception):
    """A publish request Event Grid would refuse: the status and the error body it would answer with."""

    def __init__(self, status: int, code: str, message: str, detail_code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail_code = detail_code or code

    def body(self) -> dict[str, Any]:
        detail = {"code": self.detail_code, "message": self.message}
        return {"error": {"code": self.code, "message": self.message, "details": [detail]}}


def bad_request(message: str, detail_code: str = "InputJsonInvalid") -> PublishRefused:
    return PublishRefused(400, "BadRequest", message, detail_code)


def parse(body: bytes, content_type: str, schema: EventSchema, topic: str) -> list[dict[str, Any]]:
    """The published events, checked; raises `PublishRefused` with what Event Grid would answer."""
    if len(body) > MAX_REQUEST_BYTES:
        raise PublishRefused(413, "RequestEntityTooLarge", "The maximum size (1048576) has been exceeded.")
    try:
        decoded = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}.") from exc
    single = content_type.split(";")[0].strip().lower() == "application/cloudevents+json"
    events = [decoded] if single and isinstance(decoded, dict) else decoded
    if not isinstance(events, list) or not events or not all(isinstance(e, dict) for e in events):
        raise bad_request("The request body must be a non-empty JSON array of event objects.")
    check = _check_cloudevent if schema is EventSchema.CLOUDEVENTS else _check_eventgrid_event
    for index, event in enumerate(events):
        check(event, index)
    if schema is EventSchema.EVENTGRID:
        return [{**event, "topic": topic} for event in events]
    return events


def _check_cloudevent(event: dict[str, Any], index: int) -> None:
    if "eventType" in event and "type" not in event:
        raise _wrong_schema("CloudEventV10", index)
    _require(event, CLOUDEVENT_REQUIRED, index)
    if event["specversion"] != "1.0":
        raise bad_request(f"Event at index {index}: specversion must be '1.0'.", "InvalidSpecVersion")


def _check_eventgrid_event(event: dict[str, Any], index: int) -> None:
    if "specversion" in event:
        raise _wrong_schema("EventGridEvent", index)
    _require(event, EVENTGRID_REQUIRED, index)
    if "data" not in event:
        message = f"Event at index {index}: the required property 'data' is missing."
        raise bad_request(message, "MissingRequiredProperty")
    try:
        datetime.fromisoformat(str(event["eventTime"]).replace("Z", "+00:00"))
    except ValueError as exc:
        raise bad_request(f"Event at index {index}: eventTime is not a date-time.", "InvalidEventTime") from exc


def _require(event: dict[str, Any], names: tuple[str, ...], index: int) -> None:
    for name in names:
        value = event.get(name)
        if not isinstance(value, str) or not value:
            raise bad_request(
                f"Event at index {index}: the required property '{name}' is missing or empty.",
                "MissingRequiredProperty",
            )


def _wrong_schema(expected: str, index: int) -> PublishRefused:
    return bad_request(
        f"This resource is configured to receive events in the '{expected}' schema. The JSON received does "
        f"not conform to the expected schema (event at index {index}).",
        "InputJsonInvalid",
    )
