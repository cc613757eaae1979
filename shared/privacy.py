"""Masking, keyed hashing and the canonical form of recipient addresses.

Why: logs and table keys must never carry a raw phone number or email address (design §4.5). A keyed
hash (HMAC-SHA256 with a secret from settings) lets us look up consent by address without storing
it, and cannot be reversed by hashing a list of known numbers without the key. A hash matches only
the same string, so every address that is hashed must first be put in the one form sends use.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from shared.models import Channel
from shared.validation import canonical_recipient

# ACS writes phone numbers in more than one form: its published SMSReceived and AdvancedMessageReceived
# samples carry `"from": "15555555555"` (E.164 digits without the "+"), its delivery reports `"+1555…"`.
# Learn: "Azure Communication Services SMS events" and "Advanced Messaging events" (event-grid docs).
_E164_DIGITS = re.compile(r"[0-9]{7,15}")


def normalise_address(address: str) -> str:
    """The string that is hashed: trimmed, and lower-cased for email."""
    address = address.strip()
    return address.lower() if "@" in address else address


def acs_address(channel: Channel, address: str, field: str = "address") -> str:
    """An address as ACS reported it, in the form sends use (E.164 with "+", or a checked email
    address). The same function as for operators' input, after ACS's "+"-less form is given its "+".
    Raises ValidationFailed for what no send could be addressed to: the caller refuses it visibly."""
    text = address.strip()
    if channel != Channel.EMAIL and _E164_DIGITS.fullmatch(text):
        text = f"+{text}"
    return canonical_recipient(channel, text, field)


def address_hash(key: bytes, address: str) -> str:
    """A stable keyed hash of a recipient address, safe to use in table keys."""
    digest = hmac.new(key, normalise_address(address).encode(), hashlib.sha256).hexdigest()
    return digest[:40]


def mask(address: str) -> str:
    """A recipient shown to operators and logs: `+1******0100`, `a***@e***.com`."""
    address = address.strip()
    if "@" in address:
        local, _, domain = address.partition("@")
        name, dot, tld = domain.rpartition(".")
        masked_domain = f"{name[:1]}***{dot}{tld}" if dot else f"{domain[:1]}***"
        return f"{local[:1]}***@{masked_domain}"
    if len(address) <= 6:
        return "*" * len(address)
    return f"{address[:2]}{'*' * (len(address) - 6)}{address[-4:]}"
