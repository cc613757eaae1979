"""The PII scan that ends every test session (tests/pii.py) finds what it must and only that."""

from __future__ import annotations

import pytest

from shared.privacy import mask
from tests.integration.conftest import EMAIL_SENDER, SMS_SENDER
from tests.pii import CONTENT_MARKERS, OUR_OWN_IDENTITIES, offenders


@pytest.mark.parametrize(
    "line",
    [
        "shared.services.sending sent to +14255550100 {}",
        "shared.services.events report {'recipient': 'someone@example.org'}",
        *[f"shared.x body={marker}123" for marker in CONTENT_MARKERS],
    ],
)
def test_a_raw_address_or_message_text_is_an_offender(line: str) -> None:
    assert offenders(["a clean line", line]) == [line]


@pytest.mark.parametrize(
    "line",
    [
        f"shared.services.sending sent message_id=m-1 to={mask('+14255550100')}",
        f"shared.services.sending sent message_id=m-1 to={mask('someone@example.org')}",
        f"shared.services.sending from {SMS_SENDER} and {EMAIL_SENDER}",
    ],
)
def test_masked_addresses_and_our_own_identities_are_not(line: str) -> None:
    assert offenders([line]) == []


def test_our_own_identities_include_the_suites_senders() -> None:
    assert {SMS_SENDER, EMAIL_SENDER} <= OUR_OWN_IDENTITIES
