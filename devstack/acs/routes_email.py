"""`POST /emails:send` and `GET /emails/operations/{id}`: the email send and its long-running operation.

Why these details: azure-core's poller needs `Operation-Location` on the 202, reads the first status
from the 202 body, and waits `Retry-After` between polls (0 or missing would mean 30 s), so the
emulator answers `Retry-After: 1` and a relative location (acs-contract §4.2). The operation id is
the caller's `Operation-Id` when given; a repeat of it is the same operation, not a second send.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from aiohttp import web

from devstack.acs.builders import EmailTarget
from devstack.acs.core import CORE, EmulatorCore
from devstack.acs.models import Channel
from devstack.acs.outcomes import email_plan
from devstack.acs.responses import (
    ApiError,
    bad_request,
    canonical,
    is_guid,
    json_response,
    read_json_object,
    require_str,
)
from devstack.acs.store import EmailOperation, SendFacts

DEFAULT_API_VERSION = "2025-09-01"
_RECIPIENT_KINDS = ("to", "cc", "bcc")


async def send_email(request: web.Request) -> web.Response:
    core = request.app[CORE]
    body = await read_json_object(request)
    sender, addresses = _validated(body)
    chosen = request.headers.get("Operation-Id")
    if chosen is not None and not is_guid(chosen):
        raise bad_request("Operation-Id must be a GUID.", code="InvalidOperationId")
    operation_id = chosen or str(uuid.uuid4())
    if core.ledger.operation(operation_id) is None:
        _accept(core, body, sender, addresses, operation_id, chosen)
    api_version = request.query.get("api-version", DEFAULT_API_VERSION)
    headers = {
        "Operation-Location": f"/emails/operations/{operation_id}?api-version={api_version}",
        "Retry-After": "1",
    }
    return json_response({"id": operation_id, "status": "Running"}, status=202, headers=headers)


async def operation_status(request: web.Request) -> web.Response:
    core = request.app[CORE]
    operation_id = request.match_info["operation_id"]
    operation = core.ledger.operation(operation_id)
    if operation is None:
        raise ApiError(404, "NotFound", f"Operation {operation_id} was not found.")
    headers = {"Retry-After": "1"} if operation.running else None
    return json_response(operation.status_body(), headers=headers)


def _validated(body: dict[str, Any]) -> tuple[str, list[str]]:
    sender = require_str(body, "senderAddress")
    content = body.get("content")
    if not isinstance(content, dict) or not isinstance(content.get("subject"), str):
        raise bad_request("The content.subject field is required.")
    recipients = body.get("recipients")
    if not isinstance(recipients, dict) or not recipients.get("to"):
        raise bad_request("The recipients.to field is required.")
    addresses: list[str] = []
    for kind in _RECIPIENT_KINDS:
        for item in recipients.get(kind) or []:
            address = item.get("address") if isinstance(item, dict) else None
            if not isinstance(address, str) or "@" not in address:
                raise bad_request(f"Invalid email address in recipients.{kind}.")
            addresses.append(address)
    return sender, addresses


def _accept(
    core: EmulatorCore, body: dict[str, Any], sender: str, addresses: list[str], operation_id: str, chosen: str | None
) -> None:
    tracking = not body.get("userEngagementTrackingDisabled", False)
    content = canonical({key: value for key, value in body.items() if key != "recipients"})
    plans = [email_plan(address, tracking_enabled=tracking) for address in addresses]
    done_at = time.monotonic() + core.settings.effective_operation_delay
    failed = any(plan.operation_failed for plan in plans)
    core.ledger.add_operation(EmailOperation(operation_id, done_at, failed))
    for address, plan in zip(addresses, plans, strict=True):
        facts = SendFacts(Channel.EMAIL, address, sender, operation_id, content, None, operation_id, chosen)
        core.accept(facts, plan, EmailTarget(operation_id, sender, address))
