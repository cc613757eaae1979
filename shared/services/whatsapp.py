"""What Meta decides about a WhatsApp message before it is sent: template approval and the 24-hour window.

Why here, before the send: Meta only answers after the fact, with a Failed status (a template that is
not approved; 131047 "re-engagement message" for free text to someone who has not written in 24
hours). Checked first, the producer gets the reason at once (HTTP 400) or a Rejected row with it.

- Templates: the channel's list comes from ACS (`TemplateSource`), kept per channel for
  `TEMPLATE_CACHE_SECONDS` in this process, so a burst of sends asks once.
- The window: each inbound WhatsApp message moves the user's `ServiceWindowRow` forward (never back:
  redelivered and reordered events leave the latest time). Free text is allowed while the last inbound
  message is younger than 24 hours; templates always are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from shared.adapters.tables import TableStore
from shared.clock import Clock, parse_iso
from shared.errors import Conflict, EtagMismatch, FieldError, PermanentError
from shared.models import WhatsAppRequest
from shared.privacy import address_hash
from shared.schema import ServiceWindowRow
from shared.templates import (
    TEMPLATE_MISMATCH,
    TEMPLATE_NOT_APPROVED,
    TemplateInfo,
    approval_problem,
    parameter_problems,
    template_key,
)
from shared.validation import CheckedRequest

log = logging.getLogger(__name__)

TEMPLATE_CACHE_SECONDS = 300.0
SERVICE_WINDOW = timedelta(hours=24)
OUTSIDE_SERVICE_WINDOW = "outside-service-window"


@runtime_checkable
class TemplateSource(Protocol):
    async def list_templates(self, channel_id: str) -> Sequence[TemplateInfo]: ...


@dataclass(frozen=True)
class Refusal:
    """Why a WhatsApp request may not be sent: the outcome reason and the field errors behind it."""

    reason: str
    errors: tuple[FieldError, ...]


class TemplateCatalog:
    """The templates of each channel, as ACS listed them at most TEMPLATE_CACHE_SECONDS ago."""

    def __init__(self, source: TemplateSource, clock: Clock, ttl: float = TEMPLATE_CACHE_SECONDS) -> None:
        self._source = source
        self._now = clock
        self._ttl = timedelta(seconds=ttl)
        self._cache: dict[str, tuple[datetime, dict[tuple[str, str], TemplateInfo]]] = {}
        self._lock = asyncio.Lock()

    async def templates(self, channel_id: str) -> dict[tuple[str, str], TemplateInfo]:
        cached = self._cache.get(channel_id)
        if cached is not None and self._now() - cached[0] < self._ttl:
            return cached[1]
        async with self._lock:  # one request per channel, however many sends wait for it
            cached = self._cache.get(channel_id)
            if cached is not None and self._now() - cached[0] < self._ttl:
                return cached[1]
            listed = {info.key: info for info in await self._list(channel_id)}
            self._cache[channel_id] = (self._now(), listed)
            return listed

    async def _list(self, channel_id: str) -> Sequence[TemplateInfo]:
        """The channel's templates; none when ACS refuses the question for good (an unknown channel id
        answers 404), so its sends are refused as unapproved rather than retried to the poison queue."""
        try:
            return await self._source.list_templates(channel_id)
        except PermanentError as exc:
            log.warning("whatsapp templates not listed channel=%s error=%s", channel_id, exc)
            return ()

    async def lookup(self, channel_id: str, name: str, language: str) -> TemplateInfo | None:
        return (await self.templates(channel_id)).get(template_key(name, language))


class ServiceWindow:
    """When each WhatsApp user last wrote to each channel (keyed hash of the number only)."""

    def __init__(self, table: TableStore, hash_key: bytes) -> None:
        self._table = table
        self._key = hash_key

    async def record(self, channel_id: str, sender: str, at: str) -> None:
        """Move the user's last inbound time to `at`, unless a later one is already recorded."""
        row = ServiceWindowRow(address_hash(self._key, sender), channel_id, at)
        for _ in range(5):  # concurrent inbound events of one user: read, decide, write under the etag
            stored = await self._table.get(*ServiceWindowRow.keys(row.sender_hash, channel_id))
            try:
                if stored is None:
                    await self._table.insert(row.to_entity())
                elif parse_iso(ServiceWindowRow.from_entity(stored.entity).last_inbound_at) < parse_iso(at):
                    await self._table.update(row.to_entity(), stored.etag)
                return
            except (Conflict, EtagMismatch):
                continue

    async def last_inbound(self, channel_id: str, recipient: str) -> datetime | None:
        stored = await self._table.get(*ServiceWindowRow.keys(address_hash(self._key, recipient), channel_id))
        if stored is None:
            return None
        with contextlib.suppress(ValueError):
            return parse_iso(ServiceWindowRow.from_entity(stored.entity).last_inbound_at)
        return None


class WhatsAppRules:
    """The checks of a WhatsApp request: an approved template with matching parameters, or free text
    inside the window (when `enforce_window`, as in Azure; the local stack leaves it off unless asked)."""

    def __init__(
        self, catalog: TemplateCatalog | None, window: ServiceWindow, clock: Clock, *, enforce_window: bool
    ) -> None:
        self._catalog = catalog
        self._window = window
        self._now = clock
        self._enforce_window = enforce_window

    async def refusal(self, checked: CheckedRequest) -> Refusal | None:
        request = checked.request
        if not isinstance(request, WhatsAppRequest):
            return None
        template = request.content.template
        if template is None:
            return await self._window_refusal(checked.sender, request.to)
        if self._catalog is None:  # a provider that cannot list templates (a test's fake)
            return None
        info = await self._catalog.lookup(checked.sender, template.name, template.language)
        problem = approval_problem(template, info)
        if problem is not None:
            return Refusal(TEMPLATE_NOT_APPROVED, (problem,))
        assert info is not None
        mismatch = parameter_problems(template, info)
        return Refusal(TEMPLATE_MISMATCH, tuple(mismatch)) if mismatch else None

    async def _window_refusal(self, channel_id: str, to: str) -> Refusal | None:
        if not self._enforce_window:
            return None
        last = await self._window.last_inbound(channel_id, to)
        if last is not None and self._now() - last < SERVICE_WINDOW:
            return None
        message = f"{OUTSIDE_SERVICE_WINDOW}: the recipient has not written in 24 hours; send an approved template"
        return Refusal(OUTSIDE_SERVICE_WINDOW, (FieldError("content.text", message),))
