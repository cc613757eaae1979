"""Normalise ACS events from Event Grid (either schema, either casing) into one model.

Why: real payloads mix camelCase and PascalCase data keys (`Tag`/`tag`, `deliveryAttemptTimeStamp`),
status values arrive in any case, and CloudEvents envelopes differ from Event Grid ones. Everything
downstream sees `AcsEvent` only. Malformed input raises `MalformedEvent` with a reason, and only
that: `data` is the provider's, so every field is checked for its type here (a tag that is a number,
`segmentsFailed: "x"`, an `error` that is a string), and every value that becomes part of a table key
is checked against the characters table keys forbid. Addresses come out in the form sends use.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from shared.clock import iso
from shared.errors import MalformedEvent, ValidationFailed
from shared.models import MESSAGE_ID_PATTERN, Channel, Status
from shared.privacy import acs_address
from shared.schema import event_row_key

PREFIX = "microsoft.communication."

# The ACS event types we handle, as Event Grid names them. They equal azure-eventgrid's
# `SystemEventNames.Acs*EventName` values; tests/shared/test_event_names.py holds them to it, so the
# app needs no Azure SDK outside shared/adapters for six strings.
SMS_DELIVERY_REPORT = "Microsoft.Communication.SMSDeliveryReportReceived"
SMS_RECEIVED = "Microsoft.Communication.SMSReceived"
EMAIL_DELIVERY_REPORT = "Microsoft.Communication.EmailDeliveryReportReceived"
EMAIL_ENGAGEMENT = "Microsoft.Communication.EmailEngagementTrackingReportReceived"
WHATSAPP_STATUS = "Microsoft.Communication.AdvancedMessageDeliveryStatusUpdated"
WHATSAPP_RECEIVED = "Microsoft.Communication.AdvancedMessageReceived"

# Table keys may not hold / \ # ? or control characters (U+0000-U+001F, U+007F-U+009F), and are at
# most 1 KiB. Learn: "Understanding the Table service data model", "Characters disallowed in key
# fields". Provider ids become keys (and part of the due index's RowKey), so they are held well under it.
_KEY_FORBIDDEN = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")
MAX_PROVIDER_ID_CHARS = 256
_OUR_ID = re.compile(MESSAGE_ID_PATTERN)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class EventKind(StrEnum):
    REPORT = "report"
    ENGAGEMENT = "engagement"
    INBOUND = "inbound"


@dataclass(frozen=True)
class Envelope:
    """The schema-independent envelope: Event Grid `topic`/`eventType` or CloudEvents `source`/`type`."""

    id: str
    topic: str
    subject: str
    event_type: str
    event_time: str
    data: Mapping[str, Any]


@dataclass(frozen=True)
class AcsEvent:
    channel: Channel
    kind: EventKind
    event_type: str
    provider_message_id: str
    raw_status: str
    status: Status | None
    event_time: str
    detail: str
    tag: str | None = None
    sender: str | None = None
    recipient: str | None = None
    text: str | None = None
    suppress_recipient: bool = False

    @property
    def key(self) -> str:
        """The event's deterministic row key: the same report delivered twice has the same key."""
        kind = f"{self.kind.value}:{self.detail}" if self.kind == EventKind.ENGAGEMENT else self.kind.value
        return event_row_key(self.provider_message_id, kind, self.raw_status, self.event_time)


# How deep the fields we read lie (data.deliveryAttempts[i].segmentsFailed is the deepest): below
# it nothing is read, so nothing is walked, and data nested 10,000 deep costs no recursion.
READ_DEPTH = 4


def lower_keys(value: Any, depth: int = READ_DEPTH) -> Any:
    """Data keys case-insensitively: lower-case every key down to the depth we read."""
    if depth <= 0:
        return value
    if isinstance(value, Mapping):
        return {str(k).lower(): lower_keys(v, depth - 1) for k, v in value.items()}
    if isinstance(value, list):
        return [lower_keys(v, depth - 1) for v in value]
    return value


