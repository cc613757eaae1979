"""Retention and erasure: content, then recipients (PII), then rows, each on its own clock.

Why the due index again: each message carries one retention entry at a time (content at N days,
then recipient at M, then rows at K), so a run costs O(what is due), never a scan of history.
Erasure of one recipient is an operator action and may scan; it leaves no trace of the address.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from shared.adapters.blobs import PayloadStore
from shared.adapters.group_commit import MAX_OPERATIONS, delete_rows
from shared.adapters.tables import TableStore
from shared.clock import Clock, iso, parse_iso
from shared.ledger import Ledger, payload_json
from shared.models import Channel
from shared.observability import emit
from shared.privacy import address_hash, normalise_address
from shared.schema import (
    EVERY_ROW_FILTER,
    LEDGER_ROWS_FILTER,
    PARTITION_FILTER,
    REJECTED_EVENTS_BEFORE_FILTER,
    LedgerRow,
    keys_of,
    provider_id_keys,
    rejected_events_before,
    row_key_of,
)
from shared.services.audit import AuditLog
from shared.services.consent import ConsentService
from shared.services.due import DueEntry, DueIndex, DueKind
from shared.settings import Settings
from shared.validation import canonical_recipient, channel_of_address

log = logging.getLogger(__name__)
CONTENT_FIELDS = ("content",)
RECIPIENT_FIELDS = ("to",)


def _strip(payload: dict[str, Any] | None, keys: tuple[str, ...]) -> dict[str, Any] | None:
    if payload is None:
        return None
    return {k: v for k, v in payload.items() if k not in keys}


@dataclass(frozen=True)
class RetentionStores:
    """What retention deletes from besides the ledger: the message partitions, the provider id index,
    the tables that may hold an address (`others`: orphans, inbound, dead letters), and the blobs of
    requests kept in blob storage."""

    messages: TableStore
    provider_ids: TableStore
    others: tuple[TableStore, ...]
    payloads: PayloadStore | None = None
    rejected_events: TableStore | None = None


class RetentionService:
    def __init__(
        self,
        *,
        settings: Settings,
        ledger: Ledger,
        retention: DueIndex,
        legacy: Sequence[DueIndex] = (),
        stores: RetentionStores,
        consent: ConsentService,
        audit: AuditLog,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._retention = retention
        self._legacy = tuple(legacy)
        self._messages = stores.messages
        self._provider_ids = stores.provider_ids
        self._others = stores.others
        self._payloads = stores.payloads
        self._rejected_events = stores.rejected_events
        self._consent = consent
        self._audit = audit
        self._now = clock

    async def run(self, limit: int = 5000) -> Counter[str]:
        """Apply every retention step that is due; returns counts per step."""
        done: Counter[str] = Counter()
        for index in (self._retention, *self._legacy):  # next steps are always scheduled in the first
            await self._run_index(index, limit, done)
        done["rejected-events"] += await self._age_out_rejected_events(limit)
        emit(log, "retention.summary", f"retention {dict(done)}", count=sum(done.values()))
        return done

    async def _run_index(self, index: DueIndex, limit: int, done: Counter[str]) -> None:
        handled: list[DueEntry] = []
        for entry in await index.due(self._now(), limit):
            await self._apply(entry)
            handled.append(entry)
            done[entry.kind.value] += 1
            if len(handled) == MAX_OPERATIONS:  # a crash re-runs at most one batch: each step is idempotent
                await index.remove_all(handled)
                handled.clear()
        await index.remove_all(handled)

    async def _age_out_rejected_events(self, limit: int) -> int:
        """Malformed events are kept as long as message content (their payload may hold content or an
        address): a scan of a table that only bad input fills, so it stays small."""
        if self._rejected_events is None:
            return 0
        cutoff = self._now() - timedelta(days=self._settings.retention_days["content"])
        query = self._rejected_events.query(REJECTED_EVENTS_BEFORE_FILTER, rejected_events_before(iso(cutoff)))
        doomed = [keys_of(entity) async for entity in query][:limit]
        for partition, row_key in doomed:
            await self._rejected_events.delete(partition, row_key)
        return len(doomed)

    async def _apply(self, entry: DueEntry) -> None:
        row = await self._ledger.get(entry.message_id)
        if row is None:
            return
        created = parse_iso(str(row.created_at))
        days = self._settings.retention_days
        if entry.kind == DueKind.PURGE_CONTENT:
            at = iso(self._now())
            await self._rewrite_payload(row, CONTENT_FIELDS, lambda r: replace(r, content_purged_at=at))
            await self._retention.add(
                row.message_id, DueKind.PURGE_RECIPIENT, created + timedelta(days=days["recipient"])
            )
        elif entry.kind == DueKind.PURGE_RECIPIENT:
            await self._purge_recipient(row)
            await self._retention.add(row.message_id, DueKind.PURGE_ROWS, created + timedelta(days=days["rows"]))
        elif entry.kind == DueKind.PURGE_ROWS:
            await self._delete_message(row)

    async def _rewrite_payload(
        self, row: LedgerRow, keys: tuple[str, ...], purged: Callable[[LedgerRow], LedgerRow]
    ) -> None:
        """Drop `keys` from the stored request, and record the purge (`purged`)."""
        if row.payload_ref:  # a request kept in blob storage: the blob holds all its content, so it goes
            if self._payloads is not None:
                await self._payloads.delete(row.payload_ref)
            await self._ledger.change(
                row.message_id, lambda current: purged(replace(current, payload_ref="")), start=row
            )
            return
        stripped = _strip(payload_json(row), keys)
        text = json.dumps(stripped) if stripped is not None else ""
        # From the row just read (its etag guards the write): no second read per step.
        await self._ledger.change(row.message_id, lambda current: purged(replace(current, payload=text)), start=row)

    async def _purge_recipient(self, row: LedgerRow) -> None:
        at = iso(self._now())
        await self._rewrite_payload(
            row,
            CONTENT_FIELDS + RECIPIENT_FIELDS,
            lambda r: replace(r, recipient_masked="", recipient_hash="", recipient_purged_at=at),
        )

    async def _delete_message(self, row: LedgerRow) -> None:
        keys = [row_key_of(r) async for r in self._messages.query(PARTITION_FILTER, {"pk": row.message_id})]
        await delete_rows(self._messages, row.message_id, keys)  # one partition: in batches
        if row.provider_message_id:
            await self._provider_ids.delete(*provider_id_keys(row.provider_message_id))

    async def erase(self, address: str, *, actor: str, reason: str) -> Counter[str]:
        """Remove every trace of `address`: ledger recipients and payloads, consent permissions, inbound
        rows, dead letters. Its opt-outs and suppressions stay (see ConsentService.forget)."""
        erased: Counter[str] = Counter()
        # In the form sends use, so that its hash matches theirs (raises for what is no address at all).
        address = canonical_recipient(channel_of_address(address), address, "recipient")
        digest = address_hash(self._settings.consent_hash_key, address)
        needle = normalise_address(address).lower()
        matches = []
        async for entity in self._messages.query(LEDGER_ROWS_FILTER):
            stored = LedgerRow.from_entity(entity)
            if stored.recipient_hash == digest or needle in (stored.payload or "").lower():
                matches.append(stored.message_id)
        for message_id in matches:
            row = await self._ledger.get(message_id)
            if row is not None:
                await self._purge_recipient(row)
                erased["messages"] += 1
        for channel in Channel:
            forgotten = await self._consent.forget(channel, address)
            erased["consent"] += forgotten.removed
            erased["optouts_kept"] += forgotten.kept
        erased["other"] += await self._erase_elsewhere(address, digest)
        await self._audit.record(
            actor=actor, action="erase", subject=f"recipient:{digest}", reason=reason, now=self._now()
        )
        return erased

    async def _erase_elsewhere(self, address: str, digest: str) -> int:
        """Inbound rows (keyed by the hash) and any stored text that contains the raw address."""
        needle = normalise_address(address)
        removed = 0
        for table in self._others:
            doomed = []
            async for row in table.query(EVERY_ROW_FILTER, {"none": ""}):
                text = json.dumps({k: v for k, v in row.items() if isinstance(v, str)}).lower()
                partition, row_key = keys_of(row)
                if digest in partition or needle.lower() in text:
                    doomed.append((partition, row_key))
            for partition, row_key in doomed:
                await table.delete(partition, row_key)
                removed += 1
        return removed
