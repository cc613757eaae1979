"""Contact Messages: the Azure Functions app. Triggers and bindings only.

Each handler decodes its trigger, calls one service from `shared`, and maps the result. Nothing
here does I/O at import, and `shared` itself is imported on the first invocation: indexing the app
(cold start) costs little more than importing azure.functions. Services are built once and reused.
"""

from __future__ import annotations

import json
import logging
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import azure.functions as func

if TYPE_CHECKING:
    from shared.runtime import Services

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
logging.getLogger("azure").setLevel(logging.WARNING)


@app.function_name(name="send_message")
@app.queue_trigger(arg_name="msg", queue_name="%SEND_QUEUE%", connection="AzureWebJobsStorage")
async def send_message(msg: func.QueueMessage, context: func.Context) -> None:
    """Send one request from the send queue (bad input is recorded, transient errors raise)."""
    from shared.services.decoding import QueueDelivery

    with _traced(context, "send_message"):
        svc = await _services()
        await svc.sending.handle(QueueDelivery(msg.get_body(), msg.id or "", msg.dequeue_count or 1))


@app.function_name(name="send_priority_message")
@app.queue_trigger(arg_name="msg", queue_name="%SEND_QUEUE%-priority", connection="AzureWebJobsStorage")
async def send_priority_message(msg: func.QueueMessage, context: func.Context) -> None:
    """The high-priority lane: the same recipe, from a queue of its own, so a one-time code or an alert
    never waits behind a normal backlog (its poison queue is drained by the reconcile timer too)."""
    from shared.services.decoding import QueueDelivery

    with _traced(context, "send_priority_message"):
        svc = await _services()
        await svc.sending.handle(QueueDelivery(msg.get_body(), msg.id or "", msg.dequeue_count or 1))


@app.function_name(name="record_event")
@app.event_grid_trigger(arg_name="event")
async def record_event(event: func.EventGridEvent, context: func.Context) -> None:
    """Record one ACS event from Event Grid (either schema). Raises only for storage failures."""
    with _traced(context, "record_event"):
        svc = await _services()
        await svc.events.record(_event_dict(event))


@app.function_name(name="reconcile")
@app.timer_trigger(arg_name="timer", schedule="%RECONCILE_SCHEDULE%", run_on_startup=False, use_monitor=True)
async def reconcile(timer: func.TimerRequest, context: func.Context) -> None:
    """Reconcile sent against reported, and record what reached the poison queue (singleton: the host
    holds a lease per timer). No queue trigger reads the poison queue: the host would hold a message
    it cannot base64-decode there, unseen, until it expires (see shared/services/deadletter.py)."""
    with _traced(context, "reconcile"):
        svc = await _services()
        await svc.reconcile.run()


@app.function_name(name="retention")
@app.timer_trigger(arg_name="timer", schedule="%RETENTION_SCHEDULE%", run_on_startup=False, use_monitor=True)
async def retention(timer: func.TimerRequest, context: func.Context) -> None:
    """Purge content, then recipients, then rows, each when its retention period ends."""
    with _traced(context, "retention"):
        svc = await _services()
        await svc.retention.run()


@app.function_name(name="submit_message")
@app.route(route="messages", methods=["POST"])
async def submit_message(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """POST /api/messages: validate now, 202 with a Location, 400 with field errors, 409 when the id
    already belongs to a different request."""
    with _traced(context, "submit_message"):
        svc = await _services()
        result = await svc.intake.submit(req.get_body())
    if result.conflict:
        body = {"error": "id already used", "errors": [e.as_dict() for e in result.errors]}
        return _json(body, 409, {"Location": f"/api/messages/{result.message_id}"})
    if not result.accepted:
        body = {"error": "invalid send request", "errors": [e.as_dict() for e in result.errors]}
        return _json(body, 400)
    location = f"/api/messages/{result.message_id}"
    return _json({"id": result.message_id, "status": "Accepted", "location": location}, 202, {"Location": location})


@app.function_name(name="get_message")
@app.route(route="messages/{id}", methods=["GET"])
async def get_message(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """GET /api/messages/{id}: status and history; masked recipient, never content."""
    with _traced(context, "get_message"):
        svc = await _services()
        view = await svc.views.status(req.route_params["id"])
    return _json(view, 200) if view else _json({"error": "no such message"}, 404)


def _traced(context: func.Context, name: str) -> AbstractContextManager[None]:
    """The invocation's work as a child of the host's request telemetry (shared.telemetry.invocation_span).
    The Context object comes from the worker, which may be older than the azure-functions this app pins
    (it loads its own copy first on Python 3.11): every attribute is read with a default."""
    from shared.telemetry import invocation_span  # lazy: keeps indexing (cold start) cheap

    trace = getattr(context, "trace_context", None)
    return invocation_span(name, getattr(trace, "trace_parent", None), getattr(trace, "trace_state", None))


async def _services() -> Services:
    from shared.runtime import services  # lazy: keeps indexing (cold start) cheap

    return await services()


def _json(body: object, status: int, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json", headers=headers)


def _event_dict(event: func.EventGridEvent) -> dict[str, object]:
    """The delivered event as a plain dict, in either schema.

    Why no `func.CloudEvent`: that class exists only from azure-functions 1.25, and on Python <= 3.12
    the worker imports its own bundled copy of azure-functions ahead of the app's unless
    PYTHON_ISOLATE_WORKER_DEPENDENCIES is set ("Python Packages Loading Order and Sys Path", the
    worker's wiki); the worker that first ran Python 3.11 bundled 1.15. So the schema is told by an
    attribute, read with getattr: a library that knows CloudEvents hands one over with `specversion`;
    every version has the Event Grid fields below. (An older library decodes a CloudEvents delivery
    into an EventGridEvent without `type`, `source` and `time`, so that schema needs a newer library
    actually loaded; infra subscribes with the Event Grid schema.)
    """
    raw: Any = event
    if getattr(raw, "specversion", None) is not None:
        return {
            "specversion": raw.specversion,
            "id": raw.id,
            "source": raw.source,
            "type": raw.type,
            "subject": raw.subject,
            "time": raw.time.isoformat() if raw.time else None,
            "data": raw.get_json(),
        }
    return {
        "id": event.id,
        "topic": event.topic,
        "subject": event.subject,
        "eventType": event.event_type,
        "eventTime": event.event_time.isoformat() if event.event_time else None,
        "data": event.get_json(),
    }
