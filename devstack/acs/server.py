"""The emulator's HTTP(S) server: routes, the auth/fault middleware, and the listeners.

Why one middleware in front of every ACS route: the real service authenticates before anything
else, so the order is fixed here once: count the raw request, verify the signature (401), apply an
injected fault, then serve. Admin routes skip auth but only answer loopback clients.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from devstack.acs import auth, routes_email, routes_sms, routes_whatsapp, tls
from devstack.acs.config import Settings
from devstack.acs.core import CORE, EmulatorCore
from devstack.acs.faults import DropPhase, Fault, FaultKind
from devstack.acs.models import Channel
from devstack.acs.responses import ApiError, error_response
from devstack.acs.routes_admin import add_admin_routes

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_BODY = 12 * 1024 * 1024  # ACS allows 10 MB email requests; leave room for JSON overhead
_ROUTE_NAMES = {"/sms": "sms", "/emails:send": "email", "/messages/notifications:send": "whatsapp"}
_FAULT_ERRORS = {
    FaultKind.THROTTLE: (429, "TooManyRequests", "Rate limit exceeded. Try again later."),
    FaultKind.SERVER_ERROR: (500, "InternalServerError", "An internal server error occurred."),
    FaultKind.UNAVAILABLE: (503, "ServiceUnavailable", "The service is temporarily unavailable."),
}


@dataclass(frozen=True)
class Listen:
    """Where to listen: plain HTTP always, HTTPS only when `tls_port` is given (0 = any free port)."""

    host: str = "127.0.0.1"
    port: int = 0
    tls_port: int | None = None


def channel_of(path: str) -> Channel | None:
    if path == "/sms":
        return Channel.SMS
    if path.startswith("/emails"):
        return Channel.EMAIL
    if path.startswith("/messages"):
        return Channel.WHATSAPP
    return None


def route_name(path: str) -> str:
    """The raw-request counter's name for a path (`emailStatus` for operation polls)."""
    if path.startswith("/emails/operations/"):
        return "emailStatus"
    if path.startswith("/messages/channels/"):
        return "templates"
    return _ROUTE_NAMES.get(path, "other")


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path == "/admin" or request.path.startswith("/admin/"):
        return await _admin(request, handler)
    return await _acs(request, handler)


async def _admin(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not _is_loopback(request.remote):
        return error_response(ApiError(403, "Forbidden", "The admin API only answers loopback clients."))
    return await _guarded(request, handler)


async def _acs(request: web.Request, handler: Handler) -> web.StreamResponse:
    core = request.app[CORE]
    core.ledger.count_request(route_name(request.path))
    signed = auth.SignedRequest(
        method=request.method,
        target=request.raw_path,
        host=request.headers.get("Host", ""),
        headers={key.lower(): value for key, value in request.headers.items()},
        body=await request.read(),
    )
    denial = auth.check(core.auth_policy(), signed)
    if denial is not None:
        logger.info("request denied route=%s", route_name(request.path))
        return _echo_request_id(request, error_response(ApiError(401, "Denied", denial)))
    channel = channel_of(request.path)
    fault = core.faults.take(channel) if channel is not None else None
    response = await _guarded(request, handler) if fault is None else await _faulted(request, handler, fault)
    return _echo_request_id(request, response)


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Serve, turning refusals and unknown routes into the Azure error envelope."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(ApiError(exc.status, exc.reason.replace(" ", ""), f"{request.method} {request.path}"))


async def _faulted(request: web.Request, handler: Handler, fault: Fault) -> web.StreamResponse:
    logger.info("fault injected kind=%s route=%s", fault.kind, route_name(request.path))
    if fault.kind is FaultKind.LATENCY and fault.phase is DropPhase.AFTER:
        response = await _guarded(request, handler)  # its events may reach the webhook before the response
        await asyncio.sleep(fault.latency_ms / 1000)
        return response
    if fault.kind is FaultKind.LATENCY:
        await asyncio.sleep(fault.latency_ms / 1000)
        return await _guarded(request, handler)
    if fault.kind is FaultKind.DROP:
        if fault.phase is DropPhase.AFTER:
            await _guarded(request, handler)  # the send happens; only its response is lost
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=204)  # never reaches the client: the connection is closed
    status, code, message = _FAULT_ERRORS[fault.kind]
    return error_response(ApiError(status, code, message, retry_after=fault.retry_after))


def _echo_request_id(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    client_request_id = request.headers.get("x-ms-client-request-id")
    if client_request_id and request.headers.get("x-ms-return-client-request-id", "").lower() == "true":
        response.headers["x-ms-client-request-id"] = client_request_id
    return response


def _is_loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote.split("%")[0]).is_loopback
    except ValueError:
        return False


def build_app(core: EmulatorCore) -> web.Application:
    app = web.Application(middlewares=[middleware], client_max_size=MAX_BODY)
    app[CORE] = core
    app.router.add_post("/sms", routes_sms.send_sms)
    app.router.add_post("/emails:send", routes_email.send_email)
    app.router.add_get("/emails/operations/{operation_id}", routes_email.operation_status)
    app.router.add_post("/messages/notifications:send", routes_whatsapp.send_notification)
    app.router.add_get("/messages/channels/{channel_id}/templates", routes_whatsapp.list_templates)
    add_admin_routes(app)
    return app


class EmulatorServer:
    """One emulator: its state plus its listeners. Start and stop it on one event loop."""

    def __init__(self, settings: Settings, listen: Listen | None = None) -> None:
        self.core = EmulatorCore(settings)
        self.listen = listen or Listen()
        self.endpoint = ""
        self.tls_endpoint: str | None = None
        self.tls_cert_pem: bytes | None = None
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(build_app(self.core), access_log=None, handle_signals=False)
        await self._runner.setup()
        port = await self._site(self.listen.port, None)
        self.endpoint = f"http://{self._display_host()}:{port}"
        if self.listen.tls_port is not None:
            material = tls.make_certificate()
            tls_port = await self._site(self.listen.tls_port, tls.server_context(material))
            self.tls_endpoint = f"https://{self._display_host()}:{tls_port}"
            self.tls_cert_pem = material.cert_pem
        self.core.endpoints = {"endpoint": self.endpoint, "tlsEndpoint": self.tls_endpoint or ""}
        logger.info("acs emulator listening endpoint=%s tls_endpoint=%s", self.endpoint, self.tls_endpoint)

    async def stop(self) -> None:
        await self.core.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _site(self, port: int, ssl_context: ssl.SSLContext | None) -> int:
        assert self._runner is not None
        return await start_site(self._runner, self.listen.host, port, ssl_context)

    def _display_host(self) -> str:
        return "127.0.0.1" if self.listen.host in ("0.0.0.0", "", "::") else self.listen.host


async def start_site(runner: web.AppRunner, host: str, port: int, ssl_context: ssl.SSLContext | None) -> int:
    """Start one listener on `runner` and return the port it bound (port 0 picks a free one)."""
    before = [tuple(address) for address in runner.addresses]
    await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    added = [tuple(address) for address in runner.addresses if tuple(address) not in before]
    return int(added[0][1])
