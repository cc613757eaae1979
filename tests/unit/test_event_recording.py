"""EventService.apply over in-memory storage: a report is recorded once, beside its ledger row and in the
same transaction as the projection; a report that beats its send's answer is parked and re-matched."""

from __future__ import annotations

from datetime import timedelta

from shared.clock import iso
from shared.events_model import AcsEvent, EventKind
from shared.models import Channel, Status
from shared.runtime import Services
from shared.schema import SLIM_SELECT, ProviderIdRow, join_payload, ledger_row_key, provider_id_keys
from shared.services.events import EventOutcome
from shared.services.outcomes import Outcome
from tests.bodies import whatsapp
from tests.fakes import FakeClock, MemoryStorage, ScriptedProvider, memory_services
from tests.unit.conftest import deliver


def _report(provider_id: str, status: Status, at: str) -> AcsEvent:
    return AcsEvent(
        channel=Channel.WHATSAPP,
        kind=EventKind.REPORT,
        event_type="Microsoft.Communication.AdvancedMessageDeliveryStatusUpdated",
        provider_message_id=provider_id,
        raw_status=status.value,
        status=status,
        event_time=at,
        detail="",
    )


async def test_a_report_is_recorded_once_with_its_event_row(
    svc: Services, storage: MemoryStorage, clock: FakeClock
) -> None:
    assert await deliver(svc, whatsapp("wa-1")) == Outcome.SENT
    report = _report("acs-1", Status.DELIVERED, iso(clock() + timedelta(seconds=2)))
    assert await svc.events.apply(report) == EventOutcome.RECORDED
    assert await svc.events.apply(report) == EventOutcome.DUPLICATE
    row = await svc.ledger.get("wa-1")
    assert row is not None and row.status == Status.DELIVERED and row.delivery_latency_ms == 2000.0
    history = [e async for e in storage.table(svc.names.messages).query("PartitionKey eq @pk", {"pk": "wa-1"})]
    assert [e["RowKey"] for e in history] == [report.key, "ledger|wa-1"]


async def test_a_report_before_its_send_is_parked_and_applied_when_the_send_learns_its_id(
    svc: Services, storage: MemoryStorage, provider: ScriptedProvider, clock: FakeClock
) -> None:
    """The status finds no index row: it is parked and leaves a placeholder where the sender will write.
    The sender meets the placeholder and re-matches the parked status at once."""
    early = _report("acs-early", Status.DELIVERED, iso(clock() + timedelta(seconds=1)))
    assert await svc.events.apply(early) == EventOutcome.ORPHANED
    placeholder = storage.table(svc.names.provider_ids).entity(*provider_id_keys("acs-early"))
    assert placeholder is not None and ProviderIdRow.from_entity(placeholder).message_id is None
    provider.sends = ["acs-early"]
    assert await deliver(svc, whatsapp("wa-2")) == Outcome.SENT
    row = await svc.ledger.get("wa-2")
    assert row is not None and row.status == Status.DELIVERED
    orphans = [e async for e in storage.table(svc.names.orphans).query("PartitionKey eq @pk", {"pk": "acs-early"})]
    assert orphans == []


async def test_a_report_in_another_instance_reads_only_slim_columns_and_keeps_the_rest(
    svc: Services, storage: MemoryStorage, provider: ScriptedProvider, clock: FakeClock
) -> None:
    """An instance that has never seen the message (no cached row) matches and projects the report from
    a read of SLIM_SELECT only: the request's payload is neither read back nor disturbed."""
    assert await deliver(svc, whatsapp("wa-slim")) == Outcome.SENT
    messages = storage.table(svc.names.messages)
    before = messages.entity("wa-slim", ledger_row_key("wa-slim"))
    assert before is not None and join_payload(before)
    other = await memory_services(storage, provider, clock)
    try:
        messages.selects.clear()
        report = _report("acs-1", Status.DELIVERED, iso(clock() + timedelta(seconds=2)))
        assert await other.events.apply(report) == EventOutcome.RECORDED
    finally:
        await other.close()
    assert messages.selects and set(messages.selects) == {SLIM_SELECT}
    after = messages.entity("wa-slim", ledger_row_key("wa-slim"))
    assert after is not None and after["Status"] == Status.DELIVERED.value
    assert {k: v for k, v in after.items() if k not in SLIM_SELECT} == {
        k: v for k, v in before.items() if k not in SLIM_SELECT
    }
