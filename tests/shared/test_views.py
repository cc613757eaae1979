"""The public view of one message: ids, statuses, times and counts from its rows, never content or addresses."""

from collections.abc import AsyncIterator
from typing import Any

from shared.services.views import MessageViews


class _Partition:
    """The one query MessageViews makes of the messages table, answered from a list of rows."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self._rows = rows

    async def query(self, _filter: str, parameters: dict[str, str]) -> AsyncIterator[dict[str, Any]]:
        for row in self._rows:
            if row["PartitionKey"] == parameters["pk"]:
                yield row


LEDGER = {
    "PartitionKey": "m-1",
    "RowKey": "ledger|m-1",
    "Channel": "sms",
    "Status": "Delivered",
    "RecipientMasked": "+1425***0123",
    "RecipientHash": "secret-digest",
    "Payload0": '{"to": "+14255550123", "content": {"text": "Your code is 1234"}}',
    "AcceptedAt": "2026-01-01T00:00:00.000000Z",
    "DeliveredAt": "2026-01-01T00:00:05.000000Z",
    "SentAt": "2026-01-01T00:00:01.000000Z",
}


def _event(key: str, status: str, at: str) -> dict[str, Any]:
    return {"PartitionKey": "m-1", "RowKey": key, "Status": status, "EventTime": at, "Kind": "report"}


async def test_an_unknown_message_has_no_view() -> None:
    """A message id with no ledger row reads as None (the handler answers 404)."""
    assert await MessageViews(_Partition([LEDGER])).status("other") is None


async def test_the_view_shows_public_fields_and_never_content_or_hashes() -> None:
    """Status, channel and masked recipient are shown; the payload and the recipient hash are not."""
    view = await MessageViews(_Partition([LEDGER])).status("m-1")
    assert view is not None
    assert (view["status"], view["channel"], view["recipientMasked"]) == ("Delivered", "sms", "+1425***0123")
    shown = str(view)
    assert "1234" not in shown
    assert "secret-digest" not in shown
    assert "+14255550123" not in shown


async def test_transitions_and_events_come_in_time_order() -> None:
    """Transitions and event rows are sorted by their time, whatever order storage returns them in."""
    late = _event("evt|b", "Delivered", "2026-01-01T00:00:05.000000Z")
    early = _event("evt|a", "Sent", "2026-01-01T00:00:02.000000Z")
    view = await MessageViews(_Partition([LEDGER, late, early])).status("m-1")
    assert view is not None
    assert [t["status"] for t in view["transitions"]] == ["Accepted", "Sent", "Delivered"]
    assert [e["status"] for e in view["events"]] == ["Sent", "Delivered"]
