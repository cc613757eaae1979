"""Consent and suppression per (channel, address, sender), keyed by a keyed hash of the address.

Why this layout: the send path asks one question per message (one partition query), inbound STOP
and START keywords and bounces write one row each, and nothing stores the raw address.
The latest change wins between a sender-specific row and the `*` row (STOPALL, bounces).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from shared.adapters.tables import TableStore
from shared.clock import iso
from shared.errors import Conflict, EtagMismatch
from shared.ledger import MAX_RACE_RETRIES
from shared.models import Channel
from shared.privacy import address_hash
from shared.schema import PARTITION_FILTER, ConsentRow
from shared.services.audit import AuditLog
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
            row async for row in self._rows(self._partition(channel, address)) if row.sender in (sender, ALL_SENDERS)
        ]
        if not rows:
            return ConsentDecision(True)
        latest = max(rows, key=lambda row: row.updated_at)
        state = ConsentState(latest.state)
        if state == ConsentState.OPTED_IN:
            return ConsentDecision(True)
        return ConsentDecision(False, f"{state.value}: {latest.reason}".strip(": "))

    async def _rows(self, partition: str) -> AsyncIterator[ConsentRow]:
        async for entity in self._table.query(PARTITION_FILTER, {"pk": partition}):
            yield ConsentRow.from_entity(entity)

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
        change_id: str | None = None,
    ) -> bool:
        """Record a consent change and its audit entry; True if it is now the address's latest state.

        `address` is put in the form sends use (`canonical_recipient`; what ACS reports goes through
        `acs_address` first); what has no such form raises ValidationFailed: stored under its own hash
        it would match no send, so the caller must refuse it visibly instead. `sender` may be `*`
        (every sender). `now` is when the change was made (for an inbound keyword, when ACS received
        it), so the latest change wins whatever order changes are recorded in. `change_id` makes the
        change idempotent: applying it again (a redelivered event finishing its work) writes the same
        rows, and one audit entry.
        """
        address = canonical_recipient(channel, address)
        partition = self._partition(channel, address)
        at = iso(now)
        latest = await self._write_if_newer(ConsentRow(partition, sender, state.value, reason, actor, at))
        if latest and state == ConsentState.OPTED_IN and sender != ALL_SENDERS:
            await self._delete_if_older(partition, ALL_SENDERS, at)
        await self._audit.record(
            actor=actor,
            action=f"consent.{state.value}",
            subject=f"{channel.value}:{address_hash(self._key, address)}:{sender}",
            reason=reason,
            now=now,
            entry_id=change_id,
        )
        return latest

    async def _write_if_newer(self, row: ConsentRow) -> bool:
        """Write the row unless a later change is stored (read, decide, etag-guarded write)."""
        partition, key = row.partition, row.sender
        for _ in range(MAX_RACE_RETRIES):
            stored = await self._table.get(partition, key)
            try:
                if stored is None:
                    await self._table.insert(row.to_entity())
                elif ConsentRow.from_entity(stored.entity).updated_at > row.updated_at:
                    return False
                else:
                    await self._table.update(row.to_entity(), stored.etag)
            except (Conflict, EtagMismatch):
                continue
            return True
        raise EtagMismatch(f"consent row {partition}/{key} kept changing")

    async def _delete_if_older(self, partition: str, key: str, at: str) -> None:
        """An opt-in for one sender lifts an earlier STOPALL, not a later one."""
        stored = await self._table.get(partition, key)
        if stored is not None and ConsentRow.from_entity(stored.entity).updated_at <= at:
            await self._table.delete(partition, key)

    async def forget(self, channel: Channel, address: str) -> Forgotten:
        """Erasure: delete the address's permissions (opt-ins), keep its opt-outs and suppressions.

        Why keep them: they are what stops the person being messaged again, which is what an erasure
        request usually wants; they are keyed by the keyed hash and hold no address. Without them,
        the next send to the address would go out."""
        partition = self._partition(channel, address)
        rows = [row async for row in self._rows(partition)]
        permissions = [row.sender for row in rows if row.state == ConsentState.OPTED_IN.value]
        for key in permissions:
            await self._table.delete(partition, key)
        return Forgotten(removed=len(permissions), kept=len(rows) - len(permissions))
