"""Email sends through the official EmailClient, including the long-running operation."""

from __future__ import annotations

import uuid

import pytest
from azure.communication.email import EmailClient
from azure.core.exceptions import HttpResponseError

from devstack.acs import AcsEmulator
from tests.devstack.acs.conftest import email_message, signed_post, signed_request, wait_for
from tests.devstack.acs.receiver import Receiver


def test_begin_send_polls_to_succeeded(email: EmailClient, acs: AcsEmulator) -> None:
    """begin_send returns a poller whose result is Succeeded, with the operation id it was given."""
    operation_id = str(uuid.uuid4())

    result = email.begin_send(email_message("ann@example.com"), operation_id=operation_id).result()

    assert result == {"id": operation_id, "status": "Succeeded"}
    assert acs.request_counts()["emailStatus"] >= 1


def test_operation_is_running_until_the_operation_delay(email: EmailClient, acs: AcsEmulator) -> None:
    """While the operation delay lasts the poller is not done; afterwards it ends Succeeded."""
    acs.configure(operation_delay=0.3)

    poller = email.begin_send(email_message("ann@example.com"), polling_interval=0.05)

    assert not poller.done()
    assert poller.result(timeout=5)["status"] == "Succeeded"


def test_opfail_recipient_makes_the_operation_fail(email: EmailClient) -> None:
    """An `+opfail` recipient ends the operation Failed, which the poller raises as HttpResponseError."""
    poller = email.begin_send(email_message("ann+opfail@example.com"))

    with pytest.raises(HttpResponseError, match="EmailDropped"):
        poller.result()
    assert poller.status() == "Failed"


def test_generated_operation_id_is_the_event_message_id(email: EmailClient, receiver: Receiver) -> None:
    """Without an Operation-Id the emulator picks one, and the delivery report uses it as messageId."""
    operation_id = email.begin_send(email_message("ann@example.com")).result()["id"]

    [event] = wait_for(lambda: receiver.events_for(operation_id))
    assert event["subject"] == f"sender/DoNotReply@contoso.azurecomm.net/message/{operation_id}"
    assert event["data"]["recipient"] == "ann@example.com"
    assert event["data"]["status"] == "Delivered"


def test_every_recipient_kind_is_a_send(email: EmailClient, acs: AcsEmulator) -> None:
    """to, cc and bcc recipients are each recorded as a send of the same operation."""
    message = email_message("ann@example.com")
    message["recipients"]["cc"] = [{"address": "cy@example.com"}]
    message["recipients"]["bcc"] = [{"address": "bo@example.com"}]

    operation_id = email.begin_send(message).result()["id"]

    sends = acs.sends("email")
    assert [s.to for s in sends] == ["ann@example.com", "cy@example.com", "bo@example.com"]
    assert {s.operation_id for s in sends} == {operation_id}


def test_missing_subject_is_a_bad_request(email: EmailClient) -> None:
    """A body without content.subject is refused with 400 and the Azure error envelope."""
    message = email_message("ann@example.com")
    del message["content"]["subject"]

    with pytest.raises(HttpResponseError) as caught:
        email.begin_send(message)

    assert caught.value.status_code == 400
    assert caught.value.error is not None
    assert caught.value.error.code == "BadRequest"


def test_unknown_operation_is_not_found(acs: AcsEmulator) -> None:
    """Polling an operation id the emulator never saw is a 404 with the error envelope."""
    target = f"/emails/operations/{uuid.uuid4()}?api-version=2025-09-01"

    status, headers, body = signed_request(acs, "GET", target)

    assert status == 404
    assert headers["x-ms-error-code"] == body["error"]["code"] == "NotFound"


# `GET /emails/operations/{operationId}` as the REST spec (api-version 2025-09-01) defines it: 200 with
# EmailSendResult, `retry-after` "only present when the status is a non-terminal status", and any error
# as the ErrorResponse envelope with `x-ms-error-code` equal to its code. The bodies are the spec's
# examples (specification/communication/data-plane/Email/stable/2025-09-01/examples/
# GetOperationStatusReturns{NonTerminal,SuccessTerminal,FailedTerminal}Status.json), with our id.
SPEC_BODIES = {
    "Running": {"status": "Running"},
    "Succeeded": {"status": "Succeeded"},
    "Failed": {
        "status": "Failed",
        "error": {"code": "EmailDropped", "message": "Email was dropped after several attempts to deliver."},
    },
}


def get_operation(acs: AcsEmulator, operation_id: str) -> tuple[int, dict[str, str], dict[str, object]]:
    return signed_request(acs, "GET", f"/emails/operations/{operation_id}?api-version=2025-09-01")


def sent(acs: AcsEmulator, address: str) -> str:
    operation_id = str(uuid.uuid4())
    headers = {"Operation-Id": operation_id}
    assert signed_post(acs, "/emails:send?api-version=2025-09-01", email_message(address), headers)[0] == 202
    return operation_id


def test_get_operation_answers_as_the_spec_examples(acs: AcsEmulator) -> None:
    acs.configure(operation_delay=0.5)
    running, failing = sent(acs, "ann@example.com"), sent(acs, "bo+opfail@example.com")

    status, headers, body = get_operation(acs, running)
    assert (status, body) == (200, {"id": running, **SPEC_BODIES["Running"]})
    assert int(headers["Retry-After"]) > 0

    wait_for(lambda: get_operation(acs, running)[2]["status"] != "Running", timeout=5)
    for operation_id, final in ((running, "Succeeded"), (failing, "Failed")):
        status, headers, body = get_operation(acs, operation_id)
        assert (status, body) == (200, {"id": operation_id, **SPEC_BODIES[final]})
        assert "Retry-After" not in headers


def test_get_operation_of_an_unknown_id_is_404_with_the_error_envelope(acs: AcsEmulator) -> None:
    for operation_id in (str(uuid.uuid4()), str(uuid.uuid4()).upper()):
        status, headers, body = get_operation(acs, operation_id)
        assert status == 404
        assert headers["x-ms-error-code"] == body["error"]["code"] == "NotFound"  # type: ignore[index]
        assert "Retry-After" not in headers


def test_get_operation_finds_a_send_whose_response_was_lost(acs: AcsEmulator) -> None:
    """The app's recovery: the 202 never arrived, but the send happened, so the GET finds it (no re-send)."""
    operation_id = str(uuid.uuid4())
    acs.add_fault("drop", phase="after", channel="email", count=1)
    with pytest.raises(ConnectionResetError):  # the connection closes instead of the 202 (RemoteDisconnected)
        signed_post(
            acs, "/emails:send?api-version=2025-09-01", email_message("ann@example.com"), {"Operation-Id": operation_id}
        )

    status, _, body = get_operation(acs, operation_id)
    assert status == 200
    assert body["id"] == operation_id
    assert [record.operation_id for record in acs.sends("email")] == [operation_id]
