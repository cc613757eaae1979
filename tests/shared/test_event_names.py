"""The event types the app handles are the ones azure-eventgrid names (issue 15, item 9).

Why a test and not an import: only shared/adapters may import Azure SDKs, and six strings do not
justify an adapter or a runtime dependency on azure-eventgrid (it stays in requirements-dev.txt).
This test holds the app's constants to the SDK's `SystemEventNames`, so a rename there fails here."""

from __future__ import annotations

from azure.eventgrid import SystemEventNames

from shared import events_model

EXPECTED = {
    "SMS_DELIVERY_REPORT": SystemEventNames.AcsSmsDeliveryReportReceivedEventName,
    "SMS_RECEIVED": SystemEventNames.AcsSmsReceivedEventName,
    "EMAIL_DELIVERY_REPORT": SystemEventNames.AcsEmailDeliveryReportReceivedEventName,
    "EMAIL_ENGAGEMENT": SystemEventNames.AcsEmailEngagementTrackingReportReceivedEventName,
    "WHATSAPP_STATUS": SystemEventNames.AcsAdvancedMessageDeliveryStatusUpdatedEventName,
    "WHATSAPP_RECEIVED": SystemEventNames.AcsAdvancedMessageReceivedEventName,
}


def test_each_handled_event_type_is_the_sdk_name() -> None:
    """Each constant equals the SDK's value exactly (casing included)."""
    for constant, sdk_name in EXPECTED.items():
        assert getattr(events_model, constant) == sdk_name.value, constant


def test_every_handled_event_type_is_normalised() -> None:
    """The normaliser handles exactly these six types, whatever their casing."""
    handled = set(events_model._NORMALISERS)
    assert handled == {name.value.lower() for name in EXPECTED.values()}
