"""Rows as the app leaves them, written fast: SMS ledger rows in Sent or Delivered, their event rows,
due-index and retention entries, and real delivery-report events.

Why not drive the send path for every row: 100k sends through the pipeline would take longer than the
benchmarks themselves. Instead each row is built with the app's own pieces (request parsing and checks,
`Ledger.new_row`, the claim and mark-sent fields, the event-row key) and written directly, so the
layout is the one the services read. Events come from the ACS emulator's own builders.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from azure.data.tables.aio import TableClient

from bench.common import SMS_SENDER, bounded, resend_on_drop
from bench.rest import RestInserter
from devstack.acs import events as acs_events
from devstack.acs.builders import SmsTarget
from devstack.acs.config import DEFAULT_SUBSCRIPTION
from devstack.acs.models import DEFAULT_TOPIC, DataCasing, EventSchema
from devstack.acs.outcomes import Step
from shared.clock import iso
from shared.ledger import canonical_payload, claimed
from shared.models import Channel, Status
from shared.runtime import Services
from shared.schema import DUE_PARTITION, due_row_key, event_row_key
from shared.services.due import RETENTION_PARTITION, DueKind
from shared.validation import check_request, parse_request

RECIPIENT = "+14255550100"
RENDERING = acs_events.Rendering(EventSchema.EVENTGRID, DataCasing.CAMEL, DEFAULT_TOPIC, DEFAULT_SUBSCRIPTION)
BATCH = 100  # the entity-group transaction limit
ACCEPT_LEAD = timedelta(seconds=1)  # accepted this long before it was sent


def provider_id() -> str:
    return f"Outgoing_{uuid.uuid4().hex}_noam"


def sent_row(svc: Services, message_id: str, provider_message_id: str, sent_at: datetime) -> dict[str, Any]:
    """The ledger row of an SMS after accept, claim and mark-sent, as the send path writes it."""
    body = {"id": message_id, "channel": "sms", "to": RECIPIENT, "content": {"text": f"Your code is {message_id[-6:]}"}}
    accepted_at = sent_at - ACCEPT_LEAD
    checked = check_request(parse_request(json.dumps(body)), svc.settings, message_id, accepted_at)
    row = svc.ledger.new_row(checked, canonical_payload(checked.request, message_id), accepted_at, "queue")
    row = claimed(row, sent_at, generation=1)
    cost = svc.settings.prices[Channel.SMS] * checked.segments
    row = replace(row, provider_message_id=provider_message_id, cost_estimate=cost)
    return row.moved_to(Status.SENT, iso(sent_at)).to_entity()


def report(message_id: str, provider_message_id: str, at: datetime, status: str = "Delivered") -> dict[str, Any]:
    """A delivery report exactly as the ACS emulator delivers it (Event Grid schema, camelCase)."""
    target = SmsTarget(provider_message_id, SMS_SENDER, RECIPIENT, 1, tag=message_id)
    return acs_events.envelope(target.event(Step(status), at, provider_message_id), RENDERING)


def due_entry(message_id: str, kind: DueKind, at: datetime, partition: str = DUE_PARTITION) -> dict[str, Any]:
    stamp = iso(at)
    row_key = due_row_key(stamp, message_id, kind.value)
    return {"PartitionKey": partition, "RowKey": row_key, "MessageId": message_id, "Kind": kind.value, "DueAt": stamp}


def delivered_pair(row: dict[str, Any], delivered_at: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ledger row advanced to Delivered and its event row, as one recorded report leaves them."""
    stamp = iso(delivered_at)
    pid = str(row["ProviderMessageId"])
    latency = int((delivered_at - datetime.fromisoformat(str(row["SentAt"]).replace("Z", "+00:00"))).total_seconds())
    ledger = row | {
        "Status": Status.DELIVERED.value,
        "DeliveredAt": stamp,
        "StatusEventTime": stamp,
        "UpdatedAt": stamp,
        "Reason": "No error.",
        "DeliveryLatencyMs": latency * 1000,
    }
    event = {
        "PartitionKey": row["PartitionKey"],
        "RowKey": event_row_key(pid, "report", "Delivered", stamp),
        "Kind": "report",
        "EventType": acs_events.SMS_DELIVERY_REPORT,
        "RawStatus": "Delivered",
        "Status": Status.DELIVERED.value,
        "EventTime": stamp,
        "ProviderMessageId": pid,
        "Detail": "No error.",
        "ReceivedAt": stamp,
    }
    return ledger, event


async def insert_sent(
    svc: Services, messages: TableClient, ids: list[str], sent_at: datetime, concurrency: int
) -> dict[str, tuple[str, str]]:
    """Insert Sent rows (an SMS gets no provider-id row: its reports carry our id in the tag);
    returns message id -> (provider id, ledger etag)."""

    async def one(message_id: str) -> tuple[str, str]:
        row = sent_row(svc, message_id, provider_id(), sent_at)

        async def landed() -> dict[str, Any]:
            return dict((await messages.get_entity(row["PartitionKey"], row["RowKey"])).metadata)

        meta = await resend_on_drop(lambda: messages.create_entity(row), landed)
        return str(row["ProviderMessageId"]), str(meta["etag"])

    return dict(zip(ids, await bounded(ids, one, concurrency), strict=True))


async def insert_delivered(
    svc: Services, rest: RestInserter, ids: list[str], sent_at: datetime, concurrency: int
) -> None:
    """Insert Delivered histories: each ledger row and its event row."""
    table = svc.names.messages

    async def one(message_id: str) -> None:
        row = sent_row(svc, message_id, provider_id(), sent_at)
        ledger, event = delivered_pair(row, sent_at + timedelta(seconds=4))
        await asyncio.gather(rest.insert(table, ledger), rest.insert(table, event))

    await bounded(ids, one, concurrency)


async def insert_batched(table: TableClient, entities: list[dict[str, Any]], concurrency: int) -> None:
    """Insert entities that share one partition in entity-group transactions of 100."""
    chunks = [entities[i : i + BATCH] for i in range(0, len(entities), BATCH)]

    async def one(chunk: list[dict[str, Any]]) -> None:
        async def landed() -> None:
            return None

        await resend_on_drop(lambda: table.submit_transaction([("create", e) for e in chunk]), landed)

    await bounded(chunks, one, concurrency)


def retention_entries(ids: list[str], sent_at: datetime, keep_days: int) -> list[dict[str, Any]]:
    """The purge-content entry reconciliation schedules for each message whose report window closed
    (keyed from the creation time, pending until the content retention period ends)."""
    at = sent_at - ACCEPT_LEAD + timedelta(days=keep_days)
    return [due_entry(mid, DueKind.PURGE_CONTENT, at, RETENTION_PARTITION) for mid in ids]
