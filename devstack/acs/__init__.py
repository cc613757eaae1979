"""A local Azure Communication Services emulator: SMS, Email and WhatsApp sends, Event Grid events.

Why: the app must be tried and tested without Azure. The emulator serves the endpoints the official
Python SDKs call, verifies their HMAC signatures, deduplicates repeatable requests, injects faults,
records every send, and delivers realistic Event Grid events to a webhook. Simulated recipients
choose outcomes (see docs/acs-emulator.md). Importing this package does no I/O.
"""

from devstack.acs.client import AcsAdminClient, AdminApiError
from devstack.acs.config import DEFAULT_KEY, DeliveryPolicy, Settings
from devstack.acs.emulator import AcsEmulator, connection_string
from devstack.acs.faults import DropPhase, Fault, FaultKind
from devstack.acs.models import (
    DEFAULT_TOPIC,
    Channel,
    DataCasing,
    DeliveryOutcome,
    DeliveryRecord,
    EventSchema,
    Final,
    InboundRecord,
    SendRecord,
    TruthRecord,
)

__all__ = [
    "DEFAULT_KEY",
    "DEFAULT_TOPIC",
    "AcsAdminClient",
    "AcsEmulator",
    "AdminApiError",
    "Channel",
    "DataCasing",
    "DeliveryOutcome",
    "DeliveryPolicy",
    "DeliveryRecord",
    "DropPhase",
    "EventSchema",
    "Fault",
    "FaultKind",
    "Final",
    "InboundRecord",
    "SendRecord",
    "Settings",
    "TruthRecord",
    "connection_string",
]
