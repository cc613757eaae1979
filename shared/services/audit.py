"""The audit table: who did what, to which subject, and why (design §4.6)."""

from __future__ import annotations

import contextlib
import uuid
from datetime import datetime
from typing import Any

from shared.adapters.tables import TableStore
from shared.clock import iso
from shared.errors import Conflict
from shared.schema import AUDIT_PARTITION, PARTITION_FILTER, PARTITION_SINCE_FILTER, audit_entity


class AuditLog:
    def __init__(self, table: TableStore) -> None:
        self._table = table

    async def record(
        self, *, actor: str, action: str, subject: str, reason: str, now: datetime, entry_id: str | None = None
    ) -> None:
        """Append one entry. With `entry_id` (a change that may be applied again, such as a redelivered
        event finishing its work) the entry is written once, however often it is recorded."""
        entry_id = entry_id or uuid.uuid4().hex[:12]
        entity = audit_entity(
            at=iso(now), entry_id=entry_id, actor=actor, action=action, subject=subject, reason=reason
        )
        with contextlib.suppress(Conflict):
            await self._table.insert(entity)

    async def entries(self, since: datetime | None = None) -> list[dict[str, Any]]:
        query = PARTITION_SINCE_FILTER if since else PARTITION_FILTER
        params: dict[str, Any] = {"pk": AUDIT_PARTITION}
        if since:
            params["since"] = iso(since)
        return [row async for row in self._table.query(query, params)]
