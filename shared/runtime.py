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
from shared.adapters.blobs import PayloadStore
from shared.adapters.eventgrid import FeedPublisher
from shared.adapters.identity import managed_identity
from shared.adapters.queues import QueueWriter
from shared.adapters.storage import StorageClients
from shared.adapters.tables import TableStore
from shared.clock import Clock, utc_now
from shared.ledger import Ledger, TransitionHook
from shared.models import Channel
from shared.schema import TableNames
from shared.services.acceptance import Acceptance
from shared.services.audit import AuditLog
from shared.services.consent import ConsentService
from shared.services.control import ControlService
from shared.services.correlation import Correlation
from shared.services.deadletter import DeadLetterService
from shared.services.decoding import RequestDecoder
from shared.services.dispatch import Dispatcher
from shared.services.due import RETENTION_PARTITION, DueIndex
from shared.services.endings import SendEndings
from shared.services.events import EventService
from shared.services.fallback import FallbackHook, Fallbacks
from shared.services.gates import SendGates
from shared.services.inbound import InboundRecorder
from shared.services.intake import IntakeService
from shared.services.orphans import OrphanSweep
from shared.services.outbox import FEED_PARTITION, Outbox
from shared.services.providers import AcsProvider, Provider
from shared.services.ratelimit import RateGate
from shared.services.reconcile import ReconcileService, ReconcileStores, SendQueues, Sweeps
from shared.services.recovery import Recovery
from shared.services.rejections import EventRejections, RequestRejections
from shared.services.retention import RetentionService, RetentionStores
from shared.services.sending import SendService, SendSteps
from shared.services.views import MessageViews
from shared.services.whatsapp import ServiceWindow, TemplateCatalog, TemplateSource, WhatsAppRules
from shared.settings import Settings, load_settings
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
    views: MessageViews
    provider: Provider
    clock: Clock
    credential: Any = None
    feed: Outbox | None = None
    priority_lane: QueueWriter | None = None  # the high-priority lane's queue (%SEND_QUEUE%-priority)
    fallbacks: Fallbacks | None = None
    fallback_hook: FallbackHook | None = None  # the ledger's hook that spawns them after the commit

    async def close(self) -> None:
        if self.fallback_hook is not None:
            await self.fallback_hook.drain()
        if self.feed is not None:
            await self.feed.close()
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
    feed_by_identity = bool(settings.feed_topic_endpoint) and not settings.feed_topic_key
    return not settings.storage_connection_string or acs_by_identity or feed_by_identity


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
    storage, provider = await _connect(settings, provider, credential)
    parts = _parts(settings, storage, provider, clock, credential)
    events = event_service(settings, storage, parts.names, parts.ledger, parts.consent, clock)
    acceptance = Acceptance(parts.ledger, parts.outbound, parts.payloads, parts.due, clock, parts.priority)
    rejections = RequestRejections(settings, parts.ledger, parts.retention_index, parts.payloads, clock)
    sending = _send_service(parts, events, acceptance, rejections)
    fallbacks = Fallbacks(settings, parts.ledger, acceptance, rejections, parts.due, clock)
    parts.fallback_hook.attach(fallbacks.spawn)
    dead = _dead_letter_service(parts)
    return Services(
        settings=settings,
        storage=storage,
        sending=sending,
        events=events,
        dead_letters=dead,
        intake=IntakeService(settings, acceptance, rejections, clock, parts.whatsapp, sending.send_now),
        reconcile=_reconcile_service(parts, events, dead, fallbacks),
        retention=_retention_service(parts),
        views=MessageViews(parts.table(parts.names.messages)),
        provider=provider,
        clock=clock,
        credential=credential,
        fallbacks=fallbacks,
        **_exposed_parts(parts),
    )


def _exposed_parts(parts: _Parts) -> dict[str, Any]:
    """The parts that callers (function_app, the CLI, tests) reach through `Services` as they are."""
    return {
        "names": parts.names,
        "ledger": parts.ledger,
        "outbound": parts.outbound,
        "poison": parts.poison,
        "audit": parts.audit,
        "consent": parts.consent,
        "control": parts.control,
        "due": parts.due,
        "feed": parts.feed,
        "priority_lane": parts.priority,
        "fallback_hook": parts.fallback_hook,
    }


