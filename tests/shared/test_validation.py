"""The send request contract: field errors that say what to fix."""

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.errors import FieldError, ValidationFailed
from shared.models import send_request_json_schema
from shared.settings import load_settings
from shared.validation import check_request, parse_request

SETTINGS = load_settings(
    {
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "ACS_CONNECTION_STRING": "endpoint=http://127.0.0.1:1;accesskey=a2V5",
        "ACS_RESOURCE_IDS": "/subscriptions/x",
        "CONSENT_HASH_KEY": "k",
        "SMS_SENDERS": "+18005550100",
        "EMAIL_SENDERS": "noreply@example.com",
        "WHATSAPP_CHANNELS": "chan-1",
        "SMS_MAX_SEGMENTS": "2",
    }
)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _check(body: object) -> None:
    check_request(parse_request(json.dumps(body)), SETTINGS, "m-1", NOW)


def _fields(body: object) -> set[str]:
    with pytest.raises(ValidationFailed) as info:
        _check(body)
    return {e.field for e in info.value.errors}


def _errors_or_none(action: Callable[[], object]) -> list[FieldError] | None:
    """None if `action` passed, else its field errors; any other exception propagates."""
    try:
        action()
    except ValidationFailed as exc:
        return exc.errors
    return None


def test_a_valid_sms_gets_the_default_sender_and_its_segment_count() -> None:
    """A minimal SMS request passes and picks the first configured sender."""
    request = parse_request(json.dumps({"channel": "sms", "to": "+14255550123", "content": {"text": "hello"}}))
    checked = check_request(request, SETTINGS, "m-1", NOW)
    assert (checked.sender, checked.segments) == ("+18005550100", 1)


def test_bad_numbers_addresses_and_senders_are_field_errors() -> None:
    """Each broken rule is reported against its field."""
    assert _fields({"channel": "sms", "to": "4255550123", "content": {"text": "x"}}) == {"to"}
    assert _fields({"channel": "email", "to": "not-an-address", "content": {"subject": "s", "text": "t"}}) == {"to"}
    assert _fields({"channel": "sms", "to": "+14255550123", "from": "+19995550100", "content": {"text": "x"}}) == {
        "from"
    }


def test_unknown_fields_and_channels_are_rejected() -> None:
    """Unknown fields and an unknown channel are contract errors, not ignored."""
    assert "surprise" in _fields({"channel": "sms", "to": "+14255550123", "content": {"text": "x"}, "surprise": 1})
    assert _fields({"channel": "pigeon", "to": "x", "content": {}})


def test_sms_over_the_segment_limit_says_how_many_segments() -> None:
    """A message of 3 UCS-2 segments breaks a limit of 2, with the count in the message."""
    with pytest.raises(ValidationFailed, match="3 UCS-2 segments"):
        check_request(
            parse_request(json.dumps({"channel": "sms", "to": "+14255550123", "content": {"text": "ж" * 140}})),
            SETTINGS,
            "m",
            NOW,
        )


def test_whatsapp_needs_exactly_one_of_text_or_template() -> None:
    """Both or neither of text and template is an error."""
    assert _fields({"channel": "whatsapp", "to": "+14255550123", "content": {}}) == {"content"}


def test_schema_version_other_than_one_is_refused() -> None:
    """A future schema version is refused with a clear message."""
    assert _fields({"schemaVersion": 2, "channel": "sms", "to": "+14255550123", "content": {"text": "x"}}) == {
        "schemaVersion"
    }


def test_published_json_schema_matches_the_models() -> None:
    """schemas/send-request.v1.json is exactly what the models generate (regenerate with `make schema`)."""
    published = json.loads((Path(__file__).parents[2] / "schemas" / "send-request.v1.json").read_text())
    assert published == send_request_json_schema()


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_arbitrary_bytes_never_crash_the_parser(body: bytes) -> None:
    """Any input either parses or raises ValidationFailed with at least one field error."""
    errors = _errors_or_none(lambda: parse_request(body))
    assert errors is None or len(errors) > 0


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["channel", "to", "from", "content", "id", "purpose", "expiresAt", "metadata", "x"]),
        st.one_of(st.none(), st.integers(), st.text(max_size=20), st.lists(st.integers(), max_size=3)),
    )
)
def test_wrongly_typed_fields_are_field_errors(body: dict[str, object]) -> None:
    """Wrong types anywhere give ValidationFailed, never another exception."""
    errors = _errors_or_none(lambda: _check(body))
    assert errors is None or len(errors) > 0


def test_an_unresolved_key_vault_reference_is_a_configuration_error() -> None:
    """A literal @Microsoft.KeyVault(...) hash key fails at start instead of hashing with the reference text."""
    from shared.errors import ConfigurationError
    from shared.settings import load_settings as load

    env = {
        "AzureWebJobsStorage": "x",
        "ACS_ENDPOINT": "https://x",
        "ACS_RESOURCE_IDS": "/s",
        "CONSENT_HASH_KEY": "@Microsoft.KeyVault(SecretUri=https://v/secrets/k/)",
    }
    with pytest.raises(ConfigurationError, match="Key Vault"):
        load(env)


def test_settings_list_every_problem_at_once() -> None:
    """Missing storage, ACS and hash key plus bad JSON are reported together."""
    from shared.errors import ConfigurationError
    from shared.settings import load_settings as load

    with pytest.raises(ConfigurationError) as info:
        load({"RATE_LIMITS": "{nope"})
    message = str(info.value)
    for name in ("AzureWebJobsStorage", "ACS_ENDPOINT", "CONSENT_HASH_KEY", "RATE_LIMITS"):
        assert name in message


def test_an_email_over_10_mb_is_a_field_error() -> None:
    """Attachments beyond ACS's 10 MB limit are refused with the reason; smaller ones are fine."""
    big = {"name": "a.bin", "contentType": "application/octet-stream", "contentInBase64": "QUFB" * 2_700_000}
    body = {"channel": "email", "to": "ann@example.com", "content": {"subject": "s", "text": "t", "attachments": [big]}}
    assert _fields(body) == {"content"}
    small = {**big, "contentInBase64": "QUFB" * 50_000}
    _check({**body, "content": {"subject": "s", "text": "t", "attachments": [small]}})
