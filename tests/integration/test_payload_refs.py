"""payloadRef is followed only as this app writes it: never to another container, another path or a
blob that is not the one the reference was written for (issue 14, item 8)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.acs import AcsEmulator
from shared.claimcheck import payload_blob_name, reference_body
from shared.models import Status
from shared.runtime import Services
from shared.services.decoding import QueueDelivery
from shared.services.outcomes import Outcome
from tests.bodies import sms

STOLEN_ID = "stolen-1"


@pytest.fixture
async def foreign_blob(svc: Services) -> AsyncIterator[str]:
    """A valid send request in a container the app does not own (as Event Grid's dead letters are)."""
    container = svc.storage.blobs.get_container_client(f"foreign-{uuid.uuid4().hex[:8]}")
    await container.create_container()
    payload = sms(STOLEN_ID).decode()
    name = payload_blob_name(STOLEN_ID, payload)
    await container.upload_blob(name, payload.encode())
    yield f"{container.container_name}/{name}"
    await container.delete_container()


def _container(svc: Services) -> str:
    return svc.names.payload_container


def _escapes(svc: Services, foreign: str) -> list[str]:
    """References that name the foreign blob through the payload container's URL."""
    own = _container(svc)
    return [
        f"../{foreign}",
        f"{own}/../{foreign}",
        f"{own}/../../devstoreaccount1/{foreign}",
        f"./../{foreign}",
        f"%2e%2e/{foreign}",
        f"..%2F{foreign}",
        f"/{foreign}",
        f"{STOLEN_ID}/../../{foreign}",
    ]


async def _reject_and_check(svc: Services, acs: AcsEmulator, body: str) -> None:
    outcome = await svc.sending.handle(QueueDelivery(body.encode(), uuid.uuid4().hex, 1))
    assert outcome in (Outcome.REJECTED, Outcome.DUPLICATE)
    assert acs.sends() == []
    row = await svc.ledger.get(STOLEN_ID)
    assert row is None or row.status == Status.REJECTED


async def test_a_reference_out_of_the_payload_container_is_rejected(
    svc: Services, acs: AcsEmulator, foreign_blob: str
) -> None:
    """`cm-payloads/../<other container>/<blob>` and every spelling of it is Rejected; nothing is sent."""
    for ref in _escapes(svc, foreign_blob):
        await _reject_and_check(svc, acs, json.dumps({"schemaVersion": 1, "id": STOLEN_ID, "payloadRef": ref}))
    row = await svc.ledger.get(STOLEN_ID)
    assert row is not None and row.status == Status.REJECTED and "payloadRef" in row.get("Reason")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    prefix=st.sampled_from(["", "../", "/", "./", "x/../", "%2e%2e/", "..\\", "https://evil.example/"]),
    middle=st.text(alphabet="abc./%-_:", max_size=12),
    digest=st.one_of(st.text(alphabet="0123456789abcdefABCDEF", max_size=40), st.just("0" * 32)),
    extra=st.sampled_from([{}, {"channel": "sms"}, {"schemaVersion": True}, {"id": "other-1"}]),
)
async def test_no_reference_of_another_shape_is_ever_followed(
    svc: Services, acs: AcsEmulator, prefix: str, middle: str, digest: str, extra: dict[str, object]
) -> None:
    """Any reference that is not exactly `<id>/<32 hex>.json` under the same id, in a message of exactly
    the three keys, is Rejected without a download."""
    ref = f"{prefix}{middle}{STOLEN_ID}/{digest}.json"
    body = {"schemaVersion": 1, "id": STOLEN_ID, "payloadRef": ref, **extra}
    outcome = await svc.sending.handle(QueueDelivery(json.dumps(body).encode(), uuid.uuid4().hex, 1))
    assert outcome in (Outcome.REJECTED, Outcome.DUPLICATE)
    assert acs.sends() == []


async def test_a_blob_swapped_under_a_valid_name_is_rejected(svc: Services, acs: AcsEmulator) -> None:
    """The name carries the request's digest: other text under it is not the request it names."""
    payload = sms("swap-1").decode()
    name = payload_blob_name("swap-1", payload)
    store = svc.storage.payloads(_container(svc))
    await store.put(name, sms("swap-1", text="not what was referenced").decode())
    outcome = await svc.sending.handle(QueueDelivery(reference_body("swap-1", name).encode(), uuid.uuid4().hex, 1))
    assert outcome == Outcome.REJECTED and acs.sends() == []


async def test_a_valid_reference_is_still_followed(svc: Services, acs: AcsEmulator) -> None:
    """The reference the app writes itself resolves and sends, as before."""
    payload = sms("ref-ok").decode()
    name = payload_blob_name("ref-ok", payload)
    await svc.storage.payloads(_container(svc)).put(name, payload)
    outcome = await svc.sending.handle(QueueDelivery(reference_body("ref-ok", name).encode(), uuid.uuid4().hex, 1))
    assert outcome == Outcome.SENT and len(acs.sends("sms")) == 1
