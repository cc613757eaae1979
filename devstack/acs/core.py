"""The emulator's state and the operations on it, independent of HTTP.

Why: the ACS routes, the admin routes and the in-process `AcsEmulator` accessors must all do the
same thing (record a send, schedule its events, reset, inject an inbound message). They share this
one object, which lives on the emulator's event loop; nothing else mutates emulator state.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from devstack.acs import builders
from devstack.acs.auth import AuthPolicy
from devstack.acs.builders import Target
from devstack.acs.config import Settings, updated
from devstack.acs.delivery import Dispatcher
from devstack.acs.faults import FaultBook
from devstack.acs.models import Channel, InboundRecord
from devstack.acs.outcomes import Plan
from devstack.acs.responses import E164, bad_request
from devstack.acs.store import Ledger, SendFacts
from devstack.acs.templates import TemplateSpec, catalogue

logger = logging.getLogger(__name__)


class EmulatorCore:
    """Settings, ledger, faults and the event dispatcher of one running emulator."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ledger = Ledger()
        self.faults = FaultBook()
        self.dispatcher = Dispatcher(lambda: self.settings)
        self.endpoints: dict[str, str] = {}
        self.templates: dict[tuple[str, str], TemplateSpec] = catalogue()

    def auth_policy(self) -> AuthPolicy:
        settings = self.settings
        return AuthPolicy(settings.access_key, settings.allow_bearer, settings.lenient_host)

    def accept(self, facts: SendFacts, plan: Plan, target: Target | None) -> None:
        """Record one recipient's send and plan its events (nothing is scheduled for a rejection)."""
        self.ledger.record(facts, plan.final)
        if target is not None and not plan.rejected:
            self.dispatcher.schedule(target, plan, datetime.now(UTC))
        logger.info("send recorded channel=%s message_id=%s outcome=%s", facts.channel, facts.message_id, plan.final)

    def configure(self, body: dict[str, Any]) -> Settings:
        """Apply admin changes (report delay, webhook, schema, casing, topic, batching)."""
        self.settings = updated(self.settings, body)
        logger.info("settings changed keys=%s", ",".join(sorted(body)))
        return self.settings

    def set_webhook(self, url: str | None) -> None:
        self.settings = replace(self.settings, webhook_url=url)

    def set_template(self, spec: TemplateSpec) -> None:
        """Add a template to every channel's list, or change its state or body."""
        self.templates = {**self.templates, spec.key: spec}

    def last_inbound(self, user: str, channel_id: str) -> datetime | None:
        """When `user` last wrote to the WhatsApp channel (the start of the 24-hour service window)."""
        times = [
            record.at
            for record in self.ledger.inbound()
            if record.channel is Channel.WHATSAPP and record.sender == user and record.to == channel_id
        ]
        return max(times, default=None)

    def reset(self) -> None:
        """Forget sends, truth, operations, events, inbound messages and faults, and restore the template
        catalogue; abandon planned events."""
        self.ledger.clear()
        self.templates = catalogue()
        self.faults.clear()
        self.dispatcher.clear()
        logger.info("emulator reset")

    def inbound(self, body: dict[str, Any]) -> InboundRecord:
        """Emit `SMSReceived` or `AdvancedMessageReceived` for a message a user 'sent' to the app."""
        channel = _inbound_channel(body.get("channel", "sms"))
        sender = _inbound_field(body, "from")
        to = _inbound_field(body, "to")
        message = body.get("message", "")
        if not isinstance(message, str):
            raise bad_request("message must be a string")
        if not E164.match(sender):
            raise bad_request("from must be an E.164 phone number")
        now = datetime.now(UTC)
        if channel is Channel.SMS:
            spec = builders.sms_received(sender, to, message, now)
        else:
            spec = builders.whatsapp_received(sender, to, message, now)
        record = InboundRecord(channel, sender, to, spec.message_id or "", spec.event_id, now)
        self.ledger.add_inbound(record)
        self.dispatcher.emit(spec)
        logger.info("inbound emitted channel=%s message_id=%s", channel, record.message_id)
        return record

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            **self.endpoints,
            "sends": len(self.ledger.sends()),
            "pendingDeliveries": self.dispatcher.pending,
            "activeFaults": len(self.faults.active()),
            "requests": self.ledger.request_counts().get("total", 0),
            "settings": self.settings.to_json(),
        }

    async def close(self) -> None:
        await self.dispatcher.close()


CORE: web.AppKey[EmulatorCore] = web.AppKey("acs_core", EmulatorCore)


def _inbound_channel(value: Any) -> Channel:
    if value not in (Channel.SMS, Channel.WHATSAPP):
        raise bad_request("channel must be sms or whatsapp")
    return Channel(value)


def _inbound_field(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise bad_request(f"{key} is required")
    return value
