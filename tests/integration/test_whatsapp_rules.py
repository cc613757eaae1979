"""Template approval and the 24-hour service window, through real Azurite, the ACS emulator and the SDKs."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from devstack.acs import AcsEmulator
from devstack.azurite import Azurite
from shared.models import Status
from shared.runtime import Services, build_services
from shared.services.decoding import QueueDelivery
from shared.services.outcomes import Outcome
from shared.settings import load_settings
from tests.bodies import whatsapp
from tests.integration.conftest import WHATSAPP_CHANNEL, Clock, app_env, eventually

USER = "+14255550140"


def _delivery(body: bytes) -> QueueDelivery:
    return QueueDelivery(body, uuid.uuid4().hex, 1)


def _template(message_id: str, name: str, values: dict[str, str], language: str = "en_US", **extra: Any) -> bytes:
    template = {"name": name, "language": language, "values": values, "bodyBindings": list(values)}
    body = {"id": message_id, "channel": "whatsapp", "to": USER, "content": {"template": template}}
    return json.dumps({**body, **extra}).encode()


@pytest.fixture
async def strict(azurite: Azurite, acs: AcsEmulator, clock: Clock) -> AsyncIterator[Services]:
    """Services that enforce the 24-hour window, as the Azure deployment does."""
    acs.reset()
    acs.clear_faults()
    env = app_env(azurite, acs, WHATSAPP_SERVICE_WINDOW="enforce")
    services = await build_services(load_settings(env), clock=clock)
    yield services
    await services.close()


async def _reason(svc: Services, message_id: str) -> tuple[Status, str | None]:
    row = await svc.ledger.get(message_id)
    assert row is not None
    return row.status, row.reason


async def test_the_sdk_lists_every_template_state_of_a_channel(svc: Services) -> None:
    """ACS's template list (the SDK's pager over the emulator) gives each template's state and body parameters."""
    listed = {info.name: info for info in await svc.provider.list_templates(WHATSAPP_CHANNEL)}  # type: ignore[attr-defined]
    assert {name: info.state for name, info in listed.items()} == {
        "sample_template": "approved",
        "sample_shipping_confirmation": "approved",
        "order_update": "approved",
        "otp": "approved",
        "new_offer": "pending",
        "spring_sale": "paused",
        "win_a_prize": "rejected",
    }
    assert listed["order_update"].body_parameters == ("1", "2")


async def test_an_approved_template_with_its_parameters_is_sent(svc: Services, acs: AcsEmulator) -> None:
    """An approved template whose bindings match its body is sent, and the channel's list is asked once."""
    body = _template("tpl-ok", "order_update", {"1": "A-17", "2": "on its way"})
    assert await svc.sending.handle(_delivery(body)) == Outcome.SENT
    assert await svc.sending.handle(_delivery(_template("tpl-ok-2", "sample_template", {}))) == Outcome.SENT
    assert len(acs.sends("whatsapp")) == 2
    assert acs.request_counts()["templates"] == 1


@pytest.mark.parametrize(
    ("name", "language"),
    [("new_offer", "en_US"), ("spring_sale", "en_US"), ("win_a_prize", "en_US"), ("no_such", "en_US"), ("otp", "de")],
)
async def test_a_template_that_is_not_approved_is_rejected_unsent(
    svc: Services, acs: AcsEmulator, name: str, language: str
) -> None:
    """Pending, paused, rejected or unknown (in that language): Rejected with template-not-approved, nothing sent."""
    body = _template("tpl-no", name, {"1": "x"}, language=language)
    assert await svc.sending.handle(_delivery(body)) == Outcome.REJECTED
    assert await _reason(svc, "tpl-no") == (Status.REJECTED, "template-not-approved")
    assert acs.sends() == []


async def test_the_http_intake_answers_an_unapproved_template_with_its_field_error(
    svc: Services, acs: AcsEmulator
) -> None:
    """The intake refuses a paused template at once (HTTP 400): a field error, no row, nothing queued."""
    result = await svc.intake.submit(_template("tpl-http", "spring_sale", {"1": "20%"}))
    assert not result.accepted and not result.conflict
    assert [e.field for e in result.errors] == ["content.template"]
    assert result.errors[0].message.startswith("template-not-approved: the template is paused")
    assert await svc.ledger.get("tpl-http") is None


async def test_parameters_that_do_not_match_the_template_are_refused(svc: Services, acs: AcsEmulator) -> None:
    """One binding for a two-parameter body: 400 at the intake, Rejected on the queue, nothing sent."""
    body = _template("tpl-params", "order_update", {"1": "A-17"})
    result = await svc.intake.submit(body)
    assert [e.field for e in result.errors] == ["content.template.bodyBindings"]
    assert await svc.sending.handle(_delivery(body)) == Outcome.REJECTED
    assert await _reason(svc, "tpl-params") == (Status.REJECTED, "template-parameters-mismatch")
    assert acs.sends() == []


async def test_a_template_paused_after_caching_is_refused_once_the_cache_expires(
    svc: Services, acs: AcsEmulator, clock: Clock
) -> None:
    """The list is kept five minutes per channel; after that a newly paused template is refused."""
    assert await svc.sending.handle(_delivery(_template("tpl-a", "otp", {"1": "1"}, language="en"))) == Outcome.SENT
    acs.set_template("otp", "en", "paused", "Your code is {{1}}.")
    assert await svc.sending.handle(_delivery(_template("tpl-b", "otp", {"1": "2"}, language="en"))) == Outcome.SENT
    clock.advance(minutes=6)
    assert await svc.sending.handle(_delivery(_template("tpl-c", "otp", {"1": "3"}, language="en"))) == (
        Outcome.REJECTED
    )
    assert acs.request_counts()["templates"] == 2


