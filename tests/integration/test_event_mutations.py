"""Property: any mutation of a real published ACS event is recorded and acknowledged, or recorded as
rejected, through the real EventService against Azurite; delivering it again changes nothing; only a
storage outage raises.

Seeds are Microsoft's published samples, one per event type we handle (azure-rest-api-specs,
specification/eventgrid/data-plane/Microsoft.Communication/stable/2018-01-01/examples/event-grid-schema/,
and the Learn page "Azure Communication Services as an Event Grid source" for the SMS report with its
capital-T `Tag`). Mutations: a field removed or given another JSON type, odd characters in any string
(key-forbidden ones, controls, lone surrogates, 2,000 characters), numbers in every form JSON writers
use, any key casing, and either schema."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.acs import DEFAULT_TOPIC
from shared.adapters.tables import TableStore
from shared.errors import StorageUnreachable, TransientError
from shared.events_model import stable_json
from shared.runtime import Services
from shared.schema import join_payload
from shared.services.decoding import QueueDelivery
from shared.services.events import EventOutcome
from shared.services.outcomes import Outcome
from shared.services.rejections import MAX_REJECTED_PAYLOAD, REJECTED_PARTITION
from tests.bodies import email, sms, whatsapp

SEEDS: dict[str, dict[str, Any]] = {
    "sms-report": {  # Learn sample: camelCase with a capital-T Tag, "from" without "+"
        "id": "Outgoing_202009180022138813a09b-0cbf-4304-9b03-1546683bb910",
        "topic": DEFAULT_TOPIC,
        "subject": "/phonenumber/15555555555",
        "data": {
            "messageId": "{sms}",
            "from": "15555555555",
            "to": "+15555555555",
            "deliveryStatus": "Delivered",
            "deliveryStatusDetails": "No error.",
            "receivedTimestamp": "2020-09-18T00:22:20.2855749Z",
            "deliveryAttempts": [
                {"timestamp": "2020-09-18T00:22:14.9315918Z", "segmentsSucceeded": 1, "segmentsFailed": 0}
            ],
            "Tag": "{sms-id}",
        },
        "eventType": "Microsoft.Communication.SMSDeliveryReportReceived",
        "dataVersion": "1.0",
        "metadataVersion": "1",
        "eventTime": "2020-09-18T00:22:20Z",
    },
    "sms-received": {  # spec sample: PascalCase, numbers without "+"
        "id": "Incoming_20200918002745d29ebbea-3341-4466-9690-0a03af35228e",
        "topic": DEFAULT_TOPIC,
        "subject": "/phonenumber/15555555555",
        "data": {
            "MessageId": "Incoming_20200918002745d29ebbea-3341-4466-9690-0a03af35228e",
            "From": "15555555555",
            "To": "15555555555",
            "Message": "Great to connect with ACS events",
            "ReceivedTimestamp": "2020-09-18T00:27:45.32Z",
            "SegmentCount": 1,
        },
        "eventType": "Microsoft.Communication.SMSReceived",
        "dataVersion": "1.0",
        "metadataVersion": "1",
        "eventTime": "2020-09-18T00:27:47Z",
    },
    "email-report": {
        "id": "5f04f77c-2a6a-43bd-9b74-576a64c01f9e",
        "topic": DEFAULT_TOPIC,
        "subject": "sender/test2@contoso.org/message/950850f5-bcdf-4315-b77a-6447cf56fac9",
        "data": {
            "sender": "test2@contoso.org",
            "recipient": "test1@contoso.com",
            "messageId": "{email}",
            "status": "Bounced",
            "deliveryAttemptTimestamp": "2023-02-09T19:46:12.2480265+00:00",
            "deliveryStatusDetails": {"statusMessage": "DestinationMailboxFull"},
        },
        "eventType": "Microsoft.Communication.EmailDeliveryReportReceived",
        "dataVersion": "1.0",
        "metadataVersion": "1",
        "eventTime": "2023-02-09T19:46:12.2478002Z",
    },
    "email-engagement": {
        "id": "6f04f77c-2a6a-43bd-9b74-576a64c01f9e",
        "topic": DEFAULT_TOPIC,
        "subject": "sender/test2@contoso.org/message/950850f5-bcdf-4315-b77a-6447cf56fac9",
        "data": {
            "sender": "test2@contoso.org",
            "recipient": "test1@contoso.com",
            "messageId": "{email}",
            "userActionTimeStamp": "2023-02-09T19:48:12.2480265+00:00",
            "engagementContext": "https://www.contoso.com/",
            "userAgent": "Mozilla/5.0",
            "engagementType": "click",
        },
        "eventType": "Microsoft.Communication.EmailEngagementTrackingReportReceived",
        "dataVersion": "1.0",
        "metadataVersion": "1",
        "eventTime": "2023-02-09T19:48:12.2478002Z",
    },
    "whatsapp-status": {  # spec sample: lower-case status, an error object
        "id": "3fae3274-f6e0-4fdf-9e73-81b0e842c9ba",
        "topic": DEFAULT_TOPIC,
        "subject": "advancedMessage/3f870487-d59e-4c01-82dd-46b9d388aa9d/status/Sent",
        "data": {
            "messageId": "{whatsapp}",
            "status": "delivered",
            "channelType": "whatsapp",
            "from": "{sender@id}",
            "to": "{recipient@id}",
            "receivedTimestamp": "2024-03-22T17:06:11.1980225+00:00",
            "error": {"channelCode": "channelCode", "channelMessage": "channelMessage"},
        },
        "eventType": "Microsoft.Communication.AdvancedMessageDeliveryStatusUpdated",
        "dataVersion": "1.0",
        "metadataVersion": "1",
        "eventTime": "2024-02-23T23:56:52.5129362Z",
    },
    "whatsapp-received": {  # spec sample: no messageId, numbers without "+"
        "id": "4611364c-08fb-4a8a-a8b5-7e40203285d3",
        "topic": DEFAULT_TOPIC,
        "subject": "advancedMessage/sender/18334411877/recipient/be57b49d-5cd4-4f96-9a6b-4af41bc9fdfb",
        "data": {
            "content": "Come on guys, lets go for lunch together.",
            "channelType": "whatsapp",
            "messageType": "messageType",
            "media": {"mimeType": "mimeType", "id": "mediaId", "fileName": "fileName", "caption": "caption"},
            "context": {"from": "1234578988", "id": "messageId"},
            "from": "12375679879",
            "to": "1345679879",
            "receivedTimestamp": "2024-03-22T17:06:11.2610383+00:00",
            "error": {"channelCode": "channelCode", "channelMessage": "channelMessage"},
        },
        "eventType": "Microsoft.Communication.AdvancedMessageReceived",
        "dataVersion": "1.0",
        "metadataVersion": "1",
        "eventTime": "2024-02-23T23:55:39.1900577Z",
    },
}

ODD_STRINGS = [
    "",
    " ",
    "/",
    "a/b",
    "a\\b",
    "a#b",
    "a?b",
    "a\x00b",
    "a\x1fb",
    "a\x7fb",
    "a\x85b",
    "a\x9fb",
    "\ud800",
    "😀",
    "STOP",
    "stopall",
    "START",
    "15555555555",
    "+1 (555) 555-5555",
    "+1800/5550100",
    "Delivered",
    "FAILED",
    "bounced",
    "2020-09-18T00:22:20.2855749Z",
    "0001-01-01T00:00:00+05:00",
    "9999-12-31T23:59:59-05:00",
    "yesterday",
    "x" * 2000,
]
NUMBERS = [0, 1, -1, 1.0, 1.5, 1e308, -0.0, 2**70, 10**5000, "1", " 2 ", "x", "1e3", "\uff11", True, False, None]
JSON_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.sampled_from(ODD_STRINGS), st.text()
)
JSON_VALUES = st.recursive(
    JSON_LEAVES, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3), max_leaves=6
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside the event's data."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _paths(item, (*prefix, i))
    return found


def _recase(value: Any, draw: Any) -> Any:
    if isinstance(value, dict):
        style = draw(st.sampled_from(["same", "upper", "lower", "pascal"]))

        def key(k: str) -> str:
            return {"same": k, "upper": k.upper(), "lower": k.lower(), "pascal": k[:1].upper() + k[1:]}[style]

        return {key(k): _recase(v, draw) for k, v in value.items()}
    if isinstance(value, list):
        return [_recase(v, draw) for v in value]
    return value


@st.composite
def mutated_events(draw: Any) -> dict[str, Any]:
    name = draw(st.sampled_from(sorted(SEEDS)))
    event = copy.deepcopy(SEEDS[name])
    data = event["data"]
    for _ in range(draw(st.integers(0, 3))):
        paths = _paths(data)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = data
        for step in path[:-1]:
            parent = parent[step]
        how = draw(st.sampled_from(["remove", "value", "string", "number"]))
        if how == "remove" and isinstance(parent, dict):
            del parent[path[-1]]
        elif how == "string":
            parent[path[-1]] = draw(st.sampled_from(ODD_STRINGS) | st.text())
        elif how == "number":
            parent[path[-1]] = draw(st.sampled_from(NUMBERS))
        else:
            parent[path[-1]] = draw(JSON_VALUES)
    event["data"] = _recase(data, draw)
    if draw(st.booleans()):  # the CloudEvents schema
        event = {
            "specversion": "1.0",
            "id": event["id"],
            "source": event["topic"],
            "subject": event["subject"],
            "type": event["eventType"],
            "time": event["eventTime"],
            "data": event["data"],
        }
    return event


async def _sent(svc: Services) -> dict[str, str]:
    """One sent message per channel, whose ids the seeds' placeholders take."""
    ids: dict[str, str] = {}
    for channel, body in (("sms", sms), ("email", email), ("whatsapp", whatsapp)):
        message_id = f"prop-{channel}-{uuid.uuid4().hex[:8]}"
        assert await svc.sending.handle(QueueDelivery(body(message_id), "q", 1)) == Outcome.SENT
        row = await svc.ledger.get(message_id)
        assert row is not None
        ids[channel], ids[f"{channel}-id"] = str(row.get("ProviderMessageId")), message_id
    return ids


