"""Provider-id correlation: how a status that carries only ACS's id finds its message.

SMS reports usually carry our id in their tag, and an email's operation id is derived from ours;
WhatsApp statuses (and SMS reports without a tag) carry only the provider's id, which the sender
learns when ACS answers. Everything about that id lives here:
- the index row (provider id → message id) the sender writes, and the status side reads;
- a per-process memory of ids this instance indexed, so a report needs no index read;
- WhatsApp sends in flight: their statuses can arrive before ACS's answer tells us their id, so such
  a status waits briefly for it instead of being parked and re-matched through storage;
- the placeholder: a status with no index row yet leaves an empty index row where the sender (on any
  instance) will write, so whichever of the two comes second sees the other and re-matches.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from shared.adapters.tables import TableStore
from shared.cache import Lru
from shared.errors import Conflict
from shared.models import Channel
from shared.schema import ProviderIdRow, provider_id_keys

# How long a WhatsApp status for an unknown id waits for a send still in flight here to learn its id.
WAIT_FOR_SEND_SECONDS = 1.0

# Channels whose provider ids the sender indexes once ACS answers: an unmatched report of theirs leaves
# a placeholder where that index row will be written, so that the sender re-matches it.
INDEXED_AFTER_SEND = frozenset({Channel.SMS, Channel.WHATSAPP})


@dataclass(frozen=True)
class Indexed:
    """The sender's index write. `met_placeholder`: a status got there first and is parked."""

    met_placeholder: bool


class Correlation:
    def __init__(self, provider_ids: TableStore, memory: int = 20_000) -> None:
        self._table = provider_ids
        self._known: Lru[str, str] = Lru(memory)
        self._whatsapp_sends = 0
        self._waiters: dict[str, asyncio.Future[str]] = {}

    # -- the sender's side ------------------------------------------------------------------------

    async def index(self, provider_message_id: str, message_id: str, channel: Channel) -> Indexed:
        """Map the provider's id to ours (remembered first, so a status in flight here matches at once).
        An existing row means an earlier attempt of this send wrote it, or a status left a placeholder."""
        self.remember(provider_message_id, message_id)
        row = ProviderIdRow(provider_message_id, channel.value, message_id).to_entity()
        try:
            await self._table.insert(row)
        except Conflict:
            await self._table.upsert(row)
            return Indexed(met_placeholder=True)
        return Indexed(met_placeholder=False)

    def remember(self, provider_message_id: str, message_id: str) -> None:
        self._known.put(provider_message_id, message_id)
        waiter = self._waiters.pop(provider_message_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(message_id)

    @contextlib.contextmanager
    def whatsapp_send_in_flight(self) -> Iterator[None]:
        """A WhatsApp send is waiting for ACS's answer in this process (see `wait_for_send`)."""
        self._whatsapp_sends += 1
        try:
            yield
        finally:
            self._whatsapp_sends -= 1

    # -- the status side --------------------------------------------------------------------------

    async def message_of(self, provider_message_id: str) -> str | None:
        """Our id for a provider id, from memory or the index (a placeholder holds none)."""
        known = self._known.get(provider_message_id)
        if known is not None:
            return known
        stored = await self._table.get(*provider_id_keys(provider_message_id))
        return None if stored is None else ProviderIdRow.from_entity(stored.entity).message_id

    async def wait_for_send(self, provider_message_id: str, channel: Channel) -> str | None:
        """The message id of an unknown WhatsApp status, if a send in flight here learns it in time."""
        if channel != Channel.WHATSAPP:
            return None
        # The send may have learnt the id while the index was being read: no wait, and no parking.
        learnt = self._known.get(provider_message_id)
        if learnt is not None or not self._whatsapp_sends:
            return learnt
        waiter = self._waiters.get(provider_message_id)
        if waiter is None:
            waiter = self._waiters[provider_message_id] = asyncio.get_running_loop().create_future()
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), WAIT_FOR_SEND_SECONDS)
        except TimeoutError:
            if self._waiters.get(provider_message_id) is waiter:
                del self._waiters[provider_message_id]
            return None

    async def leave_placeholder(self, provider_message_id: str, channel: Channel) -> bool:
        """Leave an empty index row where the sender will write. False if the sender wrote first (the
        caller re-matches now); True if the placeholder is ours (the sender will re-match later)."""
        try:
            await self._table.insert(ProviderIdRow(provider_message_id, channel.value).to_entity())
        except Conflict:
            return False
        return True

    async def drop_placeholder(self, provider_message_id: str) -> None:
        """No sender ever filled the placeholder in (its statuses were given up): remove it."""
        keys = provider_id_keys(provider_message_id)
        stored = await self._table.get(*keys)
        if stored is not None and ProviderIdRow.from_entity(stored.entity).message_id is None:
            await self._table.delete(*keys)
