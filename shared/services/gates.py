"""The checks a request passes before it may be sent, in order: expiry, pause, consent, what Meta
decides for WhatsApp (an approved template; free text inside the 24-hour window), rate.

They need no ledger row, so they run before the row is written: a request that passes them all is
claimed by the very insert that accepts it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from shared.services.consent import ConsentService
from shared.services.control import ControlService
from shared.services.ratelimit import RateGate
from shared.services.whatsapp import WhatsAppRules
from shared.validation import CheckedRequest

PAUSE_RECHECK_SECONDS = 10.0
# A wait for a rate token this short is slept through in place; a longer one re-schedules the request.
MAX_INLINE_WAIT = 0.5


class Gate(StrEnum):
    GO = "go"
    EXPIRED = "expired"
    PAUSED = "paused"
    SUPPRESSED = "suppressed"
    REFUSED = "refused"  # WhatsApp would refuse it (template not approved, outside the window): Rejected
    WAIT = "wait"  # over the sender's rate: try again after `delay`


@dataclass(frozen=True)
class Verdict:
    gate: Gate
    reason: str = ""
    delay: float = 0.0


GO = Verdict(Gate.GO)


class SendGates:
    def __init__(
        self,
        consent: ConsentService,
        control: ControlService,
        rate: RateGate,
        clock: Callable[[], datetime],
        whatsapp: WhatsAppRules | None = None,
    ) -> None:
        self._consent = consent
        self._control = control
        self._rate = rate
        self._now = clock
        self._whatsapp = whatsapp

    async def check(self, checked: CheckedRequest) -> Verdict:
        request = checked.request
        if request.expires_at is not None and request.expires_at <= self._now():
            return Verdict(Gate.EXPIRED, "expiresAt passed before the message could be sent")
        if await self._control.is_paused(checked.channel.value, checked.sender):
            return Verdict(Gate.PAUSED, delay=PAUSE_RECHECK_SECONDS)
        decision = await self._consent.check(checked.channel, request.to, checked.sender)
        if not decision.allowed:
            return Verdict(Gate.SUPPRESSED, decision.reason or "no consent")
        refusal = await self._whatsapp.refusal(checked) if self._whatsapp is not None else None
        if refusal is not None:
            return Verdict(Gate.REFUSED, refusal.reason)
        wait = self._rate.wait_for(checked.sender)
        if wait > MAX_INLINE_WAIT:
            return Verdict(Gate.WAIT, "rate-gate", delay=wait + random.uniform(0, 1))
        if wait > 0:
            await asyncio.sleep(wait)
        return GO
