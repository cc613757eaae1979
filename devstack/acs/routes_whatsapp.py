"""`POST /messages/notifications:send` and `GET /messages/channels/{channelId}/templates`: WhatsApp
(Advanced Messages) as azure-communication-messages calls them.

Why these rules: the SDK accepts only 202 with one receipt per `to`; idempotency is the
`Repeatability-Request-ID` header, and a repeat gets the original receipts (same messageIds) with
`Repeatability-Result: accepted` rather than a second send (acs-contract §5). Unlike SMS, a bad
recipient fails the whole request with a 400.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from devstack.acs.builders import WhatsAppTarget
from devstack.acs.core import CORE, EmulatorCore
from devstack.acs.models import Channel
from devstack.acs.outcomes import REJECTED, Plan, refused_by_meta, whatsapp_plan
from devstack.acs.responses import WHATSAPP_NUMBER, bad_request, canonical, json_response, read_json_object, require_str
from devstack.acs.store import SendFacts
from devstack.acs.templates import REENGAGEMENT, template_refusal, window_open

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
        core.accept(facts, _plan(core, body, channel_id, to), WhatsAppTarget(message_id, channel_id, to))
        receipts.append({"messageId": message_id, "to": to})
    return receipts


def _plan(core: EmulatorCore, body: dict[str, Any], channel_id: str, to: str) -> Plan:
    """What Meta does with it: refuse a template it will not send, or free text outside the 24-hour
    window (when the emulator enforces it); otherwise the simulated recipient decides."""
    if body.get("kind") == "template":
        error = template_refusal(core.templates, body)
    elif core.settings.service_window and not window_open(core.last_inbound(to, channel_id), datetime.now(UTC)):
        error = REENGAGEMENT
    else:
        error = None
    return whatsapp_plan(to) if error is None else refused_by_meta(error)


def _content(body: dict[str, Any]) -> str:
    """What the message says, without who it goes to: the basis of duplicate detection."""
    return canonical({key: value for key, value in body.items() if key != "to"})


async def list_templates(request: web.Request) -> web.Response:
    """One page of the channel's templates; `maxpagesize` pages them, `skip` (in `nextLink`) goes on."""
    core = request.app[CORE]
    items = [spec.to_json() for spec in core.templates.values()]
    size = _whole(request.query.get("maxpagesize"), len(items) or 1)
    skip = _whole(request.query.get("skip"), 0)
    body: dict[str, Any] = {"value": items[skip : skip + size]}
    if skip + size < len(items):
        channel_id = request.match_info["channel_id"]
        body["nextLink"] = f"{core.endpoints.get('endpoint', '')}/messages/channels/{channel_id}/templates?" + (
            f"maxpagesize={size}&skip={skip + size}"
        )
    return json_response(body)


def _whole(value: str | None, default: int) -> int:
    if value is None:
        return default
    if not value.isdigit() or (int(value) == 0 and default != 0):
        raise bad_request(f"not a valid page parameter: {value[:20]}")
    return int(value)
