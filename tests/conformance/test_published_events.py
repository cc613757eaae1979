"""Every ACS event sample Microsoft publishes, through the runner's Event Grid webhook, against a real message.

For each sample (see tests/conformance/README.md for sources), in both schemas (Event Grid, CloudEvents
1.0) and both data-key casings (as published, flipped): a real message is sent through the pipeline
first, the sample's correlation fields are pointed at it (corpus.retarget), the event is delivered
twice (Event Grid delivers at least once), and the ledger, the inbound log or consent must show it
exactly once. The emulator delivers no events of its own here, so what is recorded came from the sample.
"""

from __future__ import annotations

import copy
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest

from devstack.acs import DEFAULT_TOPIC
from shared.models import Channel, Status
from shared.privacy import address_hash
from shared.schema import SERVICE_WINDOW_PREFIX
from tests.bodies import email, sms, whatsapp
from tests.conformance.corpus import (
    Casing,
    Kind,
    Sample,
    Schema,
    Target,
    in_schema,
    load_samples,
    retarget,
    with_casing,
)
from tests.e2e.conftest import Stack, all_final, wait_until
from tests.integration.conftest import EMAIL_SENDER, SMS_SENDER, WHATSAPP_CHANNEL

WEBHOOK = "/runtime/webhooks/eventgrid?functionName=record_event"
CONTENT_TYPE = {Schema.EVENTGRID: "application/json", Schema.CLOUDEVENTS: "application/cloudevents+json; charset=utf-8"}
STATUS_OF = {"delivered": Status.DELIVERED, "sent": Status.SENT, "read": Status.READ, "failed": Status.FAILED}
OURS = {"sms": SMS_SENDER, "email": EMAIL_SENDER, "whatsapp": WHATSAPP_CHANNEL}


def _stop_variant(samples: list[Sample]) -> Sample:
    """The published SMSReceived sample with its text replaced by STOP (the one field changed), so that
    an opt-out arrives in the form ACS documents: numbers without "+", PascalCase keys."""
    base = next(s for s in samples if s.name == "sms_received.spec_eventgrid")
    event = copy.deepcopy(base.event)
    event["data"]["Message"] = "STOP"
    return Sample(f"{base.name}+STOP", event, base.source)


@dataclass(frozen=True)
class Case:
    index: int
    sample: Sample
    schema: Schema
    casing: Casing

    @property
    def id(self) -> str:
        return f"{self.sample.name}-{self.schema}-{self.casing}"

    @property
    def theirs(self) -> str:
        """A number (or address) of our own for this case: no two cases share a recipient."""
        if self.sample.kind.channel == "email":
            return f"corpus{self.index}@example.com"
        return f"+1425{self.index:05d}{self.index % 6:02d}"  # 00-05: numbers the emulator accepts


SAMPLES = load_samples()
CASES = [
    Case(i, sample, schema, casing)
    for i, (sample, schema, casing) in enumerate(
        (sample, schema, casing)
        for sample in [*SAMPLES, _stop_variant(SAMPLES)]
        for schema in Schema
        for casing in Casing
    )
]


@pytest.fixture(scope="module")
async def targets(corpus_stack: Stack) -> dict[str, Target]:
    """One real message per case, sent through the pipeline and waited for until it is Sent."""
    stack = corpus_stack
    builders = {"sms": sms, "email": email, "whatsapp": whatsapp}
    ids = {case.id: f"corpus-{case.index:03d}" for case in CASES}
    for case in CASES:
        body = builders[case.sample.kind.channel](ids[case.id], to=case.theirs)
        await stack.svc.outbound.send(body.decode())
    sent = frozenset({Status.SENT})
    await wait_until(lambda: all_final(stack, list(ids.values()), sent), 90, f"{len(ids)} sends")
    found = {}
    for case in CASES:
        row = await stack.svc.ledger.get(ids[case.id])
        assert row is not None
        channel = case.sample.kind.channel
        provider_id = str(row.get("ProviderMessageId"))
        found[case.id] = Target(ids[case.id], provider_id, OURS[channel], case.theirs, DEFAULT_TOPIC)
    return found


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_published_event_is_recorded_against_a_real_message(
    case: Case, corpus_stack: Stack, targets: dict[str, Target]
) -> None:
    target = targets[case.id]
    event = with_casing(in_schema(retarget(case.sample, target), case.schema), case.casing)
    answers = [_deliver(corpus_stack, event, case.schema) for _ in range(2)]
    assert answers == [(202, "")] * 2, f"the webhook refused the event: {answers}"
    await _EXPECTATIONS[case.sample.kind](corpus_stack, case, target)


