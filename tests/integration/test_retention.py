"""Retention with an injected clock: content, then recipients, then rows, each on its own clock."""

from __future__ import annotations

import json
import uuid

from shared.models import Status
from shared.runtime import Services
from shared.services.decoding import QueueDelivery
from shared.services.due import RETENTION_PARTITION, DueIndex, schedule_retention
from tests.bodies import sms
from tests.integration.conftest import Clock


async def _send(svc: Services, message_id: str, clock: Clock) -> None:
    """Send, then let reconciliation close the report window, which schedules retention."""
    await svc.sending.handle(QueueDelivery(sms(message_id, to="+14255550142"), uuid.uuid4().hex, 1))
    clock.advance(minutes=61)
    await svc.reconcile.run()


async def test_content_goes_first_and_metadata_stays(svc: Services, clock: Clock) -> None:
    """After 7 days the text is gone; recipient, status and times remain."""
    await _send(svc, "ret-1", clock)
    clock.advance(days=6)
    assert sum((await svc.retention.run()).values()) == 0  # not yet: content is kept 7 days
    clock.advance(days=2)
    assert (await svc.retention.run())["purge-content"] == 1
    row = await svc.ledger.get("ret-1")
    assert row is not None
    payload = json.loads(row.payload or "{}")
    assert "content" not in payload and payload["to"] == "+14255550142"
    assert (
        row.status in (Status.SENT, Status.DELIVERED, Status.EXPIRED)
        and row.get("SentAt")
        and row.get("ContentPurgedAt")
    )


async def test_recipient_goes_at_30_days_and_rows_at_90(svc: Services, clock: Clock) -> None:
    """At 30 days the address is gone everywhere in the row; at 90 days the message is deleted."""
    await _send(svc, "ret-2", clock)
    for days in (8, 23):
        clock.advance(days=days)
        await svc.retention.run()
    row = await svc.ledger.get("ret-2")
    assert row is not None
    assert "+14255550142" not in json.dumps(dict(row.entity), default=str)
    assert row.get("RecipientMasked") == "" and row.get("SentAt")
    clock.advance(days=60)
    assert (await svc.retention.run())["purge-rows"] == 1
    assert await svc.ledger.get("ret-2") is None


async def test_a_message_that_never_sent_gets_its_retention_clock_at_once(svc: Services, clock: Clock) -> None:
    """A rejected request keeps its content only until the content period ends."""
    await svc.sending.handle(QueueDelivery(sms("ret-bad", to="not-a-number"), uuid.uuid4().hex, 1))
    clock.advance(days=8)
    assert (await svc.retention.run())["purge-content"] == 1
    row = await svc.ledger.get("ret-bad")
    assert row is not None and row.status == Status.REJECTED
    assert "content" not in json.loads(row.payload or "{}")


async def test_rejected_events_age_out_with_message_content(svc: Services, clock: Clock) -> None:
    """A malformed event is kept (for its investigation) as long as message content, then deleted: the
    rejected-events table does not grow forever."""
    from devstack.acs import DEFAULT_TOPIC

    table = svc.storage.table(svc.names.rejected_events)
    malformed = {
        "id": "bad-1",
        "topic": DEFAULT_TOPIC,
        "eventType": "Microsoft.Communication.SMSDeliveryReportReceived",
    }
    await svc.events.record(malformed)
    assert len([r async for r in table.query("PartitionKey ne ''")]) == 1
    clock.advance(days=svc.settings.retention_days["content"] - 1)
    assert (await svc.retention.run())["rejected-events"] == 0
    clock.advance(days=2)
    assert (await svc.retention.run())["rejected-events"] == 1
    assert [r async for r in table.query("PartitionKey ne ''")] == []


async def test_entries_live_in_their_own_table_and_older_ones_in_the_due_table_are_still_applied(
    svc: Services, clock: Clock
) -> None:
    """Retention's entries stay out of the due table reconciliation queries every run; one scheduled
    before that (in the due table's `retention` partition) is applied all the same, then removed."""
    await _send(svc, "ret-new", clock)
    await svc.sending.handle(QueueDelivery(sms("ret-old", to="+14255550143"), uuid.uuid4().hex, 1))
    due = svc.storage.table(svc.names.due)
    own = svc.storage.table(svc.names.retention)
    assert [e["MessageId"] async for e in due.query("PartitionKey eq @pk", {"pk": RETENTION_PARTITION})] == []
    assert [e["MessageId"] async for e in own.query("PartitionKey eq @pk", {"pk": RETENTION_PARTITION})] == ["ret-new"]
    row = await svc.ledger.get("ret-old")
    assert row is not None and row.created_at
    await schedule_retention(DueIndex(due, RETENTION_PARTITION), "ret-old", row.created_at, 7)
    clock.advance(days=8)
    assert (await svc.retention.run())["purge-content"] == 2
    old = await svc.ledger.get("ret-old")
    assert old is not None and old.get("ContentPurgedAt")
    assert [e async for e in due.query("PartitionKey eq @pk", {"pk": RETENTION_PARTITION})] == []
    kinds = sorted([e["Kind"] async for e in own.query("PartitionKey eq @pk", {"pk": RETENTION_PARTITION})])
    assert kinds == ["purge-recipient", "purge-recipient"]  # both moved on, in retention's own table
