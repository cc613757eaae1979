"""Property (a) of issue 14: any body POSTed to `/api/messages` gets 2xx or 4xx, never 5xx.

Driven through the app's own HTTP handler (`function_app.submit_message`) on the real services against
Azurite, and a sample of the worst bodies through the local Functions runner over HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from types import SimpleNamespace

import azure.functions as func
import pytest
from hypothesis import HealthCheck, given, settings

import function_app
import shared.runtime
from shared.runtime import Services
from tests.property.strategies import BODIES, LARGE_VALID, nested


@pytest.fixture
def app_services(svc: Services) -> Iterator[Services]:
    """The app's handlers use this test's services (the composition root is a process global)."""
    previous = shared.runtime._services
    shared.runtime._services = svc
    yield svc
    shared.runtime._services = previous


async def _post(body: bytes) -> func.HttpResponse:
    request = func.HttpRequest("POST", "http://localhost/api/messages", headers={}, params={}, body=body)
    # The worker's context as the local runner gives it: no trace to continue.
    context = SimpleNamespace(trace_context=SimpleNamespace(trace_parent="", trace_state=""))
    response = await function_app.submit_message(request, context)
    assert isinstance(response, func.HttpResponse)
    return response


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(BODIES)
async def test_any_body_gets_2xx_or_4xx_with_field_errors(app_services: Services, body: bytes) -> None:
    """Accepted (202) with a location, or refused (400/409) with field errors: never an exception."""
    response = await _post(body)
    answer = json.loads(response.get_body())
    assert response.status_code in (202, 400, 409)
    if response.status_code == 202:
        assert await app_services.ledger.get(answer["id"]) is not None
    else:
        assert answer["errors"] and all(e["field"] and e["message"] for e in answer["errors"])


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(LARGE_VALID)
async def test_a_valid_email_full_of_emoji_is_accepted(app_services: Services, body: bytes) -> None:
    """A 48 KB email that mixes ASCII and emoji is a valid request and is accepted: its payload
    columns fit Table Storage's 64 KiB per property, counted in UTF-16."""
    response = await _post(body)
    assert response.status_code == 202
    row = await app_services.ledger.get(json.loads(response.get_body())["id"])
    assert (
        row is not None
        and row.payload is not None
        and json.loads(row.payload)["content"] == json.loads(body)["content"]
    )


WORST = [
    nested(10_000, "list").encode(),
    nested(10_000, "dict").encode(),
    b'{"channel": "sms", "to": ' + b"1" * 5_000 + b', "content": {"text": "x"}}',
    b'{"channel": "sms", "to": "+14255550100", "content": {"text": "x"}, "metadata": {"n": NaN}}',
    b'{"channel": "sms", "to": "\\ud800", "content": {"text": "x"}}',
    b"\xff\xfe{\x00}\x00",
    b'{"channel": "email", "to": "ann@example.com", "content": {"subject": "a\\r\\nBcc: x", "text": "t"}}',
]


async def test_the_runner_answers_400_to_the_worst_bodies(make_stack) -> None:  # type: ignore[no-untyped-def]
    """Over real HTTP through the local runner: 400 with field errors for each, never 500."""
    stack = await make_stack()
    assert stack.runner is not None
    for body in WORST:
        request = urllib.request.Request(f"{stack.runner.url}/api/messages", data=body, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
                status, answer = response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            status, answer = exc.code, json.loads(exc.read() or b"null")
        assert status == 400, (status, body[:60])
        assert answer["errors"]


async def test_a_body_over_the_size_limit_is_a_400(app_services: Services) -> None:
    """A body one byte over 12 MiB is refused with a field error before any parsing."""
    from shared.validation import MAX_BODY_BYTES

    response = await _post(b"[" + b" " * MAX_BODY_BYTES + b"]")
    assert response.status_code == 400
    assert "limit" in json.loads(response.get_body())["errors"][0]["message"]
