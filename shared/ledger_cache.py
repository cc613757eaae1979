"""What one process remembers about ledger rows, kept apart from the ledger's rules.

Two things, both only ever an optimisation: the last known state of recent rows with their etags
(the instance that sent a message usually records its reports too, and with the remembered etag a
report's write needs no read; a stale entry fails the etag check and costs one read), and one writer
at a time per row in this process (a report racing the send's own write, or two reports of one
message, would otherwise present the same etag and the loser would pay a failed write and a read).
Other instances still meet at the etag check.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from shared.cache import Lru
from shared.schema import LedgerRow


class _Turn:
    """The lock on one row's writes in this process: who holds it, and how many hold or wait."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.owner: asyncio.Task[Any] | None = None
        self.users = 0


class RowCache:
    def __init__(self, capacity: int = 20_000) -> None:
        self._rows: Lru[str, LedgerRow] = Lru(capacity)
        self._turns: dict[str, _Turn] = {}

    def get(self, message_id: str) -> LedgerRow | None:
        return self._rows.get(message_id)

    def put(self, row: LedgerRow) -> None:
        self._rows.put(row.message_id, row.slim())

    def discard(self, message_id: str) -> None:
        self._rows.discard(message_id)

    @contextlib.asynccontextmanager
    async def turn(self, message_id: str) -> AsyncIterator[None]:
        """Take turns with this process's other writers of the row. Re-entrant within one task, so a
        caller may hold the turn across several ledger calls (the sender does, around Sent)."""
        task = asyncio.current_task()
        turn = self._turns.setdefault(message_id, _Turn())
        if turn.owner is task and task is not None:
            yield
            return
        turn.users += 1
        try:
            async with turn.lock:
                turn.owner = task
                try:
                    yield
                finally:
                    turn.owner = None
        finally:
            turn.users -= 1
            if not turn.users:
                del self._turns[message_id]
