"""`POST /sms`: the SMS send endpoint exactly as azure-communication-sms 1.1.0 calls it.

Why these rules: the SDK accepts only 202, so per-recipient failures live inside the 202 body and a
207 is never returned (acs-contract §3.2). Repeatability is per recipient, keyed on the body's
`repeatabilityRequestId` and the recipient: a repeat gets the original result and is not a second
send, and two recipients under one id (the REST spec's own example, api-version 2021-03-07,
specification/communication/data-plane/Sms/stable/2021-03-07/examples/send.json) are two sends.
`repeatabilityFirstSent` "MUST be sent by clients to specify that a request is repeatable", as an
RFC 1123 date: an id without it, or with anything else, is refused for that recipient with 400 and
`repeatabilityResult: rejected`, as that example answers, and nothing is sent.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import phonenumbers
from aiohttp import web
from phonenumbers import PhoneNumberFormat

from devstack.acs.builders import SmsTarget, sms_segments
from devstack.acs.core import CORE, EmulatorCore
from devstack.acs.models import Channel
from devstack.acs.outcomes import REJECTED, sms_plan, without_reports
from devstack.acs.responses import ALPHANUMERIC_SENDER, E164, bad_request, json_response, read_json_object, require_str
from devstack.acs.store import SendFacts

MAX_RECIPIENTS = 100
MAX_MESSAGE = 2048
E164_FORMAT = PhoneNumberFormat.E164
INVALID_TO = "Invalid To phone number format."
INVALID_FIRST_SENT = (
    "Request sent with Invalid DateTime value for repeatability-first-sent. Expected is DateTime ,RFC1123 pattern."
)


def outgoing_message_id() -> str:
    """`Outgoing_<yyyyMMddHHmmss><guid>_noam`, the shape of real SMS message ids."""
    return f"Outgoing_{datetime.now(UTC):%Y%m%d%H%M%S}{uuid.uuid4()}_noam"


async def send_sms(request: web.Request) -> web.Response:
    core = request.app[CORE]
    body = await read_json_object(request)
    sender, recipients, message = _validated(body)
    options = body.get("smsSendOptions") or {}
    results = [_send_one(core, sender, message, options, recipient) for recipient in recipients]
    return json_response({"value": results}, status=202)


def _validated(body: dict[str, Any]) -> tuple[str, list[dict[str, Any]], str]:
    sender = require_str(body, "from")
    if not (E164.match(sender) or ALPHANUMERIC_SENDER.match(sender)):
        raise bad_request("Invalid From phone number format.")
    recipients = body.get("smsRecipients")
    if not isinstance(recipients, list) or not 1 <= len(recipients) <= MAX_RECIPIENTS:
        raise bad_request(f"smsRecipients must hold 1 to {MAX_RECIPIENTS} recipients.")
    if not all(isinstance(item, dict) and isinstance(item.get("to"), str) for item in recipients):
        raise bad_request("Every recipient needs a to field.")
    message = body.get("message")
    if not isinstance(message, str):
        raise bad_request("The message field is required.")
    if len(message) > MAX_MESSAGE:
        raise bad_request(f"The message is longer than {MAX_MESSAGE} characters.")
    return sender, recipients, message


def _send_one(
    core: EmulatorCore, sender: str, message: str, options: dict[str, Any], recipient: dict[str, Any]
) -> dict[str, Any]:
    to: str = recipient["to"]
    repeatability_id = recipient.get("repeatabilityRequestId")
    if repeatability_id is not None and not _is_rfc1123(recipient.get("repeatabilityFirstSent")):
        return {
            "to": to,
            "httpStatusCode": 400,
            "repeatabilityResult": "rejected",
            "errorMessage": INVALID_FIRST_SENT,
            "successful": False,
        }
    key = None if repeatability_id is None else f"{repeatability_id}|{to}"
    original: dict[str, Any] | None = core.ledger.remembered(Channel.SMS, key)
    if original is not None:
        return original
    plan = sms_plan(to) if _possible_number(to) else REJECTED
    if not options.get("enableDeliveryReport"):
        plan = without_reports(plan)  # the real service sends no report unless asked to
    tag = options.get("tag")
    if plan.rejected:
        result = {"to": to, "httpStatusCode": 400, "errorMessage": INVALID_TO, "successful": False}
        core.accept(SendFacts(Channel.SMS, to, sender, None, message, tag, None, repeatability_id), plan, None)
    else:
        message_id = outgoing_message_id()
        result = {"to": to, "messageId": message_id, "httpStatusCode": 202, "successful": True}
        if repeatability_id is not None:  # the spec's example answers it only to a repeatable request
            result = {**result, "repeatabilityResult": "accepted"}
        facts = SendFacts(Channel.SMS, to, sender, message_id, message, tag, None, repeatability_id)
        core.accept(facts, plan, SmsTarget(message_id, sender, to, sms_segments(message), tag))
    core.ledger.remember(Channel.SMS, key, result)
    return result


def _possible_number(to: str) -> bool:
    """E.164 with a length the country's plan allows: the spec's example refuses `+112345678901`
    (eleven digits after +1) with "Invalid To phone number format.", while `+11234567890` is sent."""
    if not E164.match(to):
        return False
    try:
        number = phonenumbers.parse(to)
    except phonenumbers.NumberParseException:
        return False
    # phonenumbers reads `+112345678901` as +1 with a national prefix 1 before 2345678901; ACS does not,
    # so a number must also be its own E.164 form.
    return phonenumbers.is_possible_number(number) and phonenumbers.format_number(number, E164_FORMAT) == to


def _is_rfc1123(value: Any) -> bool:
    """`Tue, 26 Mar 2019 16:06:51 GMT`: what the spec asks for and the SDK sends."""
    if not isinstance(value, str) or not value.endswith(" GMT"):
        return False
    try:
        parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return False
    return True
