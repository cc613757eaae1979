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
from tests.property.strategies import is_utf8

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


# -- strict JSON: every body is a request or field errors (issue 14, items 4 and 10) ----------------

VALID_SMS = {"channel": "sms", "to": "+14255550123", "content": {"text": "hello"}}
_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
JSON_VALUES = st.recursive(
    _json_leaf,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def _nested(depth: int, kind: str) -> str:
    opener, closer = ("[", "]") if kind == "list" else ('{"a":', "}")
    return opener * depth + "1" + closer * depth


# Texts that `json.loads` takes (or chokes on) but the contract must refuse with a field error.
HOSTILE_TEXTS = st.one_of(
    st.builds(_nested, st.integers(min_value=11, max_value=20_000), st.sampled_from(["list", "dict"])),
    st.integers(min_value=20, max_value=6_000).map(lambda n: '{"metadata": {"n": ' + "9" * n + "}}"),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e999"]).map(
        lambda v: '{"metadata": {"n": ' + v + "}}"
    ),
    st.sampled_from(["channel", "to", "id"]).map(lambda k: '{"' + k + '": "a", "' + k + '": "b"}'),
    st.sampled_from(["\\ud800", "\\udfff", "a\\udc00b", "\\ud83d"]).map(lambda s: '{"to": "' + s + '"}'),
)
BAD_UTF8 = st.binary(min_size=1, max_size=64).filter(lambda b: not is_utf8(b))


@settings(max_examples=150, deadline=None)
@given(st.one_of(HOSTILE_TEXTS.map(str.encode), BAD_UTF8, JSON_VALUES.map(lambda v: json.dumps(v).encode())))
def test_any_json_or_bytes_is_a_request_or_field_errors(body: bytes) -> None:
    """Deep nesting, 5,000-digit integers, NaN, repeated keys, lone surrogates and bytes that are not
    UTF-8 all end as ValidationFailed with a field error: never RecursionError or ValueError."""
    errors = _errors_or_none(lambda: check_request(parse_request(body), SETTINGS, "m-1", NOW))
    assert errors is None or len(errors) > 0


@settings(max_examples=60, deadline=None)
@given(HOSTILE_TEXTS)
def test_hostile_json_is_refused_at_the_root(text: str) -> None:
    """Each hostile shape is refused as a whole (field `$`), with no partial parse."""
    errors = _errors_or_none(lambda: parse_request(text.encode()))
    assert errors is not None and [e.field for e in errors] == ["$"]


def test_the_issue_examples_are_field_errors() -> None:
    """JSON nested 10,000 deep and an integer of 5,000 digits: 400-style field errors, not crashes."""
    for body in (_nested(10_000, "list"), _nested(10_000, "dict"), '{"to": ' + "1" * 5_000 + "}"):
        errors = _errors_or_none(lambda body=body: parse_request(body))
        assert errors is not None and errors[0].field == "$"


@pytest.mark.parametrize("version", [True, 1.0, "1", [1], None])
def test_schema_version_must_be_the_integer_one(version: object) -> None:
    """`schemaVersion: true` (and 1.0, "1") are not the integer 1 of the contract."""
    assert _fields({**VALID_SMS, "schemaVersion": version}) == {"schemaVersion"}


@pytest.mark.parametrize(
    "expires",
    [1_900_000_000, 1.9e9, True, "2026-01-01T12:00:00", "2026-01-01", "1900000000", "next week", "2026-01-01T12:00Z"],
)
def test_expires_at_must_be_an_rfc3339_string_with_an_offset(expires: object) -> None:
    """A Unix time, a date-time without offset or a date alone is a field error."""
    assert _fields({**VALID_SMS, "expiresAt": expires}) == {"expiresAt"}


@pytest.mark.parametrize("expires", ["2026-01-01T12:00:00Z", "2026-01-01T12:00:00.5+02:00", "2026-01-01t12:00:00z"])
def test_rfc3339_date_times_with_an_offset_are_accepted(expires: str) -> None:
    """The forms RFC 3339 allows are accepted and time-zone aware."""
    request = parse_request(json.dumps({**VALID_SMS, "expiresAt": expires}))
    assert request.expires_at is not None and request.expires_at.tzinfo is not None


