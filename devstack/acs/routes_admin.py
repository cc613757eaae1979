"""`/admin/*`: the emulator's control and inspection API (no auth; served to loopback clients only).

Why an HTTP admin API besides the Python accessors: the demo, the local Functions runner and
benchmarks may run the emulator in another process, and an operator may want to poke it with curl.
Every route is a thin wrapper over `EmulatorCore`, the same object the in-process API uses.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from devstack.acs.config import ConfigError
from devstack.acs.core import CORE, EmulatorCore
from devstack.acs.faults import FaultError
from devstack.acs.models import Channel
from devstack.acs.responses import bad_request, json_response, read_json_object


def add_admin_routes(app: web.Application) -> None:
    app.router.add_get("/admin/health", health)
    app.router.add_get("/admin/sends", sends)
    app.router.add_get("/admin/duplicates", duplicates)
    app.router.add_get("/admin/truth", truth)
    app.router.add_get("/admin/events", events)
    app.router.add_get("/admin/requests", requests)
    app.router.add_get("/admin/faults", list_faults)
    app.router.add_post("/admin/faults", add_fault)
    app.router.add_delete("/admin/faults", clear_faults)
    app.router.add_get("/admin/inbound", list_inbound)
    app.router.add_post("/admin/inbound", inbound)
    app.router.add_post("/admin/reset", reset)
    app.router.add_get("/admin/config", get_config)
    app.router.add_put("/admin/config", put_config)


def _core(request: web.Request) -> EmulatorCore:
    return request.app[CORE]


async def health(request: web.Request) -> web.Response:
    return json_response(_core(request).health())


async def sends(request: web.Request) -> web.Response:
    channel = request.query.get("channel")
    if channel is not None and channel not in set(Channel):
        raise bad_request("channel must be sms, email or whatsapp")
    with_content = request.query.get("content", "").lower() in ("1", "true", "yes")
    records = _core(request).ledger.sends(Channel(channel) if channel else None)
    return json_response([record.to_json(with_content=with_content) for record in records])


async def duplicates(request: web.Request) -> web.Response:
    return json_response(_core(request).ledger.duplicates())


async def truth(request: web.Request) -> web.Response:
    return json_response([record.to_json() for record in _core(request).ledger.truth()])


async def events(request: web.Request) -> web.Response:
    return json_response([record.to_json() for record in _core(request).dispatcher.log()])


async def requests(request: web.Request) -> web.Response:
    return json_response(_core(request).ledger.request_counts())


async def list_faults(request: web.Request) -> web.Response:
    return json_response([fault.to_json() for fault in _core(request).faults.active()])


async def add_fault(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    try:
        fault = _core(request).faults.add(body)
    except FaultError as exc:
        raise bad_request(str(exc)) from exc
    return json_response(fault.to_json(), status=201)


async def clear_faults(request: web.Request) -> web.Response:
    _core(request).faults.clear()
    return web.Response(status=204)


async def list_inbound(request: web.Request) -> web.Response:
    return json_response([record.to_json() for record in _core(request).ledger.inbound()])


async def inbound(request: web.Request) -> web.Response:
    record = _core(request).inbound(await read_json_object(request))
    return json_response(record.to_json(), status=202)


async def reset(request: web.Request) -> web.Response:
    _core(request).reset()
    return web.Response(status=204)


async def get_config(request: web.Request) -> web.Response:
    return json_response(_core(request).settings.to_json())


async def put_config(request: web.Request) -> web.Response:
    body: dict[str, Any] = await read_json_object(request)
    try:
        settings = _core(request).configure(body)
    except ConfigError as exc:
        raise bad_request(str(exc)) from exc
    return json_response(settings.to_json())
