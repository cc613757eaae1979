"""What events cost: reconciliation stays O(due items) whatever the number of parked (orphan) events,
and one large Event Grid batch keeps a bounded number of storage requests (and their memory) in flight."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from devstack.acs import DEFAULT_TOPIC
from shared.adapters.tables import TableStore
from shared.runtime import Services
from shared.services.events import EventOutcome
from tests.integration.conftest import Clock

CALLS = ("get", "insert", "update", "upsert", "delete", "query", "transact")


def unknown_report(provider_id: str) -> dict[str, Any]:
    return {
        "id": provider_id,
        "topic": DEFAULT_TOPIC,
        "subject": "/phonenumber/18005550100",
        "eventType": "Microsoft.Communication.SMSDeliveryReportReceived",
        "eventTime": "2026-11-28T10:00:00Z",
        "data": {
            "messageId": provider_id,
            "from": "18005550100",
            "to": "+14255550100",
            "deliveryStatus": "Delivered",
            "deliveryStatusDetails": "No error.",
            "receivedTimestamp": "2026-11-28T10:00:00Z",
        },
    }


@pytest.fixture
def requests(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts storage requests made through the real table adapter (a spy: storage stays real)."""
    counts: Counter[str] = Counter()

    def spy(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        if name == "query":

            def query(store: TableStore, *args: Any, **kwargs: Any) -> Any:
                counts[name] += 1
                return method(store, *args, **kwargs)

            return query

        async def call(store: TableStore, *args: Any, **kwargs: Any) -> Awaitable[Any]:
            counts[name] += 1
            return await method(store, *args, **kwargs)

        return call

    for name in CALLS:
        monkeypatch.setattr(TableStore, name, spy(name, getattr(TableStore, name)))
    return counts


async def _run_cost(svc: Services, requests: Counter[str]) -> int:
    requests.clear()
    await svc.reconcile.run()
    return sum(requests.values())


async def test_reconcile_cost_does_not_grow_with_parked_events(
    svc: Services, clock: Clock, requests: Counter[str]
) -> None:
    """100 reports nobody sent are parked; a reconcile run before any is due costs what a run with
    none parked costs, and a run once they are due looks at each once, not at every run after."""
    baseline = await _run_cost(svc, requests)
    ids = [f"Outgoing_{uuid.uuid4().hex}" for _ in range(100)]
    outcomes = await asyncio.gather(*(svc.events.record(unknown_report(i)) for i in ids))
    assert set(outcomes) == {EventOutcome.ORPHANED}
    assert await _run_cost(svc, requests) == baseline
    clock.advance(minutes=16)
    due_run = await _run_cost(svc, requests)
    assert due_run >= 100  # each due orphan is looked at
    clock.advance(minutes=1)
    assert await _run_cost(svc, requests) == baseline  # and then left alone until its next recheck
    clock.advance(hours=25)
    summary = await svc.reconcile.run()
    assert summary.orphans_given_up == 100
    orphans = svc.storage.table(svc.names.orphans)
    assert [r async for r in orphans.query("PartitionKey ne @r", {"r": "rejected-events"})] == []


async def test_a_parked_report_whose_send_crashed_before_rematching_is_matched_by_reconcile(
    svc: Services, clock: Clock
) -> None:
    """The sender indexed the id but died before re-matching what was parked: the orphan's due recheck
    finds the id known and applies the report."""
    from shared.services.decoding import QueueDelivery
    from shared.services.outcomes import Outcome
    from tests.bodies import sms
    from tests.integration.test_events_real_input import _fresh_events

    assert await svc.sending.handle(QueueDelivery(sms("crashed-rematch"), "q", 1)) == Outcome.SENT
    row = await svc.ledger.get("crashed-rematch")
    assert row is not None
    provider_id = str(row.get("ProviderMessageId"))
    index = svc.storage.table(svc.names.provider_ids)
    await index.delete(provider_id, provider_id)
    other_instance = await _fresh_events(svc)  # one without the sender's in-memory hint
    assert await other_instance.record(unknown_report(provider_id)) == EventOutcome.ORPHANED
    await index.upsert({"PartitionKey": provider_id, "RowKey": provider_id, "MessageId": "crashed-rematch"})
    clock.advance(minutes=16)
    summary = await svc.reconcile.run()
    assert summary.orphans_matched == 1
    final = await svc.ledger.get("crashed-rematch")
    assert final is not None and final.status.value == "Delivered"


async def test_a_large_batch_keeps_a_bounded_number_of_storage_requests_in_flight(
    svc: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host invokes record_event for every event of a batch at once (up to 5,000): the service
    works on at most MAX_EVENTS_IN_FLIGHT of them together, so memory does not grow with the batch."""
    from shared.services.events import MAX_EVENTS_IN_FLIGHT

    active = peak = 0
    real_get = TableStore.get

    async def counting_get(store: TableStore, *args: Any) -> Any:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        try:
            return await real_get(store, *args)
        finally:
            active -= 1

    monkeypatch.setattr(TableStore, "get", counting_get)
    batch = [unknown_report(f"Outgoing_{uuid.uuid4().hex}") for _ in range(100)]
    outcomes = await asyncio.gather(*(svc.events.record(event) for event in batch))
    assert set(outcomes) == {EventOutcome.ORPHANED}
    assert peak <= MAX_EVENTS_IN_FLIGHT < len(batch)
