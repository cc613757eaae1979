"""The error tree of the application. Two branches drive behaviour; two outcomes steer storage races.

    ContactMessagesError
    ├── PermanentError          input or recipient at fault: record it, complete the message, never retry
    │   ├── ValidationFailed    the send request breaks the contract (field errors attached)
    │   ├── IdReused            a different request arrived under an id already in use
    │   ├── SendRejected        the provider refused this message for good (4xx other than 408/429)
    │   └── MalformedEvent      an ACS event that cannot be understood (the reason names the field)
    ├── TransientError          may succeed later: retried with backoff, then by the platform
    │   ├── Throttled           the provider said 429; carries Retry-After
    │   ├── AccessDenied        the provider refused our identity (403, `acs-forbidden`): an operator acts
    │   └── StorageUnreachable  no answer from the storage account (network, or the emulator is stopped)
    ├── ConfigurationError      settings are missing or invalid (fails at start, never per message)
    ├── Conflict                an insert-if-absent found the row: a duplicate, handled where it happens
    └── EtagMismatch            the row changed since it was read: read again and decide again

`Conflict` and `EtagMismatch` are outcomes of a storage write, not failures: the caller that made the
write decides what they mean, and neither ever reaches the platform.

SDK exceptions are translated into these at one narrow boundary, in `shared/adapters`.
"""

from __future__ import annotations

from dataclasses import dataclass


class ContactMessagesError(Exception):
    """Base of every error this application raises on purpose."""


class PermanentError(ContactMessagesError):
    """Retrying cannot help: the input or the recipient is at fault."""


@dataclass(frozen=True)
class FieldError:
    """One broken rule of the send request contract, addressed by its JSON path."""

    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class ValidationFailed(PermanentError):
    """The send request breaks the contract; `errors` says where and why."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))


class IdReused(PermanentError):
    """A request arrived under the id of a different, earlier request: it is not sent."""

    def __init__(self, message_id: str, stored_payload_ref: str | None, payload: str) -> None:
        self.message_id = message_id
        self.stored_payload_ref = stored_payload_ref
        self.payload = payload  # the refused request, as it would have been stored
        super().__init__(f"id {message_id} is already used by a different request")


class SendRejected(PermanentError):
    """The provider refused this message for good (bad recipient, bad sender, auth)."""

    def __init__(self, code: str, detail: str) -> None:
        self.code = code
        super().__init__(f"{code}: {detail}")


class TransientError(ContactMessagesError):
    """The operation may succeed later (network, 5xx, timeouts, storage hiccups).

    `may_have_sent` says whether the provider may have acted on the request before failing (a lost
    response, a 500, a gateway timeout) or certainly did not (no connection, 401/403/408/429/503).
    Only the second kind lets a later attempt start afresh; the first must be deduplicated by ACS or
    checked with it.
    """

    def __init__(self, message: str, *, may_have_sent: bool = True) -> None:
        self.may_have_sent = may_have_sent
        super().__init__(message)


class Throttled(TransientError):
    """The provider asked us to slow down; try again after `retry_after` seconds."""

    def __init__(self, retry_after: float, detail: str = "throttled") -> None:
        self.retry_after = retry_after
        super().__init__(f"{detail} (retry after {retry_after:.1f}s)", may_have_sent=False)


class AccessDenied(TransientError):
    """The provider refused the app's identity (HTTP 403): a role assignment is missing, wrong, or still
    propagating. Not the message's fault, so never Failed: held with a long backoff, alerted on as
    `acs-forbidden`, and sent by itself once an operator fixes the role."""

    reason = "acs-forbidden"

    def __init__(self, detail: str) -> None:
        super().__init__(f"{self.reason}: {detail}", may_have_sent=False)


class StorageUnreachable(TransientError):
    """The storage account did not answer at all (connection refused, DNS, timeout), as when the local
    stack is stopped; an answer with an error status is a plain `TransientError` or `PermanentError`."""


class MalformedEvent(PermanentError):
    """The event cannot be understood; the reason says which field is wrong. Recorded as rejected and
    acknowledged: Event Grid would deliver it again for 24 hours to no avail."""


class ConfigurationError(ContactMessagesError):
    """Settings are missing or invalid; every problem is listed in one message."""


class Conflict(ContactMessagesError):
    """The entity already exists (an insert-if-absent found a previous insert)."""


class EtagMismatch(ContactMessagesError):
    """Someone changed the entity since we read it; read again and decide again."""