CONTROL = st.sampled_from(["\r", "\n", "\r\n", "\x00", "\t", "\x1b", "\x7f", "\x85", "\u2028", "\u2029"])
_line = st.text(alphabet=st.characters(categories=["L", "N", "Zs"]), min_size=1, max_size=10)


def _email_with(subject: str = "Hi", name: str = "a.pdf", content_type: str = "application/pdf") -> dict[str, object]:
    attachment = {"name": name, "contentType": content_type, "contentInBase64": "QUFB"}
    content = {"subject": subject, "text": "t", "attachments": [attachment]}
    return {"channel": "email", "to": "ann@example.com", "content": content}


@settings(max_examples=80, deadline=None)
@given(_line, CONTROL, _line, st.sampled_from(["subject", "name", "content_type"]))
def test_control_characters_in_header_fields_are_field_errors(head: str, control: str, tail: str, where: str) -> None:
    """CR, LF, NUL and every other control or line separator in an email subject, attachment name
    or content type is refused against that field: these values become MIME headers."""
    value = head + control + tail + ("/x" if where == "content_type" else "")
    field = {"subject": "content.subject", "name": "content.attachments.0.name"}.get(
        where, "content.attachments.0.contentType"
    )
    assert _fields(_email_with(**{where: value})) == {field}


@settings(max_examples=40, deadline=None)
@given(_line, _line)
def test_header_fields_without_control_characters_pass(subject: str, name: str) -> None:
    """Ordinary one-line text (any script, spaces) stays valid."""
    _check(_email_with(subject=subject, name=name))


def test_the_content_id_is_keyed() -> None:
    """A request without id gets an id that depends on the app's secret, not a plain SHA-256 of the
    body (which anyone could compute from a guessed one-time code and phone number)."""
    import hashlib

    from shared.ids import content_id

    body = json.dumps(VALID_SMS).encode()
    assert content_id(b"k1", body) == content_id(b"k1", body + b"\n")  # a trailing newline is no new request
    assert content_id(b"k1", body) != content_id(b"k2", body)
    assert hashlib.sha256(body).hexdigest()[:40] not in content_id(b"k1", body)


def test_unknown_keys_come_back_short_and_printable() -> None:
    """An unknown key of 100,000 characters, or one with CR/LF, is named in the error (and so in logs)
    only as a short printable stand-in."""
    errors = _errors_or_none(lambda: parse_request(json.dumps({**VALID_SMS, "k" * 100_000: 1, "a\r\nb": 2})))
    assert errors is not None
    assert all(len(e.field) <= 40 and "\r" not in e.field and "\n" not in e.field for e in errors)
    assert {e.field for e in errors} >= {"a??b"}


def _text_of_length(n: int) -> st.SearchStrategy[str]:
    """Text of exactly n characters (hypothesis alone rarely reaches the lengths that matter here)."""
    return st.text(min_size=n, max_size=n)


@settings(max_examples=60, deadline=None)
@given(
    key=st.integers(1, 60).flatmap(_text_of_length).filter(lambda k: is_utf8(k.encode("utf-8", "surrogatepass"))),
    value=st.one_of(
        st.integers(0, 400).flatmap(_text_of_length).filter(lambda v: is_utf8(v.encode("utf-8", "surrogatepass"))),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.booleans(),
    ),
)
def test_metadata_is_small_references_only(key: str, value: object) -> None:
    """Keys of 1 to 40 characters, strings of up to 256: anything larger is a field error on metadata,
    so a ledger row and the feed events that repeat it stay far inside Table Storage's limits."""
    body = {"channel": "sms", "to": "+14255550123", "content": {"text": "hi"}, "metadata": {key: value}}
    too_large = len(key) > 40 or (isinstance(value, str) and len(value) > 256)
    errors = _errors_or_none(lambda: _check(body))
    if too_large:
        assert errors is not None and {e.field.split(".")[0] for e in errors} == {"metadata"}
    else:
        assert errors is None
