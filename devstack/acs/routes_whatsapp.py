"""`POST /messages/notifications:send`: WhatsApp (Advanced Messages) as azure-communication-messages calls it.

Why these rules: the SDK accepts only 202 with one receipt per `to`; idempotency is the
`Repeatability-Request-ID` header, and a repeat gets the original receipts (same messageIds) with
`Repeatability-Result: accepted` rather than a second send (acs-contract §5). Unlike SMS, a bad
recipient fails the whole request with a 400.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from devstack.acs.builders import WhatsAppTarget
from devstack.acs.core import CORE, EmulatorCore
from devstack.acs.models import Channel
from devstack.acs.outcomes import REJECTED, whatsapp_plan
from devstack.acs.responses import WHATSAPP_NUMBER, bad_request, canonical, json_response, read_json_object, require_str
from devstack.acs.store import SendFacts

KINDS = frozenset({"text", "image", "image_v0", "document", "video", "audio", "template"})
INVALID_TO = "Invalid To phone number format."


async def send_notification(request: web.Request) -> web.Response:
    core = request.app[CORE]
    body = await read_json_object(request)
    channel_id, recipients = _validated(body)
    key = request.headers.get("Repeatability-Request-ID")
    receipts: list[dict[str, str]] | None = core.ledger.remembered(Channel.WHATSAPP, key)
    if receipts is None:
        _reject_invalid(core, body, channel_id, recipients, key)
        receipts = _accept(core, body, channel_id, recipients, key)
        core.ledger.remember(Channel.WHATSAPP, key, receipts)
    return json_response({"receipts": receipts}, status=202, headers={"Repeatability-Result": "accepted"})


def _validated(body: dict[str, Any]) -> tuple[str, list[str]]:
    channel_id = require_str(body, "channelRegistrationId")
    if body.get("kind") not in KINDS:
        raise bad_request(f"kind must be one of {', '.join(sorted(KINDS))}.")
    recipients = body.get("to")
    if not isinstance(recipients, list) or not recipients or not all(isinstance(to, str) for to in recipients):
        raise bad_request("The to field must list at least one recipient.")
    return channel_id, recipients


def _reject_invalid(
    core: EmulatorCore, body: dict[str, Any], channel_id: str, recipients: list[str], key: str | None
) -> None:
    """Fail the whole request if any recipient is malformed or a simulated rejection (`…06`)."""
    invalid = [to for to in recipients if not WHATSAPP_NUMBER.match(to) or whatsapp_plan(to).rejected]
    if not invalid:
        return
    content = _content(body)
    for to in invalid:
        core.accept(SendFacts(Channel.WHATSAPP, to, channel_id, None, content, None, None, key), REJECTED, None)
    raise bad_request(INVALID_TO)


def _accept(
    core: EmulatorCore, body: dict[str, Any], channel_id: str, recipients: list[str], key: str | None
) -> list[dict[str, str]]:
    content = _content(body)
    receipts: list[dict[str, str]] = []
    for to in recipients:
        message_id = str(uuid.uuid4())
        facts = SendFacts(Channel.WHATSAPP, to, channel_id, message_id, content, None, None, key)
        core.accept(facts, whatsapp_plan(to), WhatsAppTarget(message_id, channel_id, to))
        receipts.append({"messageId": message_id, "to": to})
    return receipts


def _content(body: dict[str, Any]) -> str:
    """What the message says, without who it goes to: the basis of duplicate detection."""
    return canonical({key: value for key, value in body.items() if key != "to"})