def _deliver(stack: Stack, event: dict[str, Any], schema: Schema) -> tuple[int, str]:
    """POST as Event Grid does: an array for its own schema, a single event for CloudEvents."""
    assert stack.runner is not None
    body = [event] if schema == Schema.EVENTGRID else event
    request = urllib.request.Request(  # noqa: S310 - loopback
        stack.runner.url + WEBHOOK,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"aeg-event-type": "Notification", "Content-Type": CONTENT_TYPE[schema]},
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310 - loopback
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()[:300]


# -- what each kind of event must leave behind -------------------------------------------------------


async def _event_rows(stack: Stack, target: Target, kind: Kind) -> list[dict[str, Any]]:
    table = stack.svc.storage.table(stack.svc.names.messages)
    rows = [r async for r in table.query("PartitionKey eq @pk", {"pk": target.message_id})]
    return [r for r in rows if str(r.get("EventType", "")).lower() == kind.lower()]


async def _status(stack: Stack, target: Target) -> Status | None:
    row = await stack.svc.ledger.get(target.message_id)
    return row.status if row else None


async def _expect_report(stack: Stack, case: Case, target: Target) -> None:
    """The report is one event row on the message, and the ledger shows the status it reports."""
    raw = next(str(v) for k, v in case.sample.data().items() if k.lower() in ("deliverystatus", "status"))
    assert len(await _event_rows(stack, target, case.sample.kind)) == 1, "the report was not recorded once"
    assert await _status(stack, target) == STATUS_OF[raw.lower()]


async def _expect_engagement(stack: Stack, case: Case, target: Target) -> None:
    """An engagement is one event row on the message and changes no status."""
    rows = await _event_rows(stack, target, case.sample.kind)
    assert [r.get("Kind") for r in rows] == ["engagement"], "the engagement was not recorded once"
    assert await _status(stack, target) == Status.SENT


def _is_window(row: dict[str, Any]) -> bool:
    """The WhatsApp service-window row kept beside a user's inbound messages (issue 18), not a message."""
    return str(row["PartitionKey"]).startswith(SERVICE_WINDOW_PREFIX)


async def _expect_inbound(stack: Stack, case: Case, target: Target) -> None:
    """An inbound message is one row in the inbound log, found as erasure finds it: by the keyed hash of
    the sender's canonical ("+E164") number, the form sends use. An SMS STOP also opts that number out
    of our sender."""
    digest = address_hash(stack.svc.settings.consent_hash_key, target.theirs)
    table = stack.svc.storage.table(stack.svc.names.inbound)
    every = table.query("PartitionKey ne @none", {"none": ""})
    rows = [r async for r in every if digest in str(r["PartitionKey"]) and not _is_window(r)]
    problems = [] if len(rows) == 1 else [f"{len(rows)} inbound rows under the canonical sender (expected 1)"]
    if case.sample.name.endswith("+STOP"):
        decision = await stack.svc.consent.check(Channel.SMS, target.theirs, target.ours)
        problems += [] if not decision.allowed else ["the STOP did not opt the number out"]
    assert not problems, "; ".join(problems)


_EXPECTATIONS = {
    Kind.SMS_REPORT: _expect_report,
    Kind.EMAIL_REPORT: _expect_report,
    Kind.WHATSAPP_STATUS: _expect_report,
    Kind.EMAIL_ENGAGEMENT: _expect_engagement,
    Kind.SMS_RECEIVED: _expect_inbound,
    Kind.WHATSAPP_RECEIVED: _expect_inbound,
}
