"""The WhatsApp rules over in-memory fakes: the template cache, a channel ACS will not list, the window's edge."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from shared.errors import SendRejected, TransientError
from shared.models import WhatsAppRequest
from shared.services.whatsapp import ServiceWindow, TemplateCatalog, WhatsAppRules
from shared.templates import TemplateInfo
from shared.validation import CheckedRequest
from tests.fakes import FakeClock, MemoryTable

CHANNEL = "chan-1"
USER = "+14255550140"


class Source:
    """A template list that counts its calls and may fail."""

    def __init__(self, *templates: TemplateInfo, error: Exception | None = None) -> None:
        self.templates = list(templates)
        self.error = error
        self.calls = 0

    async def list_templates(self, channel_id: str) -> Sequence[TemplateInfo]:
        self.calls += 1
        await asyncio.sleep(0)
        if self.error is not None:
            raise self.error
        return self.templates


def _checked(content: dict[str, object]) -> CheckedRequest:
    request = WhatsAppRequest.model_validate({"channel": "whatsapp", "to": USER, "content": content})
    return CheckedRequest(request=request, message_id="m-1", sender=CHANNEL, segments=1)


def _text() -> CheckedRequest:
    return _checked({"text": "hi"})


def _template(name: str = "otp") -> CheckedRequest:
    return _checked({"template": {"name": name, "language": "en", "values": {"1": "9"}, "bodyBindings": ["1"]}})


def _rules(source: Source, clock: FakeClock, *, enforce: bool = True) -> tuple[WhatsAppRules, ServiceWindow]:
    window = ServiceWindow(MemoryTable("inbound"), b"k")
    return WhatsAppRules(TemplateCatalog(source, clock), window, clock, enforce_window=enforce), window


async def test_concurrent_sends_ask_for_a_channels_templates_once_per_five_minutes() -> None:
    """Ten sends at once make one request; the list is asked again only once it is five minutes old."""
    source, clock = Source(TemplateInfo("otp", "en", "approved", ("1",))), FakeClock()
    rules, _ = _rules(source, clock)
    assert await asyncio.gather(*(rules.refusal(_template()) for _ in range(10))) == [None] * 10
    clock.advance(minutes=4, seconds=59)
    await rules.refusal(_template())
    assert source.calls == 1
    clock.advance(seconds=1)
    await rules.refusal(_template())
    assert source.calls == 2


async def test_a_channel_acs_will_not_list_refuses_its_templates_instead_of_retrying() -> None:
    """A permanent answer (an unknown channel: 404) is no templates: template-not-approved, no exception."""
    rules, _ = _rules(Source(error=SendRejected("NotFound", "provider answered 404")), FakeClock())
    refusal = await rules.refusal(_template())
    assert refusal is not None and refusal.reason == "template-not-approved"


async def test_a_transient_failure_to_list_is_raised_for_a_retry() -> None:
    """ACS unreachable: the error goes up (the queue retries; the intake lets the send path decide)."""
    rules, _ = _rules(Source(error=TransientError("503")), FakeClock())
    with pytest.raises(TransientError):
        await rules.refusal(_template())


async def test_the_window_closes_exactly_24_hours_after_the_last_inbound_message() -> None:
    """Open at 23:59:59 after the user wrote, closed at 24:00:00; a later message opens it again."""
    clock = FakeClock()
    rules, window = _rules(Source(), clock)
    await window.record(CHANNEL, USER, clock().isoformat())
    clock.advance(hours=23, minutes=59, seconds=59)
    assert await rules.refusal(_text()) is None
    clock.advance(seconds=1)
    refusal = await rules.refusal(_text())
    assert refusal is not None and refusal.reason == "outside-service-window"
    await window.record(CHANNEL, USER, clock().isoformat())
    assert await rules.refusal(_text()) is None


async def test_the_window_is_per_channel_and_not_checked_unless_enforced() -> None:
    """A message to another channel opens nothing here; with the check off, free text always passes."""
    clock = FakeClock()
    rules, window = _rules(Source(), clock)
    await window.record("another-channel", USER, clock().isoformat())
    assert await rules.refusal(_text()) is not None
    relaxed, _ = _rules(Source(), clock, enforce=False)
    assert await relaxed.refusal(_text()) is None