async def _connect(settings: Settings, provider: Provider | None, credential: Any) -> tuple[StorageClients, Provider]:
    """The storage clients, with every table and queue in place, and the provider (ACS unless given).
    On failure nothing is left open: nobody else holds the clients yet (storage unreachable, bad ACS
    settings), and aiohttp would warn "Unclosed client session" as the process exits."""
    try:
        storage = StorageClients(settings, credential)
    except BaseException:
        await _close(credential)
        raise
    try:
        await _provision(settings, storage)
        if provider is None:
            connection = parse_acs_connection(settings.acs_connection_string, settings.acs_endpoint, credential)
            provider = AcsProvider(AcsSenders(connection, settings.acs_timeouts))
    except BaseException:
        await storage.close()
        await _close(credential)
        raise
    return storage, provider


async def _provision(settings: Settings, storage: StorageClients) -> None:
    """Create missing tables and queues (in Azure the Bicep already did)."""
    for name in TableNames(settings.table_prefix).all():
        await storage.table(name).create_if_missing()
    for queue in settings.queue_names:
        await storage.queue(queue).create_if_missing()


@dataclass(frozen=True)
class _Parts:
    """The collaborators several services share, built once before the services themselves."""

    settings: Settings
    storage: StorageClients
    names: TableNames
    provider: Provider
    clock: Clock
    ledger: Ledger
    outbound: QueueWriter
    poison: QueueWriter
    priority: QueueWriter
    priority_poison: QueueWriter
    audit: AuditLog
    consent: ConsentService
    control: ControlService
    due: DueIndex
    retention_index: DueIndex
    payloads: PayloadStore
    feed: Outbox | None
    fallback_hook: FallbackHook
    whatsapp: WhatsAppRules

    def table(self, name: str) -> TableStore:
        return self.storage.table(name)


def _feed(
    settings: Settings, storage: StorageClients, names: TableNames, clock: Clock, credential: Any
) -> Outbox | None:
    """The status feed's outbox, when a topic is configured (opt-in)."""
    endpoint = settings.feed_topic_endpoint
    if endpoint is None:
        return None
    if settings.feed_topic_key:
        publisher = FeedPublisher.with_key(endpoint, settings.feed_topic_key)
    else:
        publisher = FeedPublisher(endpoint, credential)
    intents = DueIndex(storage.table(names.due), FEED_PARTITION)
    return Outbox(storage.table(names.messages), intents, publisher, clock, settings.feed_source)


def _parts(
    settings: Settings, storage: StorageClients, provider: Provider, clock: Clock, credential: Any = None
) -> _Parts:
    names = TableNames(settings.table_prefix)
    audit = AuditLog(storage.table(names.audit))
    feed = _feed(settings, storage, names, clock, credential)
    due = DueIndex(storage.table(names.due))
    fallback_hook = FallbackHook(due, clock)
    hooks: list[TransitionHook] = [feed, fallback_hook] if feed is not None else [fallback_hook]
    return _Parts(
        settings=settings,
        storage=storage,
        names=names,
        provider=provider,
        clock=clock,
        ledger=Ledger(storage.table(names.messages), settings.consent_hash_key, hooks=hooks),
        feed=feed,
        fallback_hook=fallback_hook,
        outbound=storage.queue(settings.send_queue),
        poison=storage.queue(settings.poison_queue),
        priority=storage.queue(settings.priority_queue),
        priority_poison=storage.queue(settings.priority_poison_queue),
        audit=audit,
        consent=ConsentService(storage.table(names.consent), audit, settings.consent_hash_key),
        control=ControlService(storage.table(names.control), audit),
        due=due,
        retention_index=DueIndex(storage.table(names.retention), RETENTION_PARTITION),
        payloads=storage.payloads(names.payload_container),
        whatsapp=_whatsapp_rules(settings, storage, names, provider, clock),
    )


