"""The local Event Grid custom topic: the publish endpoint, subscriptions, and an admin API.

Routes:
- `POST /api/events?api-version=2018-01-01`: publish (see `publish` and `auth`); every active
  subscription gets every event (the local topic has no filters).
- `GET /admin/health`, `GET|POST /admin/subscriptions`, `DELETE /admin/subscriptions/{name}`,
  `GET /admin/subscriptions/{name}/deliveries`, `GET /admin/subscriptions/{name}/deadletters`:
  loopback control and inspection, no auth (as the ACS emulator's `/admin`).
- `POST /admin/faults` `{"status": 503, "count": 3}` / `DELETE /admin/faults`: the next publish
  requests fail with that status (an outage the publisher must survive).
- `GET /eventsubscriptions/{name}/validate?code=...`: the `validationUrl` of the manual handshake.
Creating a subscription runs the validation handshake first and fails as Event Grid does when the
endpoint does not take part; events published before a subscription exists are not delivered to it.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from devstack.acs import tls
from devstack.acs.responses import json_response, read_json_object
from devstack.acs.server import start_site
from devstack.eventgrid import auth, publish
from devstack.eventgrid.config import ConfigError, RetryPolicy, Subscription, TopicSettings
from devstack.eventgrid.delivery import Deliverer
from devstack.eventgrid.handshake import validate

logger = logging.getLogger(__name__)
API_VERSIONS = frozenset({"2018-01-01"})


@dataclass
class TopicState:
    """Everything the routes share; touched only on the topic's event loop."""

    settings: TopicSettings
    dead_letter_dir: Path | None = None
    endpoint: str = ""
    active: dict[str, Deliverer] = field(default_factory=dict)
    awaiting_manual: dict[str, tuple[Subscription, str]] = field(default_factory=dict)
    published: int = 0
    publish_faults: deque[int] = field(default_factory=deque)

    async def subscribe(self, subscription: Subscription) -> None:
        """Create (or replace) a subscription once its endpoint passes the handshake."""
        code = secrets.token_hex(16)
        url = f"{self.endpoint}/eventsubscriptions/{subscription.name}/validate?code={code}"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            failure = await validate(session, subscription, self.settings.input_schema, self.settings.topic, url)
        if failure is not None:
            self.awaiting_manual[subscription.name] = (subscription, code)
            raise ConfigError(failure)
        await self.activate(subscription)

    async def activate(self, subscription: Subscription) -> None:
        await self.unsubscribe(subscription.name)
        self.active[subscription.name] = Deliverer(subscription, self.settings.input_schema, self.dead_letter_dir)
        logger.info("feed subscription active name=%s", subscription.name)

    async def unsubscribe(self, name: str) -> bool:
        self.awaiting_manual.pop(name, None)
        deliverer = self.active.pop(name, None)
        if deliverer is not None:
            await deliverer.close()
        return deliverer is not None

    def deliverer(self, name: str) -> Deliverer:
        if name not in self.active:
            raise LookupError(f"no subscription named {name}")
        return self.active[name]

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "endpoint": f"{self.endpoint}/api/events",
            "topic": self.settings.topic,
            "inputSchema": str(self.settings.input_schema),
            "published": self.published,
            "subscriptions": [_describe(d) for d in self.active.values()],
        }


