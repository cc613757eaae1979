"""`LocalTopic`: the in-process handle on a local Event Grid topic, for tests and the demo.

Why: a test wants `with LocalTopic() as topic:` and plain method calls (subscribe, dead letters),
not HTTP. The topic runs on its own event loop in a background thread (the ACS emulator's
`LoopThread`); every accessor hops onto that loop, so the topic's state has one owner.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devstack.acs.loopthread import InBackground, LoopThread
from devstack.acs.models import DeliveryRecord
from devstack.eventgrid.config import Subscription, TopicSettings
from devstack.eventgrid.server import TopicServer, TopicState


class LocalTopic(InBackground):
    """A running (after `start()`) local custom topic on loopback."""

    def __init__(
        self,
        settings: TopicSettings | None = None,
        *,
        port: int = 0,
        tls_port: int | None = None,
        dead_letter_dir: Path | None = None,
    ) -> None:
        self.settings = settings or TopicSettings()
        self._server = TopicServer(TopicState(self.settings, dead_letter_dir), port=port, tls_port=tls_port)
        self._thread = LoopThread("eventgrid-topic", self._server.start, self._server.stop)

    @property
    def endpoint(self) -> str:
        """The topic endpoint a publisher is given: `http://127.0.0.1:<port>/api/events`."""
        return f"{self._server.endpoint}/api/events"

    @property
    def tls_endpoint(self) -> str | None:
        return f"{self._server.tls_endpoint}/api/events" if self._server.tls_endpoint else None

    @property
    def tls_cert_pem(self) -> bytes | None:
        return self._server.tls_cert_pem

    def subscribe(self, subscription: Subscription) -> None:
        """Create a subscription; raises ConfigError when the endpoint fails the validation handshake."""
        self._thread.run(lambda: self._server.state.subscribe(subscription), timeout=60)

    def unsubscribe(self, name: str) -> None:
        self._thread.run(lambda: self._server.state.unsubscribe(name))

    def deliveries(self, name: str) -> list[DeliveryRecord]:
        return self._thread.call(lambda: list(self._server.state.deliverer(name).log))

    def dead_letters(self, name: str) -> list[dict[str, Any]]:
        return self._thread.call(lambda: list(self._server.state.deliverer(name).dead_letters))

    def pending(self, name: str) -> int:
        return self._thread.call(lambda: self._server.state.deliverer(name).pending)

    def fail_publishes(self, status: int, count: int) -> None:
        """Answer the next `count` publish requests with `status` (and Event Grid's error body)."""
        self._thread.call(lambda: self._server.state.publish_faults.extend([status] * count))

    def clear_faults(self) -> None:
        self._thread.call(self._server.state.publish_faults.clear)