def _fill(event: Any, ids: dict[str, str]) -> Any:
    """The event with the seeds' placeholders ({sms}, {sms-id}, ...) replaced by the sent ids."""
    if isinstance(event, dict):
        return {k: _fill(v, ids) for k, v in event.items()}
    if isinstance(event, list):
        return [_fill(v, ids) for v in event]
    if isinstance(event, str):
        for key, value in ids.items():
            event = event.replace("{" + key + "}", value)
    return event


async def _rejected_rows(svc: Services, event: dict[str, Any]) -> int:
    payload = stable_json(event)[:MAX_REJECTED_PAYLOAD]
    table = svc.storage.table(svc.names.rejected_events)
    rows = [r async for r in table.query("PartitionKey eq @pk", {"pk": REJECTED_PARTITION})]
    return sum(1 for row in rows if join_payload(row) == payload)


SENT: dict[str, dict[str, str]] = {}

AGAIN = {
    EventOutcome.RECORDED: {EventOutcome.DUPLICATE},
    EventOutcome.DUPLICATE: {EventOutcome.DUPLICATE},
    EventOutcome.ORPHANED: {EventOutcome.DUPLICATE},
    EventOutcome.INBOUND: {EventOutcome.DUPLICATE},
    EventOutcome.REJECTED: {EventOutcome.REJECTED},
    EventOutcome.IGNORED: {EventOutcome.IGNORED},
}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=mutated_events())
async def test_any_mutation_of_a_published_event_is_recorded_or_rejected_once(
    svc: Services, mutation: dict[str, Any]
) -> None:
    prefix = svc.names.prefix  # one set of sent messages per test's tables, shared by its examples
    if prefix not in SENT:
        SENT[prefix] = await _sent(svc)
    event = _fill(mutation, SENT[prefix])
    first = await svc.events.record(copy.deepcopy(event))
    again = await svc.events.record(copy.deepcopy(event))
    assert again in AGAIN[first], (first, again)
    if first == EventOutcome.REJECTED:
        assert await _rejected_rows(svc, event) == 1  # with its payload, once for both deliveries
    if first == EventOutcome.IGNORED:  # only an event type we do not handle is ignored from our topic
        keys = {k.lower(): v for k, v in event.items()}
        assert str(keys.get("eventtype") or keys.get("type")).lower() not in {
            s["eventType"].lower() for s in SEEDS.values()
        }


@pytest.mark.parametrize("name", sorted(SEEDS))
async def test_every_published_seed_is_accepted_as_published(svc: Services, name: str) -> None:
    """Unmutated, each published sample is recorded (matched, parked or inbound), never rejected."""
    event = _fill(SEEDS[name], await _sent(svc))
    outcome = await svc.events.record(event)
    assert outcome in {EventOutcome.RECORDED, EventOutcome.INBOUND, EventOutcome.ORPHANED}, outcome


async def test_a_storage_outage_raises_so_event_grid_delivers_again(
    svc: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a storage outage may raise: the event is not acknowledged, and Event Grid retries it."""

    async def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise StorageUnreachable("storage unreachable: ServiceRequestError")

    event = _fill(SEEDS["sms-received"], {})
    for name in ("get", "insert", "update", "upsert", "delete", "transact"):
        monkeypatch.setattr(TableStore, name, unreachable)
    with pytest.raises(TransientError):
        await svc.events.record(event)
