"""The webhook validation handshake Event Grid runs before it delivers anything to a new subscription.

From "Webhook event delivery" (https://learn.microsoft.com/azure/event-grid/webhook-event-delivery)
and "Endpoint validation with CloudEvents schema"
(https://learn.microsoft.com/azure/event-grid/end-point-validation-cloud-events-schema):
- Event Grid schema: a POST of one `Microsoft.EventGrid.SubscriptionValidationEvent` with
  `aeg-event-type: SubscriptionValidation`; the endpoint proves ownership by answering 200 (202 is not
  accepted) with `{"validationResponse": "<validationCode>"}`, or by a GET of `validationUrl` later.
- CloudEvents: an `OPTIONS` request with `WebHook-Request-Origin: eventgrid.azure.net`; the endpoint
  agrees by answering with `WebHook-Allowed-Origin` set to that origin or `*` (the status is not relied on).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp

from devstack.acs.events import CONTENT_TYPES, DATA_VERSION, METADATA_VERSION
from devstack.acs.models import EventSchema, iso
from devstack.eventgrid.config import Subscription

VALIDATION_EVENT_TYPE = "Microsoft.EventGrid.SubscriptionValidationEvent"
ORIGIN = "eventgrid.azure.net"


def validation_event(topic: str, code: str, validation_url: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "topic": topic,
        "subject": "",
        "data": {"validationCode": code, "validationUrl": validation_url},
        "eventType": VALIDATION_EVENT_TYPE,
        "eventTime": iso(datetime.now(UTC)),
        "metadataVersion": METADATA_VERSION,
        "dataVersion": DATA_VERSION,
    }


async def validate(
    session: aiohttp.ClientSession, subscription: Subscription, schema: EventSchema, topic: str, validation_url: str
) -> str | None:
    """Run the handshake; None when the endpoint agreed, else why not (as the creation error says)."""
    try:
        if schema is EventSchema.CLOUDEVENTS:
            return await _abuse_protection(session, subscription)
        return await _validation_event(session, subscription, topic, validation_url)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return f"Webhook validation handshake failed for {subscription.endpoint}: {type(exc).__name__}."


async def _abuse_protection(session: aiohttp.ClientSession, subscription: Subscription) -> str | None:
    headers = {"WebHook-Request-Origin": ORIGIN, "WebHook-Request-Rate": "120"}
    async with session.options(subscription.endpoint, headers=headers) as response:
        allowed = response.headers.get("WebHook-Allowed-Origin", "")
    if allowed in (ORIGIN, "*"):
        return None
    return (
        f"Webhook validation handshake failed for {subscription.endpoint}: the OPTIONS response did not carry "
        f"WebHook-Allowed-Origin: {ORIGIN}."
    )


async def _validation_event(
    session: aiohttp.ClientSession, subscription: Subscription, topic: str, validation_url: str
) -> str | None:
    code = validation_url.rsplit("code=", 1)[-1]
    headers = {
        "Content-Type": CONTENT_TYPES[EventSchema.EVENTGRID],
        "aeg-event-type": "SubscriptionValidation",
        "aeg-subscription-name": subscription.name.upper(),
        "aeg-data-version": DATA_VERSION,
        "aeg-metadata-version": METADATA_VERSION,
    }
    body = json.dumps([validation_event(topic, code, validation_url)])
    async with session.post(subscription.endpoint, data=body, headers=headers) as response:
        text = await response.text()
        status = response.status
    if status == 200 and _echoed(text) == code:
        return None
    return (
        f"Webhook validation handshake failed for {subscription.endpoint}: it answered {status} without the "
        f"validation code (the subscription now waits for a GET of its validationUrl)."
    )


def _echoed(text: str) -> str | None:
    try:
        body = json.loads(text)
    except json.JSONDecodeError:
        return None
    return body.get("validationResponse") if isinstance(body, dict) else None
