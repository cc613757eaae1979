"""Optional function/system keys for HTTP triggers and the Event Grid webhook.

Why optional: Core Tools grants every local request admin rights (its `CliAuthenticationHandler`),
so by default nothing is checked, exactly like `func start`. Setting a key (app setting or
environment variable) turns on the check the Azure host would make, so the ACS emulator and tests
can exercise `?code=` / `x-functions-key` handling:
- `DEVSTACK_HOST_MASTER_KEY`: the master key; passes every check (admin, function, system).
- `DEVSTACK_HOST_FUNCTION_KEY`: the host `default` function key; passes `authLevel=function`.
- `DEVSTACK_HOST_EVENTGRID_KEY`: the `eventgrid_extension` system key for `/runtime/webhooks/eventgrid`.
A check is active once a key that could satisfy it is configured; anonymous routes are never checked.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from devstack.host.settings import Settings


@dataclass(frozen=True)
class HostKeys:
    master: str | None = None
    function: str | None = None
    eventgrid: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> HostKeys:
        return cls(
            master=settings.get("DEVSTACK_HOST_MASTER_KEY") or None,
            function=settings.get("DEVSTACK_HOST_FUNCTION_KEY") or None,
            eventgrid=settings.get("DEVSTACK_HOST_EVENTGRID_KEY") or None,
        )

    def allows(self, auth_level: str, presented: str | None) -> bool:
        """Whether a request presenting `presented` may call a route of `auth_level`."""
        level = auth_level.lower()
        if level == "anonymous":
            return True
        if level == "admin":
            return _check(presented, self.master)
        return _check(presented, self.master, self.function)

    def allows_webhook(self, presented: str | None) -> bool:
        return _check(presented, self.master, self.eventgrid)


def _check(presented: str | None, *accepted: str | None) -> bool:
    configured = [key for key in accepted if key]
    if not configured:
        return True  # no key configured: open, like Core Tools
    return presented is not None and any(hmac.compare_digest(presented, key) for key in configured)


def presented_key(query: Mapping[str, str], headers: Mapping[str, str]) -> str | None:
    """`?code=` wins over the `x-functions-key` header, as in the host."""
    return query.get("code") or headers.get("x-functions-key")
