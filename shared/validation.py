"""Turn raw bytes from a queue or HTTP body into a checked send request, or field errors.

Why a separate step from the models: some rules depend on settings (the sender allowlist, the
segment limit) and on libraries with their own opinions (phonenumbers, email-validator), and every
failure must come back as field errors that say what to fix, never as a crash.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import ValidationError

from shared.errors import FieldError, ValidationFailed
from shared.models import (
    MAX_EMAIL_BYTES,
    MESSAGE_ID_PATTERN,
    SEND_REQUEST_ADAPTER,
    AnyFallback,
    AnyRequest,
    Channel,
    EmailRequest,
    SmsRequest,
    WhatsAppRequest,
)
from shared.segments import count_segments
from shared.settings import Settings

MAX_BODY_BYTES = 12 * 1024 * 1024
# The deepest legitimate request is 4 levels (request > content > attachments > attachment); the limit
# leaves room, and refuses `[[[[...` long before Python's recursion limit is near.
MAX_JSON_DEPTH = 10
# int64 has 19 digits: a longer number is no value the contract has, and converting 5,000 digits would
# raise (Python's int conversion limit) or cost quadratic time.
MAX_NUMBER_CHARS = 20
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_FIELD_NAME = re.compile(r"[A-Za-z]{1,32}")


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


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _path_part(part: object) -> str:
    """One step of a field path. An unknown key is the producer's text: shortened and made printable,
    since field paths go back in answers and into logs (a 1 MB key or one with CR/LF must not)."""
    text = _UNPRINTABLE.sub("?", str(part))
    return text if len(text) <= 40 else text[:37] + "..."


_CHANNEL_TAGS = frozenset(c.value for c in Channel)


def _pydantic_errors(exc: ValidationError) -> list[FieldError]:
    errors = []
    for err in exc.errors(include_input=False, include_url=False)[:50]:
        parts = list(err["loc"])
        # The discriminator tags pydantic adds: the request's own, and each fallback entry's (after its index).
        loc = [
            _path_part(part)
            for i, part in enumerate(parts)
            if not (part in _CHANNEL_TAGS and (i == 0 or isinstance(parts[i - 1], int)))
        ]
        errors.append(FieldError(".".join(loc) or "$", err["msg"]))
    return errors


class _Refused(ValueError):
    """A JSON text that `json` would accept but the contract does not (raised from its hooks)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) == len(pairs):
        return data
    repeated = next(key for key, n in Counter(key for key, _ in pairs).items() if n > 1)
    # Which key, when it looks like a field name; anything else may be content and stays out of errors.
    shown = f' ("{repeated}")' if _FIELD_NAME.fullmatch(repeated) else ""
    raise _Refused(f"an object repeats a key{shown}; each key may appear once")


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number (RFC 8259)")


def _bounded_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _Refused(f"a number has {len(text)} digits; at most {MAX_NUMBER_CHARS - 1} are allowed")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if len(text) > 64 or not math.isfinite(value):
        raise _Refused("a number is out of range for a 64-bit float")
    return value


def _walk_problem(data: Any) -> str | None:
    """The first structural problem `json` lets through: nesting too deep, or a string or key with an
    unpaired UTF-16 surrogate (a `\\ud800` escape), which no storage or provider can encode."""
    pending: list[tuple[Any, int]] = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict | list) and depth > MAX_JSON_DEPTH:
            return f"nested deeper than {MAX_JSON_DEPTH} levels"
        if isinstance(value, dict):
            pending += [(key, depth) for key in value] + [(item, depth + 1) for item in value.values()]
        elif isinstance(value, list):
            pending += [(item, depth + 1) for item in value]
        elif isinstance(value, str) and _LONE_SURROGATE.search(value):
            return "a string has an unpaired UTF-16 surrogate (for example \\ud800 alone); it is not text"
    return None


