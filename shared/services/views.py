"""What callers may read about one message: the view behind `GET /api/messages/{id}` and `contactmsg status`.

Why its own service: a handler reads through a service like every other, never from storage; and the
view is the one place that decides which ledger fields leave the app (ids, statuses, times and counts;
never content or addresses).
"""

from __future__ import annotations

from typing import Any

from shared.adapters.tables import TableStore
from shared.models import MAX_FALLBACKS, Status
from shared.schema import (
    PARTITION_FILTER,
    HistoryRow,
    LedgerRow,
    is_history_row,
    is_ledger_row,
    ledger_row_key,
    public_columns,
    row_key_of,
)

# How each status reads in a chain's outcome ("delivered by sms after whatsapp failed").
_OUTCOME_WORDS = {
    Status.ACCEPTED: "accepted for",
    Status.SENDING: "sending by",
    Status.SENT: "sent by",
    Status.DELIVERED: "delivered by",
    Status.READ: "read on",
    Status.FAILED: "failed on",
    Status.EXPIRED: "expired on",
    Status.REJECTED: "refused on",
    Status.SUPPRESSED: "suppressed (opted out) on",
    Status.UNKNOWN: "unknown on",
    Status.DEAD_LETTERED: "dead-lettered on",
}
_ENDED_WORDS = {
    Status.FAILED: "failed",
    Status.EXPIRED: "expired",
    Status.REJECTED: "was refused",
    Status.SUPPRESSED: "was opted out",
    Status.UNKNOWN: "ended unknown",
}


class MessageViews:
    """Reads one message's partition of the messages table (the ledger row and its event rows)."""

    def __init__(self, messages: TableStore) -> None:
        self._messages = messages

    async def status(self, message_id: str) -> dict[str, Any] | None:
        """Status and history of one message: public ledger fields plus its event rows; None if unknown."""
        rows = [row async for row in self._messages.query(PARTITION_FILTER, {"pk": message_id})]
        ledger = next((r for r in rows if is_ledger_row(row_key_of(r))), None)
        if ledger is None:
            return None
        row = LedgerRow.from_entity(ledger)
        view = {"id": message_id, **public_columns(row)}
        history = [{"status": status.value, "at": at} for status, at in row.times.items()]
        view["transitions"] = sorted(history, key=lambda h: str(h["at"]))
        events = (_event(HistoryRow.from_entity(r)) for r in rows if is_history_row(row_key_of(r)))
        view["events"] = sorted(events, key=lambda e: str(e["eventTime"]))
        if row.fallback_of or row.fallback_id:
            view |= await self._chain(row)
        return view

    async def history(self, message_id: str) -> dict[str, Any] | None:
        """Every transition and event of `message_id`, and of each message of its fallback chain: each
        entry names its message and channel, so one time-ordered history tells the whole chain's story."""
        view = await self.status(message_id)
        if view is None:
            return None
        views = []  # first message of the chain first, so that equal times keep the chain's order
        for member in view.get("chain", [{"id": message_id}]):
            other = view if member["id"] == message_id else await self.status(member["id"])
            views += [other] if other is not None else []
        transitions = [{**t, "message": v["id"], "channel": v["channel"]} for v in views for t in v["transitions"]]
        events = [{**e, "message": v["id"], "channel": v["channel"]} for v in views for e in v["events"]]
        history = {
            "id": message_id,
            "transitions": sorted(transitions, key=lambda t: str(t["at"])),
            "events": sorted(events, key=lambda e: str(e["eventTime"])),
        }
        return history | {key: view[key] for key in ("chain", "chainOutcome") if key in view}

    async def _chain(self, row: LedgerRow) -> dict[str, Any]:
        """The fallback chain `row` belongs to (first message to last) and its overall outcome."""
        chain = [row]
        while chain[0].fallback_of and len(chain) <= MAX_FALLBACKS:
            parent = await self._ledger_row(chain[0].fallback_of)
            if parent is None:
                break
            chain.insert(0, parent)
        while chain[-1].fallback_id and len(chain) <= MAX_FALLBACKS:
            child = await self._ledger_row(chain[-1].fallback_id)
            if child is None:
                break
            chain.append(child)
        links = {"fallbackOf": row.fallback_of, "fallback": row.fallback_id}
        members = [{"id": r.message_id, "channel": r.channel_name, "status": r.status.value} for r in chain]
        return {k: v for k, v in links.items() if v} | {"chain": members, "chainOutcome": chain_outcome(chain)}

    async def _ledger_row(self, message_id: str) -> LedgerRow | None:
        stored = await self._messages.get(message_id, ledger_row_key(message_id))
        return None if stored is None else LedgerRow.from_entity(stored.entity)


def chain_outcome(chain: list[LedgerRow]) -> str:
    """A chain's outcome in words: its last message's status and channel, after what happened before it
    ("delivered by sms after whatsapp failed")."""
    *earlier, last = chain
    said = f"{_OUTCOME_WORDS[last.status]} {last.channel_name}"
    if not earlier:
        return said
    before = ", then ".join(f"{r.channel_name} {_ENDED_WORDS.get(r.status, r.status.value.lower())}" for r in earlier)
    return f"{said} after {before}"


def _event(row: HistoryRow) -> dict[str, Any]:
    """One event row as callers see it: what happened and when, never the provider's raw payload."""
    return {
        "eventType": row.event_type,
        "status": row.status,
        "rawStatus": row.raw_status,
        "eventTime": row.event_time,
        "detail": row.detail,
        "kind": row.kind,
    }
