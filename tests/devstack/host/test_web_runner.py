"""HTTP triggers and the Event Grid webhook of the runner, with and without configured keys."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
from azure.storage.queue import QueueServiceClient

from devstack.host.process import RunnerProcess
from tests.devstack.host.helpers import http, peek, unique, wait_for

WEBHOOK = "/runtime/webhooks/eventgrid?functionName="
NOTIFICATION = {"aeg-event-type": "Notification", "Content-Type": "application/json"}


def event(event_id: str, fail: bool = False) -> dict[str, object]:
    return {
        "id": event_id,
        "topic": "/subscriptions/x/resourceGroups/y/providers/Microsoft.Communication/communicationServices/z",
        "subject": "phonenumber/15550100",
        "eventType": "Microsoft.Communication.SMSDeliveryReportReceived",
        "eventTime": "2024-05-01T12:00:00.1234567Z",
        "dataVersion": "1.0",
        "data": {"messageId": "m-1", "fail": fail},
    }


@pytest.fixture(scope="module")
def enqueue_queue(queues: QueueServiceClient) -> str:
    name = unique("enqueue")
    queues.create_queue(name)
    return name


@pytest.fixture(scope="module")
def web(start_runner: Callable[..., RunnerProcess], enqueue_queue: str) -> RunnerProcess:
    return start_runner("web", {"ENQUEUE_QUEUE": enqueue_queue})


@pytest.fixture(scope="module")
def keyed(start_runner: Callable[..., RunnerProcess], enqueue_queue: str) -> RunnerProcess:
    keys = {"DEVSTACK_HOST_FUNCTION_KEY": "fn-key", "DEVSTACK_HOST_EVENTGRID_KEY": "eg-key"}
    return start_runner("web", {"ENQUEUE_QUEUE": enqueue_queue, **keys})


def test_http_trigger_answers_with_status_body_and_route_params(web: RunnerProcess) -> None:
    """The function's HttpResponse status and body come back, with route and query params bound."""
    reply = http("GET", f"{web.url}/api/items/42?q=blue")
    assert (reply.status, reply.json()) == (201, {"item_id": "42", "q": "blue"})


def test_http_route_with_wrong_method_is_not_found(web: RunnerProcess) -> None:
    """A route declared GET-only answers 404 to POST, as the host does."""
    assert http("POST", f"{web.url}/api/items/42", body={}).status == 404


def test_async_function_reuses_a_module_level_client(
    web: RunnerProcess, queues: QueueServiceClient, enqueue_queue: str
) -> None:
    """An async function keeps one async SDK client across invocations, all on one event loop."""
    first = http("POST", f"{web.url}/api/enqueue", body=b"one")
    second = http("POST", f"{web.url}/api/enqueue", body=b"two")
    assert (first.status, second.status) == (200, 200)
    assert first.json()["client"] == second.json()["client"]
    assert sorted(wait_for(lambda: peek(queues, enqueue_queue) if len(peek(queues, enqueue_queue)) >= 2 else None)) == [
        "one",
        "two",
    ]


def test_async_functions_run_on_asyncio_default_loop_while_the_host_side_uses_its_own(web: RunnerProcess) -> None:
    """The runner's host side may run on uvloop (devstack/loops.py), but the app's code runs on the loop
    the Python worker gives it: asyncio's default, so the benchmarks measure the app as deployed."""
    default_loop = asyncio.new_event_loop()
    try:
        expected = f"{type(default_loop).__module__}.{type(default_loop).__qualname__}"
    finally:
        default_loop.close()
    reply = http("GET", f"{web.url}/api/loop")
    assert reply.status == 200
    assert reply.json()["loop"] == expected
    assert not reply.json()["loop"].startswith("uvloop")


def test_function_key_is_not_required_when_none_is_configured(web: RunnerProcess) -> None:
    """Like Core Tools, a function-level route is open while no key is configured."""
    assert http("GET", f"{web.url}/api/secure").status == 200


def test_function_key_is_enforced_when_configured(keyed: RunnerProcess) -> None:
    """With a function key configured, a function-level route needs `code` or `x-functions-key`."""
    statuses = [
        http("GET", f"{keyed.url}/api/secure").status,
        http("GET", f"{keyed.url}/api/secure?code=fn-key").status,
        http("GET", f"{keyed.url}/api/secure", headers={"x-functions-key": "fn-key"}).status,
    ]
    assert statuses == [401, 200, 200]


def test_subscription_validation_echoes_the_code(web: RunnerProcess) -> None:
    """The SubscriptionValidation handshake answers 200 with the validation code."""
    payload = [
        {
            "id": "v",
            "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
            "data": {"validationCode": "abc-123"},
        }
    ]
    headers = {"aeg-event-type": "SubscriptionValidation"}
    reply = http("POST", f"{web.url}{WEBHOOK}record_event", body=payload, headers=headers)
    assert (reply.status, reply.json()) == (200, {"validationResponse": "abc-123"})


def test_cloudevents_options_handshake_allows_the_origin(web: RunnerProcess) -> None:
    """The CloudEvents OPTIONS handshake answers 200 with WebHook-Allowed-Origin."""
    reply = http(
        "OPTIONS", f"{web.url}{WEBHOOK}record_event", headers={"WebHook-Request-Origin": "eventgrid.azure.net"}
    )
    assert (reply.status, reply.headers.get("WebHook-Allowed-Origin")) == (200, "eventgrid.azure.net")


def test_notification_invokes_once_per_event_and_returns_202(web: RunnerProcess) -> None:
    """A Notification with two events runs the function twice and answers 202."""
    ids = [unique("evt"), unique("evt")]
    reply = http("POST", f"{web.url}{WEBHOOK}record_event", body=[event(i) for i in ids], headers=NOTIFICATION)
    assert reply.status == 202
    assert all(f"record_event id={i}" in web.logs() for i in ids)


def test_failing_event_returns_500(web: RunnerProcess) -> None:
    """Any failing event in a Notification makes the whole request a 500 (Event Grid redelivers)."""
    body = [event(unique("evt")), event(unique("evt"), fail=True)]
    assert http("POST", f"{web.url}{WEBHOOK}record_event", body=body, headers=NOTIFICATION).status == 500


def test_webhook_without_event_type_header_is_bad_request(web: RunnerProcess) -> None:
    """A POST without `aeg-event-type` is rejected with 400."""
    assert http("POST", f"{web.url}{WEBHOOK}record_event", body=[event("x")]).status == 400


def test_webhook_for_unknown_function_is_not_found(web: RunnerProcess) -> None:
    """`functionName` must name an Event Grid function exactly, else 404."""
    assert http("POST", f"{web.url}{WEBHOOK}Record_Event", body=[event("x")], headers=NOTIFICATION).status == 404


def test_webhook_needs_the_system_key_when_configured(keyed: RunnerProcess) -> None:
    """With an eventgrid_extension key configured the webhook answers 401 without it and 202 with it."""
    body = json.dumps([event(unique("evt"))]).encode()
    without = http("POST", f"{keyed.url}{WEBHOOK}record_event", body=body, headers=NOTIFICATION).status
    with_key = http("POST", f"{keyed.url}{WEBHOOK}record_event&code=eg-key", body=body, headers=NOTIFICATION).status
    assert (without, with_key) == (401, 202)
