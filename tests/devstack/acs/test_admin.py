"""The admin API over HTTP, through AcsAdminClient (how other processes inspect and steer the emulator)."""

from __future__ import annotations

import pytest
from azure.communication.sms import SmsClient

from devstack.acs import AcsAdminClient, AcsEmulator, AdminApiError
from tests.devstack.acs.conftest import SENDER


@pytest.fixture
def admin(acs: AcsEmulator) -> AcsAdminClient:
    return AcsAdminClient(acs.endpoint)


def test_health_reports_endpoints_and_settings(admin: AcsAdminClient, acs: AcsEmulator) -> None:
    """GET /admin/health says ok and shows where the emulator listens."""
    health = admin.health()

    assert health["status"] == "ok"
    assert health["endpoint"] == acs.endpoint
    assert health["tlsEndpoint"] == acs.tls_endpoint


def test_sends_and_truth_as_json(admin: AcsAdminClient, sms: SmsClient) -> None:
    """GET /admin/sends and /admin/truth describe the sends without their content unless asked."""
    [result] = sms.send(from_=SENDER, to="+15555550101", message="secret text", enable_delivery_report=True)

    [send] = admin.sends()
    [truth] = admin.truth()
    assert send["messageId"] == truth["messageId"] == result.message_id
    assert "content" not in send
    assert admin.sends(with_content=True)[0]["content"] == "secret text"
    assert truth["final"] == "Failed"


def test_duplicates_as_json(admin: AcsAdminClient, sms: SmsClient) -> None:
    """GET /admin/duplicates groups repeated sends of the same content to the same number."""
    for _ in range(3):
        sms.send(from_=SENDER, to="+15555550100", message="again")

    [group] = admin.duplicates()

    assert (group["channel"], group["to"], group["count"]) == ("sms", "+15555550100", 3)


def test_faults_can_be_added_listed_and_cleared(admin: AcsAdminClient) -> None:
    """POST, GET and DELETE /admin/faults manage the active fault rules."""
    created = admin.add_fault("429", count=2, channel="sms", retryAfter=3)

    assert admin.faults() == [created]
    admin.clear_faults()
    assert admin.faults() == []


def test_unknown_fault_kind_is_refused(admin: AcsAdminClient) -> None:
    """A fault kind the emulator does not know is a 400, not a silent no-op."""
    with pytest.raises(AdminApiError) as caught:
        admin.add_fault("418")

    assert caught.value.status == 400


def test_config_changes_apply(admin: AcsAdminClient, acs: AcsEmulator) -> None:
    """PUT /admin/config changes the report delay, schema and casing of the running emulator."""
    admin.configure(reportDelay=0.2, schema="cloudevents", casing="pascal")

    settings = acs.settings
    assert (settings.report_delay, settings.schema, settings.casing) == (0.2, "cloudevents", "pascal")


def test_unknown_config_key_is_refused(admin: AcsAdminClient) -> None:
    """PUT /admin/config with a key it does not know is a 400 naming the key."""
    with pytest.raises(AdminApiError, match="colour"):
        admin.configure(colour="blue")


def test_reset_forgets_sends_and_counts(admin: AcsAdminClient, sms: SmsClient) -> None:
    """POST /admin/reset empties the sends log and the request counters."""
    sms.send(from_=SENDER, to="+15555550100", message="Hi")

    admin.reset()

    assert admin.sends() == []
    assert admin.request_counts() == {}


def test_admin_api_needs_no_signature(admin: AcsAdminClient, acs: AcsEmulator) -> None:
    """Admin calls are not counted as ACS requests and need no HMAC signature."""
    admin.health()

    assert acs.request_counts() == {}
