"""Normalise ACS events from Event Grid (either schema, either casing) into one model.

Why: real payloads mix camelCase and PascalCase data keys (`Tag`/`tag`, `deliveryAttemptTimeStamp`),
status values arrive in any case, and CloudEvents envelopes differ from Event Grid ones. Everything
downstream sees `AcsEvent` only. Malformed input raises `MalformedEvent` with a reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from shared.models import Status
from shared.settings import Channel

PREFIX = "microsoft.communication."


class EventKind(StrEnum):
    REPORT = "report"
    ENGAGEMENT = "engagement"
    INBOUND = "inbound"


class MalformedEvent(ValueError):
    """The event cannot be understood; the reason says which field is wrong."""


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


def lower_keys(value: Any) -> Any:
    """Data keys case-insensitively: lower-case every key, recursively."""
    if isinstance(value, Mapping):
        return {str(k).lower(): lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [lower_keys(v) for v in value]
    return value


def normalise_time(value: Any, fallback: str) -> str:
    """ISO 8601 UTC with microseconds, whatever precision or offset the source used."""
    if not isinstance(value, str) or not value:
        value = fallback
    text = value.strip().replace("Z", "+00:00")
    if "." in text:  # .NET writes 7 fractional digits; Python takes at most 6
        head, _, rest = text.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        offset = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{offset}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise MalformedEvent(f"unreadable time {value!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _required(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedEvent(f"data.{key} is missing")
    return value


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
    attempts = data.get("deliveryattempts") or []
    failed_segments = sum(int(a.get("segmentsfailed", 0) or 0) for a in attempts if isinstance(a, Mapping))
    detail = str(data.get("deliverystatusdetails", ""))
    if failed_segments and status == Status.DELIVERED:
        status, detail = Status.FAILED, f"{failed_segments} segment(s) failed; {detail}"
    return AcsEvent(
        channel=Channel.SMS,
        kind=EventKind.REPORT,
        event_type=env.event_type,
        provider_message_id=_required(data, "messageid"),
        raw_status=raw,
        status=status,
        event_time=normalise_time(data.get("receivedtimestamp"), env.event_time),
        detail=detail[:500],
        tag=data.get("tag") or None,
    )


def _email_report(env: Envelope, data: Mapping[str, Any]) -> AcsEvent:
    raw = _required(data, "status")
    status = _EMAIL_STATUS.get(raw.lower())
    details = data.get("deliverystatusdetails") or {}
    message = details.get("statusmessage", "") if isinstance(details, Mapping) else str(details)
    return AcsEvent(
        channel=Channel.EMAIL,
        kind=EventKind.REPORT,
        event_type=env.event_type,
        provider_message_id=_required(data, "messageid"),
        raw_status=raw,
        status=status,
        event_time=normalise_time(data.get("deliveryattempttimestamp"), env.event_time),
        detail=f"{raw}: {message}"[:500] if status == Status.FAILED else str(message)[:500],
        sender=data.get("sender"),
        recipient=data.get("recipient"),
        suppress_recipient=raw.lower() in {"bounced", "suppressed"},
    )


def _email_engagement(env: Envelope, data: Mapping[str, Any]) -> AcsEvent:
    kind = str(data.get("engagementtype") or "unknown")
    return AcsEvent(
        channel=Channel.EMAIL,
        kind=EventKind.ENGAGEMENT,
        event_type=env.event_type,
        provider_message_id=_required(data, "messageid"),
        raw_status=kind.lower(),
        status=None,
        event_time=normalise_time(data.get("useractiontimestamp"), env.event_time),
        detail=kind.lower(),
    )


def _whatsapp_status(env: Envelope, data: Mapping[str, Any]) -> AcsEvent:
    raw = _required(data, "status")
    error = data.get("error") or {}
    detail = f"{error.get('channelcode', '')} {error.get('channelmessage', '')}".strip() if error else ""
    return AcsEvent(
        channel=Channel.WHATSAPP,
        kind=EventKind.REPORT,
        event_type=env.event_type,
        provider_message_id=_required(data, "messageid"),
        raw_status=raw,
        status=_WHATSAPP_STATUS.get(raw.lower()),
        event_time=normalise_time(data.get("receivedtimestamp"), env.event_time),
        detail=detail[:500],
    )


def _inbound(env: Envelope, data: Mapping[str, Any], channel: Channel) -> AcsEvent:
    text = data.get("message") if channel == Channel.SMS else data.get("content")
    return AcsEvent(
        channel=channel,
        kind=EventKind.INBOUND,
        event_type=env.event_type,
        provider_message_id=_required(data, "messageid"),
        raw_status="received",
        status=None,
        event_time=normalise_time(data.get("receivedtimestamp"), env.event_time),
        detail=str(data.get("messagetype", "text")),
        sender=_required(data, "from"),
        recipient=_required(data, "to"),
        text=text if isinstance(text, str) else "",
    )


def normalise(env: Envelope) -> AcsEvent | None:
    """The ACS event in our model; None for an event type we do not handle."""
    data = lower_keys(env.data)
    if not isinstance(data, Mapping):
        raise MalformedEvent("data is not an object")
    name = env.event_type.lower().removeprefix(PREFIX)
    if name == "smsdeliveryreportreceived":
        return _sms_report(env, data)
    if name == "smsreceived":
        return _inbound(env, data, Channel.SMS)
    if name == "emaildeliveryreportreceived":
        return _email_report(env, data)
    if name == "emailengagementtrackingreportreceived":
        return _email_engagement(env, data)
    if name == "advancedmessagedeliverystatusupdated":
        return _whatsapp_status(env, data)
    if name == "advancedmessagereceived":
        return _inbound(env, data, Channel.WHATSAPP)
    return None


def envelope_from_dict(raw: Mapping[str, Any]) -> Envelope:
    """Either schema, keys case-insensitive (`specVersion` and `specversion` both mean CloudEvents)."""
    keys = {str(k).lower(): v for k, v in raw.items()}
    cloud = "specversion" in keys
    event_type = keys.get("type" if cloud else "eventtype")
    topic = keys.get("source" if cloud else "topic")
    event_time = keys.get("time" if cloud else "eventtime")
    if not isinstance(event_type, str) or not event_type:
        raise MalformedEvent("event type is missing")
    data = keys.get("data")
    if not isinstance(data, Mapping):
        raise MalformedEvent("data is missing or not an object")
    return Envelope(
        id=str(keys.get("id") or ""),
        topic=str(topic or ""),
        subject=str(keys.get("subject") or ""),
        event_type=event_type,
        event_time=normalise_time(event_time, datetime.now(UTC).isoformat()),
        data=data,
    )
