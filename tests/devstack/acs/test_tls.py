"""The HTTPS listener: clients built from connection strings, which always talk HTTPS."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.communication.email import EmailClient
from azure.communication.messages import NotificationMessagesClient
from azure.communication.messages.models import TextNotificationContent
from azure.communication.sms import SmsClient

from devstack.acs import AcsEmulator
from tests.devstack.acs.conftest import SENDER, email_message

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


def tls_connection_string(acs: AcsEmulator) -> str:
    assert acs.tls_connection_string is not None
    return acs.tls_connection_string


def test_sms_from_connection_string_without_verification(acs: AcsEmulator) -> None:
    """SmsClient.from_connection_string with connection_verify=False sends over the TLS listener."""
    client = SmsClient.from_connection_string(tls_connection_string(acs), connection_verify=False)

    [result] = client.send(from_=SENDER, to="+15555550100", message="over tls")

    assert result.successful
    assert acs.sends()[0].message_id == result.message_id


def test_email_from_connection_string_without_verification(acs: AcsEmulator) -> None:
    """EmailClient.from_connection_string polls its operation over TLS to Succeeded."""
    client = EmailClient.from_connection_string(tls_connection_string(acs), connection_verify=False)

    result = client.begin_send(email_message("ann@example.com")).result()

    assert result["status"] == "Succeeded"


def test_whatsapp_from_connection_string_without_verification(acs: AcsEmulator) -> None:
    """NotificationMessagesClient.from_connection_string sends over TLS."""
    client = NotificationMessagesClient.from_connection_string(tls_connection_string(acs), connection_verify=False)
    content = TextNotificationContent(channel_registration_id="channel-1", to=["+15555550100"], content="Hi")

    assert len(client.send(content).receipts) == 1


def test_certificate_can_be_trusted_explicitly(acs: AcsEmulator, tmp_path: Path) -> None:
    """The self-signed certificate verifies 127.0.0.1 when given as the CA bundle."""
    assert acs.tls_cert_pem is not None
    ca_file = tmp_path / "acs-emulator.pem"
    ca_file.write_bytes(acs.tls_cert_pem)
    client = SmsClient.from_connection_string(tls_connection_string(acs), connection_verify=str(ca_file))

    [result] = client.send(from_=SENDER, to="+15555550100", message="verified")

    assert result.successful
