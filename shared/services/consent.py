"""Consent and suppression per (channel, address, sender), keyed by a keyed hash of the address.

Why this layout: the send path asks one question per message (one partition query), inbound STOP
and START keywords and bounces write one row each, and nothing stores the raw address.
The latest change wins between a sender-specific row and the `*` row (STOPALL, bounces).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from shared.adapters.tables import TableStore
from shared.errors import ValidationFailed
from shared.ledger import iso
from shared.privacy import address_hash
from shared.services.audit import AuditLog
from shared.settings import Channel
from shared.validation import canonical_recipient

ALL_SENDERS = "*"

OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})


class ConsentState(StrEnum):
    OPTED_OUT = "opted-out"
    OPTED_IN = "opted-in"
    SUPPRESSED = "suppressed"  # the provider says the address cannot receive (bounce, suppression list)


@dataclass(frozen=True)
class Forgotten:
    """What an erasure did to one address's consent rows."""

    removed: int  # permissions
    kept: int  # opt-outs and suppressions, still honoured


@dataclass(frozen=True)
class ConsentDecision:
    allowed: bool
    reason: str | None = None


def keyword_of(text: str) -> str | None:
    """The consent keyword an inbound message carries, if any (first word, case-insensitive)."""
    words = text.strip().upper().split()
    if not words:
        return None
    word = words[0].strip(".!")
    if word in OPT_OUT_KEYWORDS | OPT_IN_KEYWORDS | HELP_KEYWORDS:
        return word
    return None


class ConsentService:
    def __init__(self, table: TableStore, audit: AuditLog, hash_key: bytes) -> None:
        self._table = table
        self._audit = audit
        self._key = hash_key

    def _partition(self, channel: Channel, address: str) -> str:
        return f"{channel.value}|{address_hash(self._key, address)}"

    async def check(self, channel: Channel, address: str, sender: str) -> ConsentDecision:
        """Is sending from `sender` to `address` allowed now?"""
        rows = [
            row
            async for row in self._table.query("PartitionKey eq @pk", {"pk": self._partition(channel, address)})
            if row["RowKey"] in (sender, ALL_SENDERS)
        ]
        if not rows:
            return ConsentDecision(True)
        latest = max(rows, key=lambda row: str(row.get("UpdatedAt", "")))
        state = ConsentState(latest["State"])
        if state == ConsentState.OPTED_IN:
            return ConsentDecision(True)
        return ConsentDecision(False, f"{state.value}: {latest.get('Reason', '')}".strip(": "))

    async def set_state(
        self,
        channel: Channel,
        address: str,
        sender: str,
        state: ConsentState,
        *,
        reason: str,
        actor: str,
        now: datetime,
    ) -> None:
        """Record a consent change and its audit entry. `sender` may be `*` (every sender). The address
        is put in the form sends use when it can be; what ACS reports is recorded even if it cannot
        (operators' input is checked strictly before it gets here)."""
        with contextlib.suppress(ValidationFailed):
            address = canonical_recipient(channel, address)
        partition = self._partition(channel, address)
        await self._table.upsert(
            {
                "PartitionKey": partition,
                "RowKey": sender,
                "State": state.value,
                "Reason": reason,
                "Actor": actor,
                "UpdatedAt": iso(now),
            }
        )
        if state == ConsentState.OPTED_IN and sender != ALL_SENDERS:
            await self._table.delete(partition, ALL_SENDERS)
        await self._audit.record(
            actor=actor,
            action=f"consent.{state.value}",
            subject=f"{channel.value}:{address_hash(self._key, address)}:{sender}",
            reason=reason,
            now=now,
        )

    async def forget(self, channel: Channel, address: str) -> Forgotten:
        """Erasure: delete the address's permissions (opt-ins), keep its opt-outs and suppressions.

        Why keep them: they are what stops the person being messaged again, which is what an erasure
        request usually wants; they are keyed by the keyed hash and hold no address. Without them,
        the next send to the address would go out."""
        partition = self._partition(channel, address)
        rows = [row async for row in self._table.query("PartitionKey eq @pk", {"pk": partition})]
        permissions = [row["RowKey"] for row in rows if row.get("State") == ConsentState.OPTED_IN.value]
        for key in permissions:
            await self._table.delete(partition, key)
        return Forgotten(removed=len(permissions), kept=len(rows) - len(permissions))
