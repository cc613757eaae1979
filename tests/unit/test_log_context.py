"""Log context: ids are bound once where the work starts, and every record of that work carries them."""

from __future__ import annotations

import asyncio
import logging

import pytest

from shared.errors import SendRejected, Throttled
from shared.observability import count, detached_context, emit, log_context
from shared.runtime import Services
from tests.bodies import sms
from tests.fakes import ScriptedProvider
from tests.unit.conftest import deliver


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> list[logging.LogRecord]:
    handler = _Records()
    logger = logging.getLogger("shared")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler.records
    logger.removeHandler(handler)
    logger.setLevel(previous)


def test_bound_dimensions_reach_every_record_of_the_block_and_leave_with_it(records: list[logging.LogRecord]) -> None:
    log = logging.getLogger("shared.test")
    with log_context(message_id="m-1", channel="sms"):
        emit(log, "message.sent", "sent", status="Sent")
        with log_context(channel="email", attempt=2):
            count(log, "sent")
    emit(log, "message.sent", "after")
    first, metric, after = records
    assert (first.message_id, first.channel, first.status) == ("m-1", "sms", "Sent")  # type: ignore[attr-defined]
    assert first.getMessage() == "sent message_id=m-1 channel=sms status=Sent"
    assert (metric.message_id, metric.channel, metric.attempt) == ("m-1", "email", 2)  # type: ignore[attr-defined]
    assert not hasattr(after, "message_id")
    assert after.getMessage() == "after"


def test_a_percent_sign_in_the_text_is_not_a_format() -> None:
    with pytest.raises(ValueError, match="undeclared dimensions"), log_context(body="x"):
        pass
    log = logging.getLogger("shared.test")
    handler = _Records()
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        emit(log, "reconcile.summary", "100% done", count=3)
    finally:
        log.removeHandler(handler)
    assert handler.records[0].getMessage() == "100% done count=3"


async def test_a_detached_task_does_not_carry_the_ids_of_the_work_that_started_it(
    records: list[logging.LogRecord],
) -> None:
    log = logging.getLogger("shared.test")

    async def background() -> None:
        emit(log, "feed.publish_failed", "background")

    with log_context(message_id="m-1"):
        await asyncio.get_running_loop().create_task(background(), context=detached_context())
        await asyncio.get_running_loop().create_task(background())
    detached, inherited = records
    assert not hasattr(detached, "message_id")
    assert inherited.message_id == "m-1"  # type: ignore[attr-defined]


@pytest.mark.parametrize("answer", ["sent", "refused", "throttled"])
async def test_every_record_of_the_send_path_names_its_message(
    svc: Services, provider: ScriptedProvider, records: list[logging.LogRecord], answer: str
) -> None:
    """The ids are bound once in `SendService.handle`; no step passes them, and none is left out."""
    if answer == "refused":
        provider.sends = [SendRejected("InvalidRecipient", "no such number")]
    elif answer == "throttled":
        provider.sends = [Throttled(30.0)]
    await deliver(svc, sms(f"ctx-{answer}"))
    about_message = [r for r in records if getattr(r, "event", "").startswith("message.")]
    assert about_message, "the send path emitted no message record"
    for record in about_message:
        assert record.message_id == f"ctx-{answer}", record.getMessage()  # type: ignore[attr-defined]
        assert record.channel == "sms"  # type: ignore[attr-defined]
        assert f"message_id=ctx-{answer}" in record.getMessage()
        assert "4255550100" not in record.getMessage()  # the recipient is masked, never raw
