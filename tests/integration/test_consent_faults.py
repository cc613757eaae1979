"""Fault test for consent: a storage failure between any two writes of STOP, START or a bounce, then
Event Grid's redelivery, ends with the consent change applied exactly once.

The real table adapter runs against Azurite; a wrapper makes its Nth write raise TransientError,
either before the write (a crash between steps) or after it (the write landed, its answer was lost)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from devstack.acs import DEFAULT_TOPIC
from shared.adapters.tables import TableStore
from shared.errors import TransientError
from shared.models import Channel, Status
from shared.privacy import address_hash
from shared.runtime import Services
from shared.schema import AUDIT_PARTITION
from shared.services.consent import ConsentState
from shared.services.decoding import QueueDelivery
from shared.services.events import EventOutcome
from shared.services.outcomes import Outcome
from tests.bodies import email
from tests.integration.conftest import SMS_SENDER

WRITES = ("insert", "update", "upsert", "delete", "transact")


class FaultyWrites:
    """Counts writes through every TableStore and fails the Nth one."""

    def __init__(self) -> None:
        self.count = 0
        self.fail_at: int | None = None
        self.after = False

    def arm(self, n: int | None, after: bool = False) -> None:
        self.count, self.fail_at, self.after = 0, n, after

    def wrap(self, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def write(store: TableStore, *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            failing = self.count == self.fail_at
            if failing and not self.after:
                raise TransientError(f"injected before write {self.count}")
            result = await method(store, *args, **kwargs)
            if failing:
                raise TransientError(f"injected after write {self.count}")
            return result

        return write


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch) -> FaultyWrites:
    faulty = FaultyWrites()
    for name in WRITES:
        monkeypatch.setattr(TableStore, name, faulty.wrap(getattr(TableStore, name)))
    return faulty


def inbound_sms(sender: str, text: str, when: str) -> dict[str, Any]:
    return {
        "id": f"Incoming_{uuid.uuid4().hex}",
        "topic": DEFAULT_TOPIC,
        "subject": "/phonenumber/18005550100",
        "data": {
            "MessageId": f"Incoming_{uuid.uuid4().hex}",
            "From": sender,
            "To": SMS_SENDER,
            "Message": text,
            "ReceivedTimestamp": when,
            "SegmentCount": 1,
        },
        "eventType": "Microsoft.Communication.SMSReceived",
        "eventTime": when,
    }


async def _deliver_with_fault(svc: Services, faults: FaultyWrites, event: dict[str, Any], n: int, after: bool) -> bool:
    """Deliver once with the Nth write failing, then redeliver twice as Event Grid would. True if the
    fault was hit (False once N is past the last write)."""
    faults.arm(n, after)
    try:
        await svc.events.record(copy.deepcopy(event))
        hit = faults.count >= n
    except TransientError:
        hit = True
    faults.arm(None)
    outcomes = [await svc.events.record(copy.deepcopy(event)) for _ in range(2)]
    assert outcomes[-1] == EventOutcome.DUPLICATE
    return hit


async def _audit_entries(svc: Services, channel: Channel, address: str, state: ConsentState) -> int:
    subject = f"{channel.value}:{address_hash(svc.settings.consent_hash_key, address)}:"
    return sum(
        1
        for row in await svc.audit.entries()
        if row["PartitionKey"] == AUDIT_PARTITION
        and str(row["Subject"]).startswith(subject)
        and row["Action"] == f"consent.{state.value}"
    )


def _numbers() -> Iterator[str]:
    for i in range(1000):
        yield f"+1425555{i:04d}"


@pytest.mark.parametrize("after", [False, True], ids=["fail-before-write", "fail-after-write"])
async def test_stop_survives_a_failure_at_every_write(svc: Services, faults: FaultyWrites, after: bool) -> None:
    numbers = _numbers()
    n = 0
    while True:
        n += 1
        number = next(numbers)
        hit = await _deliver_with_fault(svc, faults, inbound_sms(number, "STOP", "2026-11-28T10:00:00Z"), n, after)
        assert not (await svc.consent.check(Channel.SMS, number, SMS_SENDER)).allowed, f"write {n}"
        assert await _audit_entries(svc, Channel.SMS, number, ConsentState.OPTED_OUT) == 1, f"write {n}"
        if not hit:
            break
    assert n > 2  # the fault visited every write of the STOP (consent row, audit entry, inbound row)


@pytest.mark.parametrize("after", [False, True], ids=["fail-before-write", "fail-after-write"])
async def test_start_survives_a_failure_at_every_write(svc: Services, faults: FaultyWrites, after: bool) -> None:
    numbers = _numbers()
    n = 0
    while True:
        n += 1
        number = next(numbers)
        await svc.events.record(inbound_sms(number, "STOPALL", "2026-11-28T10:00:00Z"))
        hit = await _deliver_with_fault(svc, faults, inbound_sms(number, "START", "2026-11-28T10:05:00Z"), n, after)
        assert (await svc.consent.check(Channel.SMS, number, SMS_SENDER)).allowed, f"write {n}"
        assert await _audit_entries(svc, Channel.SMS, number, ConsentState.OPTED_IN) == 1, f"write {n}"
        if not hit:
            break
    assert n > 3  # consent row, lifting the STOPALL, audit entry, inbound row


def bounce(provider_id: str, recipient: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "topic": DEFAULT_TOPIC,
        "subject": f"sender/noreply@contoso.example/message/{provider_id}",
        "eventType": "Microsoft.Communication.EmailDeliveryReportReceived",
        "eventTime": "2026-11-28T10:00:00Z",
        "data": {
            "sender": "noreply@contoso.example",
            "recipient": recipient,
            "messageId": provider_id,
            "status": "Bounced",
            "deliveryAttemptTimeStamp": "2026-11-28T10:00:00Z",
            "deliveryStatusDetails": {"statusMessage": "mailbox unavailable"},
        },
    }


@pytest.mark.parametrize("after", [False, True], ids=["fail-before-write", "fail-after-write"])
async def test_a_bounce_survives_a_failure_at_every_write(svc: Services, faults: FaultyWrites, after: bool) -> None:
    n = 0
    while True:
        n += 1
        message_id = f"bounce-{n}-{uuid.uuid4().hex[:6]}"
        address = f"bob{n}@example.com"
        assert await svc.sending.handle(QueueDelivery(email(message_id, to=address), "q", 1)) == Outcome.SENT
        row = await svc.ledger.get(message_id)
        assert row is not None
        event = bounce(str(row.get("ProviderMessageId")), address.upper())
        hit = await _deliver_with_fault(svc, faults, event, n, after)
        assert not (await svc.consent.check(Channel.EMAIL, address, "noreply@contoso.example")).allowed, f"write {n}"
        assert await _audit_entries(svc, Channel.EMAIL, address, ConsentState.SUPPRESSED) == 1, f"write {n}"
        final = await svc.ledger.get(message_id)
        assert final is not None and final.status == Status.FAILED, f"write {n}"
        if not hit:
            break
    assert n > 2  # suppression row, audit entry, the report's transaction
