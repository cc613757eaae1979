"""Turn raw bytes from a queue or HTTP body into a checked send request, or field errors.

Why a separate step from the models: some rules depend on settings (the sender allowlist, the
segment limit) and on libraries with their own opinions (phonenumbers, email-validator), and every
failure must come back as field errors that say what to fix, never as a crash.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import ValidationError

from shared.errors import FieldError, ValidationFailed
from shared.models import (
    MAX_EMAIL_BYTES,
    SEND_REQUEST_ADAPTER,
    AnyRequest,
    EmailRequest,
    SmsRequest,
    WhatsAppRequest,
)
from shared.segments import count_segments
from shared.settings import Channel, Settings

MAX_BODY_BYTES = 12 * 1024 * 1024


@dataclass(frozen=True)
class CheckedRequest:
    """A request that passed every rule, with the values the pipeline derives from it."""

    request: AnyRequest
    message_id: str
    sender: str
    segments: int

    @property
    def channel(self) -> Channel:
        return self.request.channel


def _pydantic_errors(exc: ValidationError) -> list[FieldError]:
    errors = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = [str(part) for part in err["loc"]]
        if loc and loc[0] in {c.value for c in Channel}:
            loc = loc[1:]  # the discriminator tag pydantic adds
        errors.append(FieldError(".".join(loc) or "$", err["msg"]))
    return errors


def content_id(body: bytes) -> str:
    """The id of a request sent without one: its content is its identity, so a redelivery, a
    poisoned copy and a re-scheduled copy all map to the same ledger row."""
    return "h-" + hashlib.sha256(body.strip()).hexdigest()[:40]


def parse_request(body: bytes | str) -> AnyRequest:
    """Decode JSON and apply the contract's structural rules."""
    raw = body.encode() if isinstance(body, str) else body
    if len(raw) > MAX_BODY_BYTES:
        raise ValidationFailed([FieldError("$", f"request is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}")])
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationFailed([FieldError("$", f"not valid JSON: {exc}")]) from exc
    if not isinstance(data, dict):
        raise ValidationFailed([FieldError("$", "must be a JSON object")])
    version = data.get("schemaVersion", 1)
    if version != 1:
        raise ValidationFailed([FieldError("schemaVersion", f"unsupported schema version {version!r}; use 1")])
    try:
        return SEND_REQUEST_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise ValidationFailed(_pydantic_errors(exc)) from exc


def _check_phone(field: str, number: str) -> list[FieldError]:
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return [FieldError(field, "must be an E.164 phone number: + then the country code and number, no spaces")]
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if e164 != number or not phonenumbers.is_possible_number(parsed):
        return [FieldError(field, "must be an E.164 phone number: + then the country code and number, no spaces")]
    return []


NOT_A_PHONE_NUMBER = "must be a phone number in E.164: + then the country code and number"


def canonical_recipient(channel: Channel, address: str, field: str = "address") -> str:
    """The form in which `channel` sends to `address`, for consent and erasure, which look recipients
    up by a hash of it. A send accepts only that form, but an operator may type a number with spaces
    ("+1 425 555 0122"): it is normalised here, since a hash of any other form would never match a
    send. Raises ValidationFailed for what no send could ever be addressed to."""
    address = address.strip()
    if channel == Channel.EMAIL:
        errors = _check_email(field, address)
        if errors:
            raise ValidationFailed(errors)
        return address
    try:
        parsed = phonenumbers.parse(address, None)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_possible_number(parsed):
        raise ValidationFailed([FieldError(field, NOT_A_PHONE_NUMBER)])
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def channel_of_address(address: str) -> Channel:
    """The channel family an address belongs to, for lookups that name no channel (erasure): email
    addresses have an @, the rest are phone numbers (SMS and WhatsApp use the same form)."""
    return Channel.EMAIL if "@" in address else Channel.SMS


def _check_email(field: str, address: str) -> list[FieldError]:
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        return [FieldError(field, f"must be an email address ({exc})")]
    return []


def _check_sender(request: AnyRequest, settings: Settings) -> tuple[str, list[FieldError]]:
    allowed = settings.senders.get(request.channel, ())
    if request.from_ is None:
        default = settings.default_sender(request.channel)
        if default is None:
            return "", [FieldError("from", f"no {request.channel} sender is configured")]
        return default, []
    if request.from_ not in allowed:
        return request.from_, [FieldError("from", "is not one of the configured sender identities")]
    return request.from_, []


def _check_content(request: AnyRequest, settings: Settings) -> tuple[int, list[FieldError]]:
    if isinstance(request, SmsRequest):
        info = count_segments(request.content.text)
        if info.segments > settings.sms_max_segments:
            return info.segments, [
                FieldError(
                    "content.text",
                    f"is {info.segments} {info.encoding} segments; the limit is {settings.sms_max_segments}",
                )
            ]
        return info.segments, []
    if isinstance(request, EmailRequest):
        errors = [] if request.content.text or request.content.html else [FieldError("content", "needs text or html")]
        for i, address in enumerate(request.content.reply_to or []):
            errors += _check_email(f"content.replyTo.{i}", address)
        if request.content.approximate_bytes() > MAX_EMAIL_BYTES:
            errors.append(FieldError("content", "email is larger than 10 MB including attachments"))
        return 1, errors
    if (request.content.text is None) == (request.content.template is None):
        return 1, [FieldError("content", "needs exactly one of text or template")]
    return 1, []


def check_request(request: AnyRequest, settings: Settings, message_id: str, now: datetime) -> CheckedRequest:
    """Apply the rules that need settings; raise ValidationFailed with every broken rule."""
    if isinstance(request, SmsRequest | WhatsAppRequest):
        errors = _check_phone("to", request.to)
    else:
        errors = _check_email("to", request.to)
    sender, sender_errors = _check_sender(request, settings)
    segments, content_errors = _check_content(request, settings)
    errors += sender_errors + content_errors
    if errors:
        raise ValidationFailed(errors)
    return CheckedRequest(request=request, message_id=message_id, sender=sender, segments=segments)