def _whatsapp_rules(
    settings: Settings, storage: StorageClients, names: TableNames, provider: Provider, clock: Clock
) -> WhatsAppRules:
    """Template approval (asked of ACS, cached per channel) and the 24-hour window (from inbound rows)."""
    catalog = TemplateCatalog(provider, clock) if isinstance(provider, TemplateSource) else None
    window = ServiceWindow(storage.table(names.inbound), settings.consent_hash_key)
    return WhatsAppRules(catalog, window, clock, enforce_window=settings.enforce_service_window)


def _send_service(
    parts: _Parts, events: EventService, acceptance: Acceptance, rejections: RequestRejections
) -> SendService:
    """The send recipe and the modules that own its steps."""
    settings, ledger, clock = parts.settings, parts.ledger, parts.clock
    gate = RateGate(lambda sender: settings.rate_per_minute(_channel_of(settings, sender), sender))
    endings = SendEndings(settings, ledger, acceptance, parts.retention_index, clock)
    # A status that beat its send's answer is parked by the event service; the sender re-matches it.
    dispatcher = Dispatcher(settings, ledger, parts.provider, events.correlation, events, endings, parts.due, clock)
    steps = SendSteps(
        decoder=RequestDecoder(settings, parts.payloads, rejections, clock),
        gates=SendGates(parts.consent, parts.control, gate, clock, parts.whatsapp),
        acceptance=acceptance,
        rejections=rejections,
        recovery=Recovery(dispatcher, endings, parts.provider, clock, settings.acs_timeouts.claim_lease),
        dispatcher=dispatcher,
        endings=endings,
    )
    return SendService(ledger, steps)


def _dead_letter_service(parts: _Parts) -> DeadLetterService:
    return DeadLetterService(
        parts.ledger,
        parts.table(parts.names.dead_letters),
        parts.clock,
        parts.retention_index,
        parts.settings.retention_days["content"],
        content_key=parts.settings.consent_hash_key,
    )


def _reconcile_service(
    parts: _Parts, events: EventService, dead: DeadLetterService, fallbacks: Fallbacks
) -> ReconcileService:
    return ReconcileService(
        settings=parts.settings,
        ledger=parts.ledger,
        stores=ReconcileStores(parts.due, parts.table(parts.names.reports), parts.retention_index),
        queues=SendQueues(parts.outbound, parts.poison, parts.priority, parts.priority_poison),
        provider=parts.provider,
        sweeps=Sweeps(
            OrphanSweep(events, parts.ledger, events.correlation, parts.table(parts.names.orphans)),
            parts.feed,
            fallbacks,
        ),
        dead_letters=dead,
        clock=parts.clock,
    )


def _retention_service(parts: _Parts) -> RetentionService:
    names = parts.names
    stores = RetentionStores(
        messages=parts.table(names.messages),
        provider_ids=parts.table(names.provider_ids),
        others=tuple(parts.table(n) for n in (names.orphans, names.inbound, names.dead_letters, names.rejected_events)),
        rejected_events=parts.table(names.rejected_events),
        payloads=parts.payloads,
    )
    return RetentionService(
        settings=parts.settings,
        ledger=parts.ledger,
        retention=parts.retention_index,
        # Entries scheduled before retention had a table of its own, until the last of them is due.
        legacy=(DueIndex(parts.table(names.due), RETENTION_PARTITION),),
        stores=stores,
        consent=parts.consent,
        audit=parts.audit,
        clock=parts.clock,
    )


def event_service(
    settings: Settings,
    storage: StorageClients,
    names: TableNames,
    ledger: Ledger,
    consent: ConsentService,
    clock: Clock,
) -> EventService:
    """The event path's services (a fresh instance has nothing in memory: tests use that too)."""
    return EventService(
        settings,
        ledger,
        Correlation(storage.table(names.provider_ids)),
        storage.table(names.orphans),
        InboundRecorder(
            settings,
            storage.table(names.inbound),
            consent,
            ServiceWindow(storage.table(names.inbound), settings.consent_hash_key),
        ),
        consent,
        EventRejections(storage.table(names.rejected_events), clock),
        clock,
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
            configure_telemetry(settings.appinsights_connection_string, settings.trace_sampling_ratio)
            _services = await build_services(settings)
    return _services
