"""Inbound messages (SMS and WhatsApp received by our numbers): consent keywords and the WhatsApp
service window first, then the row.

The inbound row marks the event done, so consent is changed before it: a failure between the two
leaves no row, and Event Grid's redelivery applies the (idempotent, event-keyed) consent change again.
"""

from __future__ import annotations

import contextlib
import logging

from shared.adapters.tables import TableStore
from shared.clock import parse_iso
from shared.errors import Conflict, ValidationFailed
from shared.events_model import AcsEvent
from shared.models import Channel
from shared.observability import emit
from shared.privacy import acs_address, address_hash, mask
from shared.schema import inbound_entity
from shared.services.consent import (
    ALL_SENDERS,
    OPT_IN_KEYWORDS,
    OPT_OUT_KEYWORDS,
    ConsentService,
    ConsentState,
    keyword_of,
)
from shared.services.whatsapp import ServiceWindow
from shared.settings import Settings

log = logging.getLogger(__name__)


class InboundRecorder:
    def __init__(
        self, settings: Settings, inbound: TableStore, consent: ConsentService, window: ServiceWindow | None = None
    ) -> None:
        self._settings = settings
        self._table = inbound
        self._consent = consent
        self._window = window

    async def record(self, event: AcsEvent) -> bool:
        """Apply its keyword, then store it; False if it was stored before (a redelivery)."""
        sender = event.sender or ""
        keyword = keyword_of(event.text or "") if event.channel == Channel.SMS else None
        if keyword in OPT_OUT_KEYWORDS or keyword in OPT_IN_KEYWORDS:
            await self._apply_keyword(event, keyword)
        if event.channel == Channel.WHATSAPP and self._window is not None:
            # the 24-hour service window opens (again); idempotent, so before the row that marks it done
            await self._window.record(event.recipient or "", sender, event.event_time)
        try:
            sender_hash = address_hash(self._settings.consent_hash_key, sender)
            await self._table.insert(inbound_entity(event, sender_hash, mask(sender), keyword))
        except Conflict:
            return False
        emit(
            log,
            "event.recorded",
            "inbound recorded",
            channel=event.channel.value,
            event_type=event.event_type,
            recipient=mask(sender),
        )
        return True

    def _sender_key(self, our_number: str) -> str:
        """The sender identity sends check consent against: the configured one this number is."""
        for configured in self._settings.senders.get(Channel.SMS, ()):
            with contextlib.suppress(ValidationFailed):
                if acs_address(Channel.SMS, configured) == our_number:
                    return configured
        return our_number

    async def _apply_keyword(self, event: AcsEvent, keyword: str) -> None:
        opt_out = keyword in OPT_OUT_KEYWORDS
        target = ALL_SENDERS if keyword == "STOPALL" else self._sender_key(event.recipient or "")
        state = ConsentState.OPTED_OUT if opt_out else ConsentState.OPTED_IN
        await self._consent.set_state(
            Channel.SMS,
            event.sender or "",
            target,
            state,
            reason=f"inbound keyword {keyword}",
            actor="recipient",
            now=parse_iso(event.event_time),
            change_id=event.key,
        )
        emit(
            log,
            "consent.changed",
            "consent changed by keyword",
            channel="sms",
            status=state.value,
            recipient=mask(event.sender or ""),
            sender=mask(target) if target != ALL_SENDERS else target,
        )
