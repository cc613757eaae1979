"""Template approval and the 24-hour service window through the runner and the emulator (issue 18):
every template state over HTTP and from the queue, and free text before and after the user writes in."""

from __future__ import annotations

import json
from typing import Any

from shared.models import Status
from tests.e2e.conftest import Stack, wait_until
from tests.integration.conftest import WHATSAPP_CHANNEL

USER = "+14255550141"
NOT_APPROVED = [("new_offer", "en_US"), ("spring_sale", "en_US"), ("win_a_prize", "en_US"), ("no_such", "en_US")]


def _template(message_id: str, name: str, language: str, values: dict[str, str]) -> dict[str, Any]:
    template = {"name": name, "language": language, "values": values, "bodyBindings": list(values)}
    return {"id": message_id, "channel": "whatsapp", "to": USER, "content": {"template": template}}


def _text(message_id: str) -> dict[str, Any]:
    return {"id": message_id, "channel": "whatsapp", "to": USER, "content": {"text": f"hello {message_id}"}}


async def _status(stack: Stack, message_id: str) -> tuple[Status | None, str | None]:
    row = await stack.svc.ledger.get(message_id)
    return (row.status, row.reason) if row is not None else (None, None)


async def test_each_template_state_and_the_window_through_the_runner(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack: Stack = await make_stack(WHATSAPP_SERVICE_WINDOW="enforce")
    # Approved, with its parameter: 202 and sent, even to a user who never wrote (templates always may).
    code, _ = stack.http("POST", "/api/messages", _template("tpl-ok", "otp", "en", {"1": "4321"}))
    assert code == 202
    # Pending, paused, rejected and unknown: 400 with the field error over HTTP, Rejected from the queue.
    for i, (name, language) in enumerate(NOT_APPROVED):
        code, body = stack.http("POST", "/api/messages", _template(f"tpl-http-{i}", name, language, {"1": "x"}))
        assert code == 400, (name, body)
        assert body["errors"][0]["field"] == "content.template"
        assert body["errors"][0]["message"].startswith("template-not-approved")
        await stack.svc.outbound.send(json.dumps(_template(f"tpl-queue-{i}", name, language, {"1": "x"})))
    # Free text to a user who never wrote: refused over HTTP.
    code, body = stack.http("POST", "/api/messages", _text("txt-cold"))
    assert code == 400 and body["errors"][0]["message"].startswith("outside-service-window")

    queued = [f"tpl-queue-{i}" for i in range(len(NOT_APPROVED))]

    async def settled() -> bool:
        rows = [await _status(stack, m) for m in [*queued, "tpl-ok"]]
        return all(s in (Status.REJECTED, Status.DELIVERED) for s, _ in rows)

    await wait_until(settled, 60, "the templates to be sent or refused")
    assert [await _status(stack, m) for m in queued] == [(Status.REJECTED, "template-not-approved")] * len(queued)
    assert (await _status(stack, "tpl-ok"))[0] == Status.DELIVERED
    # The user writes in: the runner records it and the window opens; the same text now goes out.
    stack.acs.inbound(USER, WHATSAPP_CHANNEL, "hi", channel="whatsapp")

    async def window_open() -> bool:
        code, _ = stack.http("POST", "/api/messages", _text("txt-warm"))
        return code == 202

    await wait_until(window_open, 30, "the inbound message to open the window")
    await wait_until(lambda: _delivered(stack, "txt-warm"), 30, "the text to be delivered")
    # Exactly the approved template and the text sent inside the window reached ACS; nothing twice.
    assert len(stack.acs.sends("whatsapp")) == 2 and stack.acs.duplicates() == []


async def _delivered(stack: Stack, message_id: str) -> bool:
    return (await _status(stack, message_id))[0] == Status.DELIVERED
