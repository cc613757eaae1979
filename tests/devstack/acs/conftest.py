"""Fixtures for the ACS emulator tests: one emulator and one webhook receiver per session.

Each test starts from a clean emulator (reset, default settings, webhook pointed at the receiver),
so tests stay independent while the session pays for the listeners only once.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from azure.communication.email import EmailClient
from azure.communication.messages import NotificationMessagesClient
from azure.communication.sms import SmsClient
from azure.core.credentials import AzureKeyCredential

from devstack.acs import AcsEmulator, DeliveryPolicy
from devstack.acs.auth import signed_headers
from tests.devstack.acs.receiver import Receiver

T = TypeVar("T")

SENDER = "+18005550100"
REPORT_DELAY = 0.05
DEFAULTS: dict[str, Any] = {
    "report_delay": REPORT_DELAY,
    "late_delay": 0.6,
    "operation_delay": 0.0,
    "schema": "eventgrid",
    "casing": "camel",
    "allow_bearer": False,
    "lenient_host": False,
    "max_events_per_batch": 1,
    "service_window": False,
    "preferred_batch_kb": 64,
}


def wait_for(check: Callable[[], T], timeout: float = 5.0, interval: float = 0.02) -> T:
    """Poll `check` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last value: {result!r})")
        time.sleep(interval)


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    """A real webhook on a free port."""
    instance = Receiver().start()
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def emulator() -> Iterator[AcsEmulator]:
    """One emulator (HTTP and HTTPS) for the session, with fast delivery retries."""
    policy = DeliveryPolicy(backoff=0.05, max_attempts=4, timeout=5.0)
    with AcsEmulator(report_delay=REPORT_DELAY, tls_port=0, delivery=policy) as acs:
        yield acs


@pytest.fixture
def acs(emulator: AcsEmulator, receiver: Receiver) -> AcsEmulator:
    """The session emulator, reset to defaults and delivering to the receiver."""
    emulator.reset()
    emulator.configure(**DEFAULTS)
    emulator.set_webhook(receiver.url)
    receiver.clear()
    return emulator


def credential(acs: AcsEmulator) -> AzureKeyCredential:
    return AzureKeyCredential(acs.access_key)


@pytest.fixture
def sms(acs: AcsEmulator) -> SmsClient:
    """An SmsClient on plain HTTP; SDK retries off so faults are seen as they are."""
    return SmsClient(acs.endpoint, credential(acs), retry_total=0)


@pytest.fixture
def email(acs: AcsEmulator) -> EmailClient:
    return EmailClient(acs.endpoint, credential(acs), retry_total=0)


@pytest.fixture
def whatsapp(acs: AcsEmulator) -> NotificationMessagesClient:
    return NotificationMessagesClient(acs.endpoint, credential(acs), retry_total=0)


def email_message(*addresses: str, subject: str = "Your order", **extra: Any) -> dict[str, Any]:
    """A minimal email send body for the given `to` addresses."""
    return {
        "senderAddress": "DoNotReply@contoso.azurecomm.net",
        "recipients": {"to": [{"address": address} for address in addresses]},
        "content": {"subject": subject, "plainText": "Plain body"},
        **extra,
    }


def signed_post(
    acs: AcsEmulator, target: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    """POST a hand-built request signed exactly as the SDKs sign it; returns status, headers, JSON body."""
    return signed_request(acs, "POST", target, json.dumps(body).encode("utf-8"), headers)


def signed_request(
    acs: AcsEmulator, method: str, target: str, raw: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    """Send a hand-built request signed as the SDKs sign it; returns status, headers, JSON body."""
    host = acs.endpoint.removeprefix("http://")
    signed = signed_headers(acs.access_key, method, target, host, raw)
    request = urllib.request.Request(acs.endpoint + target, data=raw or None, method=method)  # noqa: S310 - loopback http
    for name, value in {"Content-Type": "application/json", **signed, **(headers or {})}.items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback http
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())
