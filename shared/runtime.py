"""The composition root: settings, clients and services, built once per process on first use.

Why lazy: nothing may do I/O at import (cold start is measured, and `func start` indexes the app by
importing it). The first invocation builds everything and creates missing tables and queues (in
Azure the Bicep already did); later invocations reuse the same async clients on the same loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.adapters.acs import AcsSenders, parse_acs_connection
from shared.adapters.identity import managed_identity
from shared.adapters.queues import QueueWriter
from shared.adapters.storage import StorageClients
from shared.clock import Clock, utc_now
from shared.ledger import Ledger
from shared.models import Channel
from shared.services.audit import AuditLog
from shared.services.consent import ConsentService
from shared.services.control import ControlService
from shared.services.deadletter import DeadLetterService
from shared.services.due import RETENTION_PARTITION, DueIndex
from shared.services.events import EventService, Tables
from shared.services.intake import IntakeService
from shared.services.providers import AcsProvider, Provider
from shared.services.ratelimit import RateGate
from shared.services.reconcile import ReconcileService
from shared.services.retention import RetentionService
from shared.services.sending import SendService
from shared.settings import Settings, load_settings
from shared.tables import TableNames
from shared.telemetry import configure_telemetry


@dataclass(frozen=True)
class Services:
    settings: Settings
    storage: StorageClients
    names: TableNames
    ledger: Ledger
    outbound: QueueWriter
    poison: QueueWriter
    audit: AuditLog
    consent: ConsentService
    control: ControlService
    due: DueIndex
    sending: SendService
    events: EventService
    dead_letters: DeadLetterService
    intake: IntakeService
    reconcile: ReconcileService
    retention: RetentionService
    provider: Provider
    clock: Clock
    credential: Any = None

    async def close(self) -> None:
        await self.provider.close()
        await self.storage.close()
        await _close(self.credential)


async def _close(credential: Any) -> None:
    if credential is not None:
        await credential.close()


def _channel_of(settings: Settings, sender: str) -> Channel:
    for channel, senders in settings.senders.items():
        if sender in senders:
            return channel
    return Channel.SMS


def needs_credential(settings: Settings, provider: Provider | None = None) -> bool:
    """Whether any client authenticates with Entra ID (storage or ACS without a connection string)."""
    acs_by_identity = provider is None and not settings.acs_connection_string
    return not settings.storage_connection_string or acs_by_identity


def app_credential(settings: Settings) -> Any:
    """The function app's credential: its managed identity (user-assigned when AZURE_CLIENT_ID is set)."""
    return managed_identity(settings.managed_identity_client_id)


async def build_services(
    settings: Settings,
    provider: Provider | None = None,
    clock: Clock = utc_now,
    credential_factory: Callable[[Settings], Any] = app_credential,
) -> Services:
    """Wire every service for `settings`, creating missing tables and queues. One credential, made by
    `credential_factory` only if some client needs it, is shared by every client and closed with them."""
    credential = credential_factory(settings) if needs_credential(settings, provider) else None
    try:
        storage = StorageClients(settings, credential)
    except BaseException:
        await _close(credential)
        raise
    names = TableNames(settings.table_prefix)
    outbound, poison = storage.queue(settings.send_queue), storage.queue(settings.poison_queue)
    try:
        for name in names.all():
            await storage.table(name).create_if_missing()
        await outbound.create_if_missing()
        await poison.create_if_missing()
        if provider is None:
            connection = parse_acs_connection(settings.acs_connection_string, settings.acs_endpoint, credential)
            provider = AcsProvider(AcsSenders(connection))
    except BaseException:
        # Nobody else holds the clients yet (storage unreachable, bad ACS settings): left open, aiohttp
        # would warn "Unclosed client session" as the process exits.
        await storage.close()
        await _close(credential)
        raise
    ledger = Ledger(storage.table(names.messages), settings.consent_hash_key)
    audit = AuditLog(storage.table(names.audit))
    consent = ConsentService(storage.table(names.consent), audit, settings.consent_hash_key)
    control = ControlService(storage.table(names.control), audit)
    due = DueIndex(storage.table(names.due))
    events = EventService(
        settings,
        ledger,
        Tables(
            storage.table(names.messages),
            storage.table(names.provider_ids),
            storage.table(names.orphans),
            storage.table(names.inbound),
        ),
        consent,
        clock,
    )
    retention_index = DueIndex(storage.table(names.due), RETENTION_PARTITION)
    payloads = storage.payloads(names.payload_container)
    gate = RateGate(lambda sender: settings.rate_per_minute(_channel_of(settings, sender), sender))

    sending = SendService(
        settings=settings,
        ledger=ledger,
        outbound=outbound,
        provider=provider,
        consent=consent,
        control=control,
        gate=gate,
        due=due,
        provider_ids=storage.table(names.provider_ids),
        clock=clock,
        on_sent=events.rematch,  # a WhatsApp status beat its send's answer and was parked (any instance)
        retention=retention_index,
        remember_provider_id=events.remember_provider_id,
        whatsapp_in_flight=events.whatsapp_send_in_flight,
        payloads=payloads,
    )
    dead = DeadLetterService(
        ledger,
        storage.table(names.dead_letters),
        clock,
        retention_index,
        settings.retention_days["content"],
        content_key=settings.consent_hash_key,
    )
    intake = IntakeService(settings, sending, clock)
    reconcile = ReconcileService(
        settings=settings,
        ledger=ledger,
        due=due,
        outbound=outbound,
        poison=poison,
        provider=provider,
        events=events,
        orphans=storage.table(names.orphans),
        reports=storage.table(names.reports),
        dead_letters=dead,
        clock=clock,
        retention=retention_index,
    )
    retention = RetentionService(
        settings=settings,
        ledger=ledger,
        retention=retention_index,
        messages=storage.table(names.messages),
        provider_ids=storage.table(names.provider_ids),
        others=[storage.table(n) for n in (names.orphans, names.inbound, names.dead_letters)],
        consent=consent,
        audit=audit,
        clock=clock,
        payloads=payloads,
    )
    return Services(
        settings=settings,
        storage=storage,
        names=names,
        ledger=ledger,
        outbound=outbound,
        poison=poison,
        audit=audit,
        consent=consent,
        control=control,
        due=due,
        sending=sending,
        events=events,
        dead_letters=dead,
        intake=intake,
        reconcile=reconcile,
        retention=retention,
        provider=provider,
        clock=clock,
        credential=credential,
    )


_services: Services | None = None
_lock: asyncio.Lock | None = None


async def services(env: Mapping[str, str] | None = None) -> Services:
    """The process-wide services, built on first call (settings read once)."""
    global _services, _lock  # one composition root per process, by design
    if _services is not None:
        return _services
    if _lock is None:
        _lock = asyncio.Lock()
    async with _lock:
        if _services is None:
            settings = load_settings(env)
            configure_telemetry(settings.appinsights_connection_string)
            _services = await build_services(settings)
    return _services