STATE = web.AppKey("state", TopicState)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def loopback_admin(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The admin API has no auth, so it answers loopback clients only (whatever `--host` binds)."""
    if request.path.startswith("/admin") and not _is_loopback(request.remote):
        return json_response({"error": {"code": "Forbidden", "message": "admin API is loopback only"}}, 403)
    return await handler(request)


def _is_loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def build_app(state: TopicState) -> web.Application:
    app = web.Application(client_max_size=publish.MAX_REQUEST_BYTES * 2, middlewares=[loopback_admin])
    app[STATE] = state
    app.router.add_post("/api/events", publish_events)
    app.router.add_get("/admin/health", health)
    app.router.add_get("/admin/subscriptions", list_subscriptions)
    app.router.add_post("/admin/subscriptions", create_subscription)
    app.router.add_delete("/admin/subscriptions/{name}", delete_subscription)
    app.router.add_get("/admin/subscriptions/{name}/deliveries", deliveries)
    app.router.add_get("/admin/subscriptions/{name}/deadletters", dead_letters)
    app.router.add_post("/admin/faults", add_faults)
    app.router.add_delete("/admin/faults", clear_faults)
    app.router.add_get("/eventsubscriptions/{name}/validate", manual_validation)
    return app


async def publish_events(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        _check_api_version(request)
        denied = auth.refusal(request.headers, state.settings.access_key, state.settings.allow_bearer, request.host)
        if denied is not None:
            raise publish.PublishRefused(401, "Unauthorized", denied)
        if state.publish_faults:
            status = state.publish_faults.popleft()
            raise publish.PublishRefused(status, HTTPStatus(status).phrase.replace(" ", ""), "Injected fault.")
        body = await request.read()
        events = publish.parse(body, request.content_type, state.settings.input_schema, state.settings.topic)
    except publish.PublishRefused as refused:
        return json_response(refused.body(), status=refused.status)
    state.published += len(events)
    for deliverer in state.active.values():
        deliverer.offer(events)
    return web.Response(status=200)


def _check_api_version(request: web.Request) -> None:
    version = request.query.get("api-version")
    if version not in API_VERSIONS:
        raise publish.bad_request(
            f"The api-version '{version}' is not supported; use one of {sorted(API_VERSIONS)}.", "InvalidApiVersion"
        )


async def add_faults(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    status, count = body.get("status", 503), body.get("count", 1)
    if not isinstance(status, int) or not isinstance(count, int) or not 400 <= status <= 599 or count < 1:
        return json_response({"error": {"code": "InvalidRequest", "message": "status 400-599, count >= 1"}}, 400)
    request.app[STATE].publish_faults.extend([status] * count)
    return json_response({"pending": len(request.app[STATE].publish_faults)})


async def clear_faults(request: web.Request) -> web.Response:
    request.app[STATE].publish_faults.clear()
    return web.Response(status=204)


async def health(request: web.Request) -> web.Response:
    return json_response(request.app[STATE].health())


async def list_subscriptions(request: web.Request) -> web.Response:
    return json_response(request.app[STATE].health()["subscriptions"])


async def create_subscription(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    try:
        subscription = subscription_from(body)
        await request.app[STATE].subscribe(subscription)
    except (ConfigError, KeyError, TypeError) as exc:
        error = {"code": "InvalidRequest", "message": str(exc) if not isinstance(exc, KeyError) else f"missing {exc}"}
        return json_response({"error": error}, status=400)
    return json_response(_describe(request.app[STATE].active[subscription.name]), status=201)


def subscription_from(body: dict[str, Any]) -> Subscription:
    """A subscription from ARM-like camelCase JSON (name, endpoint, batching and retry policy)."""
    retry = RetryPolicy(
        max_delivery_attempts=int(body.get("maxDeliveryAttempts", 30)),
        event_ttl_minutes=float(body.get("eventTimeToLiveInMinutes", 1440)),
        time_scale=float(body.get("timeScale", 1.0)),
    )
    return Subscription(
        name=str(body["name"]),
        endpoint=str(body["endpoint"]),
        max_events_per_batch=int(body.get("maxEventsPerBatch", 1)),
        preferred_batch_kb=int(body.get("preferredBatchSizeInKilobytes", 64)),
        retry=retry,
    )


async def delete_subscription(request: web.Request) -> web.Response:
    found = await request.app[STATE].unsubscribe(request.match_info["name"])
    return web.Response(status=200 if found else 204)


async def deliveries(request: web.Request) -> web.Response:
    return json_response([record.to_json() for record in _deliverer(request).log])


async def dead_letters(request: web.Request) -> web.Response:
    return json_response(_deliverer(request).dead_letters)


def _deliverer(request: web.Request) -> Deliverer:
    try:
        return request.app[STATE].deliverer(request.match_info["name"])
    except LookupError as exc:
        raise web.HTTPNotFound(text=str(exc)) from exc


async def manual_validation(request: web.Request) -> web.Response:
    state = request.app[STATE]
    waiting = state.awaiting_manual.get(request.match_info["name"])
    if waiting is None or not secrets.compare_digest(waiting[1], request.query.get("code", "")):
        return json_response({"error": {"code": "NotFound", "message": "no validation pending"}}, status=404)
    await state.activate(waiting[0])
    return web.Response(text="Webhook successfully validated as a part of the subscription validation.")


def _describe(deliverer: Deliverer) -> dict[str, Any]:
    subscription = deliverer.subscription
    return {
        "name": subscription.name,
        "endpoint": subscription.endpoint,
        "maxEventsPerBatch": subscription.max_events_per_batch,
        "preferredBatchSizeInKilobytes": subscription.preferred_batch_kb,
        "maxDeliveryAttempts": subscription.retry.max_delivery_attempts,
        "eventTimeToLiveInMinutes": subscription.retry.event_ttl_minutes,
        "pending": deliverer.pending,
        "deadLettered": len(deliverer.dead_letters),
    }


class TopicServer:
    """Listens on plain HTTP, and on HTTPS with a throwaway self-signed certificate when asked (bearer
    tokens need TLS: azure-core refuses to send them over plain HTTP)."""

    def __init__(self, state: TopicState, host: str = "127.0.0.1", port: int = 0, tls_port: int | None = None) -> None:
        self.state = state
        self._host, self._port, self._tls_port = host, port, tls_port
        self._runner: web.AppRunner | None = None
        self.endpoint = ""
        self.tls_endpoint: str | None = None
        self.tls_cert_pem: bytes | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(build_app(self.state), access_log=None, handle_signals=False)
        await self._runner.setup()
        self.endpoint = f"http://{self._host}:{await self._site(self._port, None)}"
        if self._tls_port is not None:
            material = tls.make_certificate()
            port = await self._site(self._tls_port, tls.server_context(material))
            self.tls_endpoint = f"https://localhost:{port}"
            self.tls_cert_pem = material.cert_pem
        self.state.endpoint = self.endpoint
        logger.info("local event grid topic listening endpoint=%s tls_endpoint=%s", self.endpoint, self.tls_endpoint)

    async def stop(self) -> None:
        for name in list(self.state.active):
            await self.state.unsubscribe(name)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _site(self, port: int, ssl_context: ssl.SSLContext | None) -> int:
        assert self._runner is not None
        return await start_site(self._runner, self._host, port, ssl_context)
