"""The conformance corpus: Microsoft's published ACS payloads, and how a test points one at a real message.

Each file under `events/` holds one published event (`payload`, verbatim, as an object or the one-element
array the Learn pages show) and where it was published (`source`; `note` says what is odd about it).
Files under `rest/` hold a REST API spec example (`example`, verbatim) with its `source`.

A published event names messages, numbers and resources that do not exist here. `retarget` rewrites
only its correlation fields (ids, addresses, the topic and the subject's segments that repeat them) so
that it reports on a message this test really sent, and keeps everything else as published, including
the form of each field: a number published without "+" is written without "+", a PascalCase key stays
PascalCase, an absent field stays absent. `in_schema` then converts the event faithfully to the Event
Grid schema or to CloudEvents 1.0, and `with_casing` gives its data keys as published or flipped.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# CloudEvents 1.0: "CloudEvents attribute names MUST consist of lower-case letters ('a' to 'z') or digits".
CLOUDEVENTS_ENVELOPE = ("id", "source", "subject", "type", "time", "specversion", "data")

JsonObject = dict[str, Any]


class Schema(StrEnum):
    EVENTGRID = "eventgrid"
    CLOUDEVENTS = "cloudevents"


class Casing(StrEnum):
    PUBLISHED = "published"
    FLIPPED = "flipped"  # every data key with its first letter's case swapped (messageId <-> MessageId)


class Kind(StrEnum):
    SMS_REPORT = "Microsoft.Communication.SMSDeliveryReportReceived"
    SMS_RECEIVED = "Microsoft.Communication.SMSReceived"
    EMAIL_REPORT = "Microsoft.Communication.EmailDeliveryReportReceived"
    EMAIL_ENGAGEMENT = "Microsoft.Communication.EmailEngagementTrackingReportReceived"
    WHATSAPP_STATUS = "Microsoft.Communication.AdvancedMessageDeliveryStatusUpdated"
    WHATSAPP_RECEIVED = "Microsoft.Communication.AdvancedMessageReceived"

    @property
    def channel(self) -> str:
        if self in (Kind.SMS_REPORT, Kind.SMS_RECEIVED):
            return "sms"
        return "email" if self in (Kind.EMAIL_REPORT, Kind.EMAIL_ENGAGEMENT) else "whatsapp"

    @property
    def inbound(self) -> bool:
        return self in (Kind.SMS_RECEIVED, Kind.WHATSAPP_RECEIVED)


@dataclass(frozen=True)
class Sample:
    """One published event."""

    name: str
    event: JsonObject
    source: JsonObject

    @property
    def schema(self) -> Schema:
        return Schema.CLOUDEVENTS if "specversion" in _lower(self.event) else Schema.EVENTGRID

    @property
    def kind(self) -> Kind:
        keys = _lower(self.event)
        return Kind(keys["type"] if self.schema == Schema.CLOUDEVENTS else keys["eventtype"])

    def data(self) -> JsonObject:
        value: JsonObject = _lower(self.event)["data"]
        return value


@dataclass(frozen=True)
class Target:
    """The real message (or, for inbound events, the real conversation) an event is pointed at."""

    message_id: str  # our id; SMS reports carry it as their tag
    provider_message_id: str  # ACS's id for the send (SMS messageId, email operation id, WhatsApp receipt id)
    ours: str  # our side: the SMS number, the email sender, the WhatsApp channel registration id
    theirs: str  # their side, canonical: "+E164" or an email address
    topic: str  # the ACS resource id the app trusts


def load_samples() -> list[Sample]:
    samples = []
    for path in sorted((HERE / "events").glob("*.json")):
        document = json.loads(path.read_text())
        payload = document["payload"]
        [event] = payload if isinstance(payload, list) else [payload]
        samples.append(Sample(path.stem, event, document["source"]))
    return samples


def load_rest(name: str) -> JsonObject:
    document: JsonObject = json.loads((HERE / "rest" / f"{name}.json").read_text())
    return document


# -- pointing a published event at a real message --------------------------------------------------


def retarget(sample: Sample, target: Target) -> JsonObject:
    """The published event, in its published schema and casing, about `target` instead."""
    event = copy.deepcopy(sample.event)
    data = _value(event, "data")
    published_id = _get(data, "messageid")
    swaps = _REWRITES[sample.kind](data, target)
    _set(event, "id", _swap_id(_value(event, "id"), published_id, _get(data, "messageid")))
    _set(event, "topic" if sample.schema == Schema.EVENTGRID else "source", retopic(_topic(event), target.topic))
    subject = _get(event, "subject")
    if isinstance(subject, str):
        _set(event, "subject", "/".join(swaps.get(part, part) for part in subject.split("/")))
    return event


def retopic(published: str, resource_id: str) -> str:
    """The configured resource id, in the published topic's spelling of the fixed segments
    (`resourcegroups` or `resourceGroups`, `microsoft.communication` or `Microsoft.Communication`)."""
    ours = resource_id.strip("/").split("/")
    theirs = published.strip("/").split("/")
    if len(ours) != len(theirs):
        return resource_id
    values = {1, 3, len(ours) - 1}  # subscription id, resource group, resource name
    return "/" + "/".join(ours[i] if i in values else theirs[i] for i in range(len(ours)))


def _sms_report(data: JsonObject, target: Target) -> dict[str, str]:
    swaps = _phone(data, "from", target.ours)
    _phone(data, "to", target.theirs)
    _replace(data, "messageid", target.provider_message_id)
    _replace(data, "tag", target.message_id)
    return swaps


def _sms_received(data: JsonObject, target: Target) -> dict[str, str]:
    _phone(data, "from", target.theirs)
    swaps = _phone(data, "to", target.ours)
    _renew_id(data)
    return swaps


def _email(data: JsonObject, target: Target) -> dict[str, str]:
    swaps = _replace(data, "sender", target.ours)
    _replace(data, "recipient", target.theirs)
    return swaps | _replace(data, "messageid", target.provider_message_id)


def _whatsapp_status(data: JsonObject, target: Target) -> dict[str, str]:
    _replace(data, "from", target.ours)
    _phone(data, "to", target.theirs)
    return _replace(data, "messageid", target.provider_message_id)


def _whatsapp_received(data: JsonObject, target: Target) -> dict[str, str]:
    swaps = _phone(data, "from", target.theirs)
    swaps |= _replace(data, "to", target.ours)
    _renew_id(data)
    return swaps


_REWRITES: dict[Kind, Callable[[JsonObject, Target], dict[str, str]]] = {
    Kind.SMS_REPORT: _sms_report,
    Kind.SMS_RECEIVED: _sms_received,
    Kind.EMAIL_REPORT: _email,
    Kind.EMAIL_ENGAGEMENT: _email,
    Kind.WHATSAPP_STATUS: _whatsapp_status,
    Kind.WHATSAPP_RECEIVED: _whatsapp_received,
}


def _phone(data: JsonObject, key: str, canonical: str) -> dict[str, str]:
    """Write our number in the published form: with "+" only if the published number had one
    (a placeholder such as "{sender@id}" becomes digits, as WhatsApp ids are)."""
    published = _get(data, key)
    if not isinstance(published, str):
        return {}
    return _replace(data, key, canonical if published.startswith("+") else canonical.removeprefix("+"))


def _replace(data: JsonObject, key: str, value: str) -> dict[str, str]:
    """Set an existing key (any casing) to `value`; absent keys stay absent. Returns {old: new}."""
    for name, old in data.items():
        if name.lower() == key:
            data[name] = value
            return {old: value} if isinstance(old, str) else {}
    return {}


def _renew_id(data: JsonObject) -> None:
    """A new messageId of the published shape, as each real inbound message has its own (a GUID inside
    it is renewed; a placeholder such as "messageId" becomes a GUID). An absent one stays absent."""
    published = _get(data, "messageid")
    if isinstance(published, str):
        renewed = GUID.sub(lambda _: str(uuid.uuid4()), published)
        _replace(data, "messageid", renewed if renewed != published else str(uuid.uuid4()))


def _swap_id(envelope_id: Any, published_message_id: Any, message_id: Any) -> str:
    """The event id: the data's messageId where the sample shows them equal (SMS reports), else a new
    id, since Event Grid gives every event its own."""
    if envelope_id == published_message_id and isinstance(message_id, str):
        return message_id
    return str(uuid.uuid4())


# -- schema and casing --------------------------------------------------------------------------


def in_schema(event: JsonObject, schema: Schema) -> JsonObject:
    """The event as Event Grid delivers it in `schema`. The envelope is Event Grid's own: CloudEvents
    attribute names are lower-case (two published samples write "specVersion"), the Event Grid schema
    carries `dataVersion` and `metadataVersion`. `data` is untouched."""
    keys = _lower(event)
    cloud = "specversion" in keys
    fields = {
        "id": keys.get("id"),
        "source": keys.get("source" if cloud else "topic"),
        "subject": keys.get("subject"),
        "type": keys.get("type" if cloud else "eventtype"),
        "time": keys.get("time" if cloud else "eventtime"),
        "data": keys.get("data"),
    }
    if schema == Schema.CLOUDEVENTS:
        converted = {**fields, "specversion": "1.0"}
        return {name: converted[name] for name in CLOUDEVENTS_ENVELOPE if converted[name] is not None}
    grid = {
        "id": fields["id"],
        "topic": fields["source"],
        "subject": fields["subject"],
        "data": fields["data"],
        "eventType": fields["type"],
        "dataVersion": keys.get("dataversion", "1.0"),
        "metadataVersion": keys.get("metadataversion", "1"),
        "eventTime": fields["time"],
    }
    return {name: value for name, value in grid.items() if value is not None}


def with_casing(event: JsonObject, casing: Casing) -> JsonObject:
    if casing == Casing.PUBLISHED:
        return event
    flipped = dict(event)
    data_key = next(name for name in event if name.lower() == "data")
    flipped[data_key] = flip_keys(event[data_key])
    return flipped


def flip_keys(value: Any) -> Any:
    """Every key, recursively, with its first letter's case swapped."""
    if isinstance(value, Mapping):
        return {(key[:1].swapcase() + key[1:]): flip_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [flip_keys(item) for item in value]
    return value


# -- small helpers ------------------------------------------------------------------------------


def _lower(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {key.lower(): value for key, value in mapping.items()}


def _get(mapping: Mapping[str, Any], key: str) -> Any:
    return _lower(mapping).get(key)


def _value(mapping: JsonObject, key: str) -> Any:
    return next(value for name, value in mapping.items() if name.lower() == key)


def _set(mapping: JsonObject, key: str, value: Any) -> None:
    name = next((name for name in mapping if name.lower() == key), key)
    mapping[name] = value


def _topic(event: JsonObject) -> str:
    return str(_get(event, "topic") or _get(event, "source") or "")