def load_json(body: bytes | str) -> Any:
    """Strict JSON (RFC 8259, UTF-8): whatever the bytes, this returns a value or raises ValidationFailed,
    never RecursionError, a conversion error or a value that cannot be stored (NaN, Infinity, a number
    beyond int64/float64, a lone surrogate, a repeated key, nesting deeper than MAX_JSON_DEPTH)."""
    raw = body.encode("utf-8", errors="surrogatepass") if isinstance(body, str) else body
    if len(raw) > MAX_BODY_BYTES:
        raise ValidationFailed([FieldError("$", f"request is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationFailed([FieldError("$", f"not UTF-8 text (invalid byte at offset {exc.start})")]) from None
    try:
        data = json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_constant=_no_constant,
            parse_int=_bounded_int,
            parse_float=_finite_float,
        )
    except RecursionError:
        raise ValidationFailed([FieldError("$", f"nested deeper than {MAX_JSON_DEPTH} levels")]) from None
    except _Refused as exc:
        raise ValidationFailed([FieldError("$", str(exc))]) from None
    except ValueError as exc:  # json.JSONDecodeError: says where, never what
        raise ValidationFailed([FieldError("$", f"not valid JSON: {exc}")]) from None
    problem = _walk_problem(data)
    if problem is not None:
        raise ValidationFailed([FieldError("$", problem)])
    return data


def parse_request(body: bytes | str) -> AnyRequest:
    """Decode JSON and apply the contract's structural rules."""
    data = load_json(body)
    if not isinstance(data, dict):
        raise ValidationFailed([FieldError("$", "must be a JSON object")])
    version = data.get("schemaVersion", 1)
    if type(version) is not int or version != 1:  # `true` and `1.0` equal 1 in Python, not in the contract
        shown = repr(version) if isinstance(version, int | float | bool | None) else type(version).__name__
        raise ValidationFailed([FieldError("schemaVersion", f"unsupported schema version {shown[:24]}; use 1")])
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
    """Apply the rules that need settings; raise ValidationFailed with every broken rule (a fallback's
    too: each alternative is checked now as the request it will become)."""
    if isinstance(request, SmsRequest | WhatsAppRequest):
        errors = _check_phone("to", request.to)
    else:
        errors = _check_email("to", request.to)
    sender, sender_errors = _check_sender(request, settings)
    segments, content_errors = _check_content(request, settings)
    errors += sender_errors + content_errors + _check_fallback(request, settings, message_id, now)
    if errors:
        raise ValidationFailed(errors)
    return CheckedRequest(request=request, message_id=message_id, sender=sender, segments=segments)


# -- channel fallback -------------------------------------------------------------------------------

_FALLBACK_SUFFIX = re.compile(r"^(?P<stem>.+)\.fb(?P<n>[1-9][0-9]{0,2})$")


def fallback_id(parent_id: str) -> str:
    """The id of the message sent in place of `parent_id` (deterministic, so a chain is spawned once):
    `<id>.fb1` for a first alternative, then `.fb2`, `.fb3`; a hash-derived `fb-<40 hex>` when that
    would not be a valid id (longer than 128 characters)."""
    match = _FALLBACK_SUFFIX.match(parent_id)
    candidate = f"{match['stem']}.fb{int(match['n']) + 1}" if match else f"{parent_id}.fb1"
    if re.fullmatch(MESSAGE_ID_PATTERN, candidate):
        return candidate
    return "fb-" + hashlib.sha256(f"fallback:{parent_id}".encode()).hexdigest()[:40]


def derived_content(request: AnyRequest, entry: AnyFallback) -> dict[str, Any] | None:
    """The content an alternative without its own takes from the message it replaces: SMS from SMS,
    WhatsApp or email text; WhatsApp text from SMS or WhatsApp text; email (a subject is needed) only
    from an email. None when it cannot be derived (a WhatsApp template, an email without text)."""
    if entry.channel == Channel.EMAIL:
        is_email = isinstance(request, EmailRequest)
        return request.content.model_dump(by_alias=True, exclude_none=True) if is_email else None
    if entry.channel == Channel.WHATSAPP and isinstance(request, EmailRequest):
        return None
    text = request.content.text
    return {"text": text} if text else None


def child_request(parent: AnyRequest, child_id: str) -> AnyRequest:
    """The request of `parent`'s first alternative: its channel, address, sender and content (or content
    derived from the parent's); the parent's purpose, correlation id, metadata, delivery, priority and
    expiry; the alternatives left, with the same `fallbackOn`, as its own fallback.
    Raises ValidationFailed (fields named as in the parent: `fallback.0...`)."""
    assert parent.fallback, "a request without fallback has no child"
    entry, rest = parent.fallback[0], parent.fallback[1:]
    inherited = parent.model_dump(
        by_alias=True,
        exclude_none=True,
        mode="json",
        include={"purpose", "expires_at", "correlation_id", "metadata", "delivery", "priority"},
    )
    content = entry.content.model_dump(by_alias=True, exclude_none=True) if entry.content else None
    content = content or derived_content(parent, entry)
    if content is None:
        needed = f"is needed: {entry.channel} content cannot be derived from a {parent.channel} message like this one"
        raise ValidationFailed([FieldError("fallback.0.content", needed)])
    data = {**inherited, "id": child_id, "channel": entry.channel.value, "to": entry.to, "content": content}
    data |= {"from": entry.from_} if entry.from_ else {}
    if rest:
        data["fallback"] = [e.model_dump(by_alias=True, exclude_none=True, mode="json") for e in rest]
        data["fallbackOn"] = [t.value for t in parent.fallback_triggers]
    try:
        return SEND_REQUEST_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise ValidationFailed(_in_fallback(_pydantic_errors(exc))) from None


def _in_fallback(errors: list[FieldError]) -> list[FieldError]:
    """A child's errors named as fields of its parent: its own fields are the parent's first entry's
    (`fallback.0.to`), its own alternatives the parent's next ones (`fallback.0` → `fallback.1`)."""
    renamed = []
    for error in errors:
        head, _, tail = error.field.partition(".")
        index, _, rest = tail.partition(".")
        if head == "fallback" and index.isdigit():
            field = ".".join(p for p in ("fallback", str(int(index) + 1), rest) if p)
        else:
            field = f"fallback.0.{error.field}" if error.field != "$" else "fallback.0"
        renamed.append(FieldError(field, error.message))
    return renamed


def _check_fallback(request: AnyRequest, settings: Settings, message_id: str, now: datetime) -> list[FieldError]:
    """Each alternative checked as the request it becomes (its own alternatives in turn, recursively)."""
    if not request.fallback:
        return []
    child_id = fallback_id(message_id)
    try:
        child = child_request(request, child_id)
    except ValidationFailed as exc:
        return exc.errors
    try:
        check_request(child, settings, child_id, now)
    except ValidationFailed as exc:
        return _in_fallback(exc.errors)
    return []