async def test_the_emulator_fails_a_template_it_would_not_send(svc: Services, acs: AcsEmulator, webhook: Any) -> None:
    """Sent straight to ACS, a paused template is accepted and then Failed with Meta's 132015."""
    webhook(svc.events.record)
    acs.set_template("otp", "en", "approved", "Your code is {{1}}.")
    assert await svc.sending.handle(_delivery(_template("tpl-late", "otp", {"1": "1"}, language="en"))) == Outcome.SENT
    acs.set_template("otp", "en", "paused", "Your code is {{1}}.")  # paused between our check and Meta's
    assert await svc.sending.handle(_delivery(_template("tpl-late2", "otp", {"1": "2"}, language="en"))) == (
        Outcome.SENT
    )

    async def failed() -> bool:
        return (await _reason(svc, "tpl-late2"))[0] == Status.FAILED

    await eventually(failed)
    view = await svc.views.status("tpl-late2")
    assert view is not None and any("132015" in (event["detail"] or "") for event in view["events"])


async def test_free_text_to_someone_who_never_wrote_is_refused(strict: Services, acs: AcsEmulator) -> None:
    """Outside the window (no inbound message at all): 400 at the intake, Rejected on the queue, nothing sent."""
    result = await strict.intake.submit(whatsapp("wa-cold", to=USER))
    assert [e.field for e in result.errors] == ["content.text"]
    assert result.errors[0].message.startswith("outside-service-window")
    assert await strict.sending.handle(_delivery(whatsapp("wa-cold", to=USER))) == Outcome.REJECTED
    assert await _reason(strict, "wa-cold") == (Status.REJECTED, "outside-service-window")
    assert acs.sends() == []


async def _user_writes_in(strict: Services, acs: AcsEmulator, webhook: Any) -> None:
    """USER sends our WhatsApp channel a message, which opens their window once it is recorded."""
    webhook(strict.events.record)
    acs.inbound(USER, WHATSAPP_CHANNEL, "hello", channel="whatsapp")
    window = strict.events._inbound._window  # type: ignore[attr-defined]

    async def recorded() -> bool:
        return await window.last_inbound(WHATSAPP_CHANNEL, USER) is not None

    await eventually(recorded)


async def test_free_text_is_sent_inside_the_window_and_refused_after_it(
    strict: Services, acs: AcsEmulator, webhook: Any, clock: Clock
) -> None:
    """An inbound WhatsApp message opens the window for 24 hours; a template goes out either way."""
    await _user_writes_in(strict, acs, webhook)
    assert await strict.sending.handle(_delivery(whatsapp("wa-warm", to=USER))) == Outcome.SENT
    clock.advance(hours=25)
    assert await strict.sending.handle(_delivery(whatsapp("wa-late", to=USER))) == Outcome.REJECTED
    assert await _reason(strict, "wa-late") == (Status.REJECTED, "outside-service-window")
    template = _template("wa-template", "sample_template", {})
    assert await strict.sending.handle(_delivery(template)) == Outcome.SENT
    assert len(acs.sends("whatsapp")) == 2


async def test_a_repeat_of_an_accepted_message_is_the_same_message_after_the_window_closed(
    strict: Services, acs: AcsEmulator, webhook: Any, clock: Clock
) -> None:
    """Accepted inside the window, posted again under its id a day later: 202 for the same message, not 400."""
    await _user_writes_in(strict, acs, webhook)
    first = await strict.intake.submit(whatsapp("wa-again", to=USER))
    assert first.accepted and first.created
    clock.advance(hours=25)
    again = await strict.intake.submit(whatsapp("wa-again", to=USER))
    assert again.accepted and not again.created and again.message_id == "wa-again"


async def test_the_window_is_kept_under_the_keyed_hash_and_only_moves_forward(strict: Services) -> None:
    """A redelivered or older inbound event never moves the window back; the row holds no raw number."""
    window = strict.events._inbound._window  # type: ignore[attr-defined]
    await window.record(WHATSAPP_CHANNEL, USER, "2026-12-02T10:00:00Z")
    await window.record(WHATSAPP_CHANNEL, USER, "2026-12-01T10:00:00Z")
    last = await window.last_inbound(WHATSAPP_CHANNEL, USER)
    assert last is not None and last.isoformat().startswith("2026-12-02T10:00:00")
    rows = [row async for row in strict.storage.table(strict.names.inbound).query("PartitionKey ne @n", {"n": ""})]
    assert len(rows) == 1 and USER not in json.dumps(rows) and USER.lstrip("+") not in json.dumps(rows)


async def test_the_emulator_answers_free_text_outside_the_window_as_meta_does(
    svc: Services, acs: AcsEmulator, webhook: Any
) -> None:
    """With the app's check off, ACS accepts the text and then reports Failed with Meta's 131047."""
    webhook(svc.events.record)
    acs.configure(service_window=True)
    try:
        assert await svc.sending.handle(_delivery(whatsapp("wa-meta", to=USER))) == Outcome.SENT

        async def failed() -> bool:
            return (await _reason(svc, "wa-meta"))[0] == Status.FAILED

        await eventually(failed)
        view = await svc.views.status("wa-meta")
        assert view is not None and any("131047" in (event["detail"] or "") for event in view["events"])
        acs.inbound(USER, WHATSAPP_CHANNEL, "hi", channel="whatsapp")
        assert await svc.sending.handle(_delivery(whatsapp("wa-meta-2", to=USER))) == Outcome.SENT
        assert [t.final for t in acs.truth()][-1] == "Delivered"
    finally:
        acs.configure(service_window=False)
