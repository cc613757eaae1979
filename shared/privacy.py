"""Masking and keyed hashing of recipient addresses.

Why: logs and table keys must never carry a raw phone number or email address (design §4.5). A keyed
hash (HMAC-SHA256 with a secret from settings) lets us look up consent by address without storing
it, and cannot be reversed by hashing a list of known numbers without the key.
"""

from __future__ import annotations

import hashlib
import hmac


def normalise_address(address: str) -> str:
    """Canonical form used for hashing: trimmed, and lower-cased for email."""
    address = address.strip()
    return address.lower() if "@" in address else address


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