def _clip(value: Any, depth: int) -> Any:
    if isinstance(value, int) and abs(value) >= MAX_COUNT**200:  # Python will not print 4,300+ digits
        return f"<an integer of about {int(value.bit_length() * 0.30103)} digits>"
    if isinstance(value, Mapping):
        return {str(k): _clip(v, depth - 1) for k, v in value.items()} if depth else "<nested deeper>"
    if isinstance(value, list | tuple):
        return [_clip(v, depth - 1) for v in value] if depth else "<nested deeper>"
    return value


def stable_json(value: Any) -> str:
    """The same JSON text for the same value: sorted keys, ASCII only (lone surrogates escaped), and
    nesting below 64 levels replaced by a marker, so that no payload can exhaust the stack."""
    return json.dumps(_clip(value, 64), sort_keys=True, ensure_ascii=True, default=str)


def normalise_time(value: Any, fallback: str) -> str:
    """ISO 8601 UTC with microseconds, whatever precision or offset the source used."""
    if not isinstance(value, str) or not value.strip():
        value = fallback
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    if "." in text:  # .NET writes 7 fractional digits; Python takes at most 6
        head, _, rest = text.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        offset = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{offset}"
    try:
        moment = datetime.fromisoformat(text)
        return iso(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    except (ValueError, OverflowError) as exc:  # year 1 at +05:00 overflows when moved to UTC
        raise MalformedEvent(f"unreadable time {value[:100]!r}") from exc


# -- typed reads of the provider's `data` ---------------------------------------------------------


def _text(data: Mapping[str, Any], key: str) -> str | None:
    """An optional string field; any other JSON type is malformed. JSON may carry lone surrogates,
    which no UTF-8 request can: they become U+FFFD, so the text can be stored."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    raise MalformedEvent(f"data.{key} is a {type(value).__name__}, not a string")


def _required(data: Mapping[str, Any], key: str) -> str:
    value = _text(data, key)
    if not value or not value.strip():
        raise MalformedEvent(f"data.{key} is missing")
    return value


def _key_safe(value: str, field: str) -> str:
    if len(value) > MAX_PROVIDER_ID_CHARS:
        raise MalformedEvent(f"{field} is longer than {MAX_PROVIDER_ID_CHARS} characters")
    if _KEY_FORBIDDEN.search(value) or "\ufffd" in value:  # U+FFFD: was a lone surrogate, or is junk
        raise MalformedEvent(f"{field} holds a character table keys forbid")
    return value


def _provider_id(data: Mapping[str, Any]) -> str:
    return _key_safe(_required(data, "messageid"), "data.messageId")


MAX_COUNT = 10**18  # beyond any real count, and short enough to print (Python refuses 4,300+ digits)


def _count(value: Any, field: str) -> int:
    """A segment count in any form JSON writers use: 1, 1.0, "1"; absent is 0."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise MalformedEvent(f"{field} is a boolean, not a count")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip()[:19])
    if isinstance(value, int) and 0 <= value < MAX_COUNT:
        return value
    raise MalformedEvent(f"{field} is not a count")


def _objects(data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise MalformedEvent(f"data.{key} is not a list of objects")
    return value


def _our_tag(data: Mapping[str, Any]) -> str | None:
    """The tag, when it can be one of our message ids. A tag of another sender (or of another type)
    is not an error: the report is matched by its provider id instead."""
    tag = data.get("tag")
    return tag if isinstance(tag, str) and _OUR_ID.fullmatch(tag) else None


def _detail(value: Any) -> str:
    """A free-text detail: a string, or the statusMessage/channel fields of an object."""
    if value is None:
        return ""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, Mapping):
        parts = [value.get(k) for k in ("statusmessage", "channelcode", "channelmessage")]
        text = " ".join(p if isinstance(p, str) else str(_count(p, "an error code")) for p in parts if p is not None)
        return _LONE_SURROGATE.sub("\ufffd", text.strip())
    raise MalformedEvent(f"a detail is a {type(value).__name__}, not a string or an object")


def _address(channel: Channel, raw: str, field: str) -> str:
    try:
        return acs_address(channel, raw, field)
    except ValidationFailed as exc:
        raise MalformedEvent(f"{field} is not an address a send could use") from exc


def derived_id(data: Mapping[str, Any]) -> str:
    """A deterministic id for an inbound message ACS gave none (Microsoft's published
    AdvancedMessageReceived samples have no messageId): the same data delivered again, in either
    casing, gets the same id, so it is recorded once."""
    canonical = stable_json(data)
    return "derived-" + hashlib.sha256(canonical.encode()).hexdigest()[:40]


_SMS_STATUS = {"delivered": Status.DELIVERED, "failed": Status.FAILED}
_EMAIL_STATUS = {
    "delivered": Status.DELIVERED,
    "expanded": None,  # a distribution list was expanded; members get their own reports
    "bounced": Status.FAILED,
    "failed": Status.FAILED,
    "filteredspam": Status.FAILED,
    "quarantined": Status.FAILED,
    "suppressed": Status.FAILED,
}
_WHATSAPP_STATUS = {
    "sent": Status.SENT,
    "delivered": Status.DELIVERED,
    "read": Status.READ,
    "failed": Status.FAILED,
}


def _sms_report(env: Envelope, data: Mapping[str, Any]) -> AcsEvent:
    raw = _required(data, "deliverystatus")
    status = _SMS_STATUS.get(raw.lower())
    attempts = _objects(data, "deliveryattempts")
    failed_segments = sum(_count(a.get("segmentsfailed"), "data.deliveryAttempts.segmentsFailed") for a in attempts)
    detail = _detail(data.get("deliverystatusdetails"))
    if failed_segments and status == Status.DELIVERED:
        status, detail = Status.FAILED, f"{failed_segments} segment(s) failed; {detail}"
    return AcsEvent(
        channel=Channel.SMS,
        kind=EventKind.REPORT,
        event_type=env.event_type,
        provider_message_id=_provider_id(data),
        raw_status=raw,
        status=status,
        event_time=normalise_time(data.get("receivedtimestamp"), env.event_time),
        detail=detail[:500],
        tag=_our_tag(data),
    )


def _email_report(env: Envelope, data: Mapping[str, Any]) -> AcsEvent:
    raw = _required(data, "status")
    status = _EMAIL_STATUS.get(raw.lower())
    message = _detail(data.get("deliverystatusdetails"))
    return AcsEvent(
        channel=Channel.EMAIL,
        kind=EventKind.REPORT,
        event_type=env.event_type,
        provider_message_id=_provider_id(data),
        raw_status=raw,
        status=status,
        event_time=normalise_time(data.get("deliveryattempttimestamp"), env.event_time),
        detail=f"{raw}: {message}"[:500] if status == Status.FAILED else message[:500],
        sender=_text(data, "sender"),
        recipient=_text(data, "recipient"),
        suppress_recipient=raw.lower() in {"bounced", "suppressed"},
    )


def _email_engagement(env: Envelope, data: Mapping[str, Any]) -> AcsEvent:
    kind = _text(data, "engagementtype") or "unknown"
    return AcsEvent(
        channel=Channel.EMAIL,
        kind=EventKind.ENGAGEMENT,
        event_type=env.event_type,
        provider_message_id=_provider_id(data),
        raw_status=kind.lower()[:100],
        status=None,
        event_time=normalise_time(data.get("useractiontimestamp"), env.event_time),
        detail=kind.lower()[:100],
    )


def _whatsapp_status(env: Envelope, data: Mapping[str, Any]) -> AcsEvent:
    raw = _required(data, "status")
    return AcsEvent(
        channel=Channel.WHATSAPP,
        kind=EventKind.REPORT,
        event_type=env.event_type,
        provider_message_id=_provider_id(data),
        raw_status=raw,
        status=_WHATSAPP_STATUS.get(raw.lower()),
        event_time=normalise_time(data.get("receivedtimestamp"), env.event_time),
        detail=_detail(data.get("error"))[:500],
    )


def _inbound(env: Envelope, data: Mapping[str, Any], channel: Channel) -> AcsEvent:
    text = _text(data, "message" if channel == Channel.SMS else "content")
    provider_id = _text(data, "messageid")
    recipient = _required(data, "to")
    return AcsEvent(
        channel=channel,
        kind=EventKind.INBOUND,
        event_type=env.event_type,
        provider_message_id=_key_safe(provider_id, "data.messageId") if provider_id else derived_id(data),
        raw_status="received",
        status=None,
        event_time=normalise_time(data.get("receivedtimestamp"), env.event_time),
        detail=(_text(data, "messagetype") or "text")[:100],
        sender=_address(channel, _required(data, "from"), "data.from"),
        # SMS: our number, the sender key of consent; WhatsApp: the channel registration id.
        recipient=_address(channel, recipient, "data.to") if channel == Channel.SMS else recipient[:200],
        text=text or "",
    )


_NORMALISERS = {
    SMS_DELIVERY_REPORT.lower(): lambda env, data: _sms_report(env, data),
    SMS_RECEIVED.lower(): lambda env, data: _inbound(env, data, Channel.SMS),
    EMAIL_DELIVERY_REPORT.lower(): lambda env, data: _email_report(env, data),
    EMAIL_ENGAGEMENT.lower(): lambda env, data: _email_engagement(env, data),
    WHATSAPP_STATUS.lower(): lambda env, data: _whatsapp_status(env, data),
    WHATSAPP_RECEIVED.lower(): lambda env, data: _inbound(env, data, Channel.WHATSAPP),
}


def normalise(env: Envelope) -> AcsEvent | None:
    """The ACS event in our model; None for an event type we do not handle."""
    data = lower_keys(env.data)
    if not isinstance(data, Mapping):
        raise MalformedEvent("data is not an object")
    build = _NORMALISERS.get(env.event_type.lower())
    return None if build is None else build(env, data)


def lower_case_keys(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The envelope's keys case-insensitively (`specVersion` and `specversion` both mean CloudEvents)."""
    return {str(k).lower(): v for k, v in raw.items()}


def topic_of(raw: Mapping[str, Any]) -> str:
    """The resource that published the event (Event Grid `topic`, CloudEvents `source`), read before
    anything else, so that an event from a foreign topic is ignored without being parsed."""
    keys = lower_case_keys(raw)
    topic = keys.get("source" if "specversion" in keys else "topic")
    return topic if isinstance(topic, str) else ""


def envelope_from_dict(raw: Mapping[str, Any], now: datetime) -> Envelope:
    """Either schema, keys case-insensitive. An event without a time gets `now`, the moment it arrived."""
    keys = lower_case_keys(raw)
    cloud = "specversion" in keys
    event_type = keys.get("type" if cloud else "eventtype")
    event_time = keys.get("time" if cloud else "eventtime")
    if not isinstance(event_type, str) or not event_type:
        raise MalformedEvent("event type is missing")
    data = keys.get("data")
    if not isinstance(data, Mapping):
        raise MalformedEvent("data is missing or not an object")
    return Envelope(
        id=str(keys.get("id") or ""),
        topic=topic_of(raw),
        subject=str(keys.get("subject") or ""),
        event_type=event_type,
        event_time=normalise_time(event_time, iso(now)),
        data=data,
    )


def event_to_json(event: AcsEvent) -> str:
    """The normalised event as parked (and as a rejected suppression records it)."""
    data = asdict(event)
    data["status"] = event.status.value if event.status else None
    return json.dumps(data)


def event_from_json(text: str) -> AcsEvent:
    data = json.loads(text)
    data["channel"] = Channel(data["channel"])
    data["kind"] = EventKind(data["kind"])
    data["status"] = Status(data["status"]) if data["status"] else None
    return AcsEvent(**data)
