"""Injected faults as the SDKs see them: throttling, server errors, latency and lost connections."""

from __future__ import annotations

import time

import pytest
from azure.communication.email import EmailClient
from azure.communication.sms import SmsClient
from azure.core.exceptions import HttpResponseError, ServiceResponseError

from devstack.acs import AcsEmulator
from tests.devstack.acs.conftest import SENDER, email_message


def send_one(sms: SmsClient) -> None:
    sms.send(from_=SENDER, to="+15555550100", message="Hi")


def test_throttle_returns_429_with_retry_after(sms: SmsClient, acs: AcsEmulator) -> None:
    """A 429 fault reaches the SDK as HttpResponseError 429 carrying the configured Retry-After."""
    acs.add_fault("429", count=1, retryAfter=7)

    with pytest.raises(HttpResponseError) as caught:
        send_one(sms)

    assert caught.value.status_code == 429
    assert caught.value.response is not None
    assert caught.value.response.headers["Retry-After"] == "7"
    assert acs.sends() == []


def test_unavailable_returns_503(sms: SmsClient, acs: AcsEmulator) -> None:
    """A 503 fault reaches the SDK as HttpResponseError 503 with the ServiceUnavailable code."""
    acs.add_fault("503", count=1)

    with pytest.raises(HttpResponseError) as caught:
        send_one(sms)

    assert caught.value.status_code == 503
    assert caught.value.error is not None
    assert caught.value.error.code == "ServiceUnavailable"


def test_server_error_has_no_retry_after(sms: SmsClient, acs: AcsEmulator) -> None:
    """A 500 fault carries no Retry-After, since azure-core would retry any 4xx/5xx that had one."""
    acs.add_fault("500", count=1)

    with pytest.raises(HttpResponseError) as caught:
        send_one(sms)

    assert caught.value.status_code == 500
    assert caught.value.response is not None
    assert "Retry-After" not in caught.value.response.headers


def test_count_limited_fault_ends_after_count_requests(sms: SmsClient, acs: AcsEmulator) -> None:
    """A fault with count=1 affects one request only; the next send succeeds."""
    acs.add_fault("429", count=1)
    with pytest.raises(HttpResponseError):
        send_one(sms)

    send_one(sms)

    assert len(acs.sends()) == 1
    assert acs.faults() == []


def test_channel_fault_leaves_other_channels_alone(sms: SmsClient, email: EmailClient, acs: AcsEmulator) -> None:
    """A fault for the email channel does not touch SMS requests."""
    acs.add_fault("503", count=1, channel="email")

    send_one(sms)

    with pytest.raises(HttpResponseError):
        email.begin_send(email_message("ann@example.com"))
    assert [s.channel for s in acs.sends()] == ["sms"]


def test_latency_delays_the_response(sms: SmsClient, acs: AcsEmulator) -> None:
    """A latency fault delays the response by latencyMs and the send still succeeds."""
    acs.add_fault("latency", count=1, latencyMs=300)
    started = time.monotonic()

    send_one(sms)

    assert time.monotonic() - started >= 0.3
    assert len(acs.sends()) == 1


def test_timed_fault_applies_for_its_seconds(sms: SmsClient, acs: AcsEmulator) -> None:
    """A fault given in seconds hits every request until it expires."""
    acs.add_fault("429", seconds=30)

    for _ in range(3):
        with pytest.raises(HttpResponseError):
            send_one(sms)

    assert acs.request_counts()["sms"] == 3


def test_rate_one_fault_always_fires(sms: SmsClient, acs: AcsEmulator) -> None:
    """A fault with rate=1.0 fires on every request."""
    acs.add_fault("503", rate=1.0)

    for _ in range(2):
        with pytest.raises(HttpResponseError):
            send_one(sms)


def test_drop_closes_the_connection_without_sending(sms: SmsClient, acs: AcsEmulator) -> None:
    """A drop fault closes the connection: the SDK gets no response and nothing is sent."""
    acs.add_fault("drop", count=1)

    with pytest.raises(ServiceResponseError):
        send_one(sms)

    assert acs.sends() == []


def test_drop_after_loses_the_response_but_not_the_send(sms: SmsClient, acs: AcsEmulator) -> None:
    """With phase=after the send happens and only the response is lost, so a naive resend duplicates."""
    acs.add_fault("drop", count=1, phase="after")
    with pytest.raises(ServiceResponseError):
        send_one(sms)

    send_one(sms)

    [group] = acs.duplicates()
    assert group["count"] == 2
