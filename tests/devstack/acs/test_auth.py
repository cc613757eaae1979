"""Request authentication: HMAC signatures as the SDKs compute them, bearer tokens, and refusals."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from azure.communication.sms import SmsClient
from azure.core.credentials import AccessToken, AzureKeyCredential
from azure.core.exceptions import ClientAuthenticationError

from devstack.acs import AcsEmulator
from devstack.acs.auth import sign
from tests.devstack.acs.conftest import SENDER, signed_post

SMS_TARGET = "/sms?api-version=2021-03-07"
SMS_BODY = {
    "from": SENDER,
    "smsRecipients": [{"to": "+15555550100"}],
    "message": "Hi",
    "smsSendOptions": {"enableDeliveryReport": False},
}


class StaticToken:
    """A TokenCredential that hands out a fixed token, as DefaultAzureCredential would hand out a real one."""

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        return AccessToken("local-token", int(dt.datetime.now(dt.UTC).timestamp()) + 3600)


def test_signature_matches_a_captured_sdk_request() -> None:
    """The emulator's signing reproduces the signature azure-communication-sms really sent."""
    key = base64.b64encode(b"emulator-secret-key-0123456789ab").decode()
    body_hash = "BbhITZ26NSmcZDKqWO7+MYWlgSL+7p9+R0Luf+t2e7o="

    signature = sign(key, "POST", SMS_TARGET, "127.0.0.1:8765", "Sat, 28 Nov 2026 02:55:20 GMT", body_hash)

    assert signature == "9ui+8XGQC16QLENbaxNYI/pThFF2mwTb5plsmkGk0SY="


def test_wrong_access_key_raises_client_authentication_error(acs: AcsEmulator) -> None:
    """A client signing with another key gets 401 Denied, which the SDK raises as ClientAuthenticationError."""
    other_key = base64.b64encode(b"not-the-emulator-key-0123456789a").decode()
    client = SmsClient(acs.endpoint, AzureKeyCredential(other_key), retry_total=0)

    with pytest.raises(ClientAuthenticationError) as caught:
        client.send(from_=SENDER, to="+15555550100", message="Hi")

    assert caught.value.error is not None
    assert caught.value.error.code == "Denied"
    assert acs.sends() == []


def test_tampered_body_is_refused_with_the_hash_message(acs: AcsEmulator) -> None:
    """A body that differs from its x-ms-content-sha256 is refused with the real service's message."""
    status, headers, body = signed_post(
        acs, SMS_TARGET, SMS_BODY, headers={"x-ms-content-sha256": "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}
    )

    assert status == 401
    assert headers["x-ms-error-code"] == "Denied"
    assert body["error"]["message"] == "Request 'x-ms-content-sha256' differs from generated content hash."


def test_trailing_slash_endpoint_is_refused_by_default(acs: AcsEmulator) -> None:
    """SmsClient('http://h:p/') signs 'h:p/', which does not match the Host header, as in Azure."""
    client = SmsClient(acs.endpoint + "/", AzureKeyCredential(acs.access_key), retry_total=0)

    with pytest.raises(ClientAuthenticationError):
        client.send(from_=SENDER, to="+15555550100", message="Hi")


def test_trailing_slash_endpoint_is_accepted_when_lenient(acs: AcsEmulator) -> None:
    """With lenient_host the emulator also accepts signatures over Host + '/'."""
    acs.configure(lenient_host=True)
    client = SmsClient(acs.endpoint + "/", AzureKeyCredential(acs.access_key), retry_total=0)

    [result] = client.send(from_=SENDER, to="+15555550100", message="Hi")

    assert result.successful


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_bearer_token_is_accepted_over_tls_when_allowed(acs: AcsEmulator) -> None:
    """A TokenCredential client over HTTPS is served when allow_bearer is on."""
    acs.configure(allow_bearer=True)
    assert acs.tls_endpoint is not None
    client = SmsClient(acs.tls_endpoint, StaticToken(), connection_verify=False, retry_total=0)

    [result] = client.send(from_=SENDER, to="+15555550100", message="Hi")

    assert result.successful


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_bearer_token_is_refused_by_default(acs: AcsEmulator) -> None:
    """Without allow_bearer a bearer token is denied like a wrong key."""
    assert acs.tls_endpoint is not None
    client = SmsClient(acs.tls_endpoint, StaticToken(), connection_verify=False, retry_total=0)

    with pytest.raises(ClientAuthenticationError):
        client.send(from_=SENDER, to="+15555550100", message="Hi")
