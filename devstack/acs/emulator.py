"""`AcsEmulator`: the in-process handle on an ACS emulator, for tests and the demo.

Why: a test wants `with AcsEmulator() as acs:` and then plain method calls (sends, truth, faults),
not HTTP. The emulator runs its own event loop in a background thread; every accessor hops onto
that loop, so the emulator's state is only ever touched by one thread.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from devstack.acs.config import DEFAULT_KEY, DeliveryPolicy, Settings
from devstack.acs.faults import Fault
from devstack.acs.loopthread import InBackground, LoopThread
from devstack.acs.models import (
    DEFAULT_TOPIC,
    Channel,
    DataCasing,
    DeliveryRecord,
    EventSchema,
    InboundRecord,
    SendRecord,
    TruthRecord,
)
from devstack.acs.server import EmulatorServer, Listen
from devstack.acs.templates import TemplateSpec


def connection_string(endpoint: str, access_key: str) -> str:
    """`endpoint=<url>/;accesskey=<key>`, the form ACS connection strings take."""
    return f"endpoint={endpoint}/;accesskey={access_key}"


class AcsEmulator(InBackground):
    """A running (after `start()`) ACS emulator on loopback, with Python accessors for its state."""

    def __init__(
        self,
        port: int = 0,
        access_key: str = DEFAULT_KEY,
        webhook_url: str | None = None,
        report_delay: float = 1.0,
        *,
        late_delay: float | None = None,
        operation_delay: float | None = None,
        host: str = "127.0.0.1",
        tls_port: int | None = None,
        event_schema: EventSchema | str = EventSchema.EVENTGRID,
        data_casing: DataCasing | str = DataCasing.CAMEL,
        topic: str = DEFAULT_TOPIC,
        allow_bearer: bool = False,
        lenient_host: bool = False,
        max_events_per_batch: int = 1,
        preferred_batch_kb: int = 64,
        delivery: DeliveryPolicy | None = None,
    ) -> None:
        settings = Settings(
            access_key=access_key,
            webhook_url=webhook_url,
            report_delay=report_delay,
            late_delay=late_delay,
            operation_delay=operation_delay,
            schema=EventSchema(event_schema),
            casing=DataCasing(data_casing),
            topic=topic,
            allow_bearer=allow_bearer,
            lenient_host=lenient_host,
            max_events_per_batch=max_events_per_batch,
            preferred_batch_kb=preferred_batch_kb,
            delivery=delivery or DeliveryPolicy(),
        )
        self._server = EmulatorServer(settings, Listen(host, port, tls_port))
        self._thread = LoopThread("acs-emulator", self._server.start, self._server.stop)

    # where to reach it (start, stop and `with` come from InBackground) -----------------------

    @property
    def access_key(self) -> str:
        return self._server.core.settings.access_key

    @property
    def endpoint(self) -> str:
        """`http://127.0.0.1:PORT`, for `Client(endpoint, AzureKeyCredential(key))`."""
        return self._server.endpoint

    @property
    def connection_string(self) -> str:
        """Plain-HTTP connection string. The SDKs' `from_connection_string` would switch it to https,
        so parse it and use the client constructor (acs-contract §2.2), or use `tls_connection_string`."""
        return connection_string(self.endpoint, self.access_key)

    @property
    def tls_endpoint(self) -> str | None:
        return self._server.tls_endpoint

    @property
    def tls_connection_string(self) -> str | None:
        """HTTPS connection string for `from_connection_string(..., connection_verify=False)`."""
        return None if self.tls_endpoint is None else connection_string(self.tls_endpoint, self.access_key)

    @property
    def tls_cert_pem(self) -> bytes | None:
        """The self-signed certificate, for clients that prefer `connection_verify=<ca file>`."""
        return self._server.tls_cert_pem

    # configuration ---------------------------------------------------------------------------

    def set_webhook(self, url: str | None) -> None:
        """Deliver events to `url` from now on (None: keep logging them as undeliverable)."""
        core = self._server.core
        self._thread.call(lambda: core.set_webhook(url))

    def configure(self, **changes: Any) -> Settings:
        """Change settings as `PUT /admin/config` does, with Python names (report_delay, schema,
        max_events_per_batch, …); a value out of range raises `ConfigError`."""
        core = self._server.core

        if "schema" in changes:
            changes["schema"] = EventSchema(changes["schema"])
        if "casing" in changes:
            changes["casing"] = DataCasing(changes["casing"])

        def apply() -> Settings:
            core.settings = replace(core.settings, **changes)
            return core.settings

        return self._thread.call(apply)

    @property
    def settings(self) -> Settings:
        return self._server.core.settings

    # inspection ------------------------------------------------------------------------------

    def sends(self, channel: Channel | str | None = None) -> list[SendRecord]:
        """Accepted sends, one per recipient, oldest first; repeats of a repeatability id are not here."""
        ledger = self._server.core.ledger
        wanted = Channel(channel) if channel is not None else None
        return self._thread.call(lambda: ledger.sends(wanted))

    def duplicates(self) -> list[dict[str, Any]]:
        """Groups of accepted sends with the same channel, recipient and content, seen more than once."""
        return self._thread.call(self._server.core.ledger.duplicates)

    def truth(self) -> list[TruthRecord]:
        """The final status the emulator intends for every send (rejections included)."""
        return self._thread.call(self._server.core.ledger.truth)

    def events(self) -> list[DeliveryRecord]:
        """How each event delivery to the webhook ended, in the order they ended."""
        return self._thread.call(self._server.core.dispatcher.log)

    def request_counts(self) -> dict[str, int]:
        """Raw requests per route (`sms`, `email`, `emailStatus`, `whatsapp`, `other`, `total`)."""
        return self._thread.call(self._server.core.ledger.request_counts)

    def pending_deliveries(self) -> int:
        """Event sequences and inbound events still to be delivered (0 when the emulator is idle)."""
        return self._thread.call(lambda: self._server.core.dispatcher.pending)

    def health(self) -> dict[str, Any]:
        return self._thread.call(self._server.core.health)

    # control ---------------------------------------------------------------------------------

    def add_fault(self, kind: str, **options: Any) -> Fault:
        """Inject a fault as `POST /admin/faults` does (`count`, `seconds`, `rate`, `retryAfter`,
        `latencyMs`, `channel`, `phase`)."""
        book = self._server.core.faults
        return self._thread.call(lambda: book.add({"kind": kind, **options}))

    def outage(self, seconds: float, retry_after: int | None = None, channel: str | None = None) -> Fault:
        """Every send endpoint (and email operation poll) of `channel`, or of all channels, answers 503
        for `seconds`, with `Retry-After` when given, then serves normally again."""
        return self.add_fault("503", seconds=seconds, retryAfter=retry_after, channel=channel)

    def faults(self) -> list[Fault]:
        return self._thread.call(self._server.core.faults.active)

    def clear_faults(self) -> None:
        self._thread.call(self._server.core.faults.clear)

    def reset(self) -> None:
        """Forget everything recorded and planned; settings and listeners stay."""
        self._thread.call(self._server.core.reset)

    def inbound(self, sender: str, to: str, message: str, channel: Channel | str = Channel.SMS) -> InboundRecord:
        """Emit an inbound SMS (`SMSReceived`) or WhatsApp message (`AdvancedMessageReceived`)."""
        body = {"channel": str(channel), "from": sender, "to": to, "message": message}
        return self._thread.call(lambda: self._server.core.inbound(body))

    def set_template(self, name: str, language: str, status: str, body: str = "Hello.") -> None:
        """Add a WhatsApp template to every channel's list, or change its state (`approved`, `pending`,
        `paused`, `rejected`) or body; `reset()` restores the catalogue."""
        spec = TemplateSpec(name, language, status, body)
        self._thread.call(lambda: self._server.core.set_template(spec))

    def inbound_log(self) -> list[InboundRecord]:
        return self._thread.call(self._server.core.ledger.inbound)
