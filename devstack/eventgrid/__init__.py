"""A local Azure Event Grid custom topic: the publish API and push delivery to webhook subscribers.

Why: the status feed (docs/status-feed.md) publishes through the official `EventGridPublisherClient`,
and its subscribers must be tried against Event Grid's real delivery semantics (validation
handshake, retries with backoff, batching, dead-lettering) without Azure. It reuses the ACS
emulator's Event Grid pieces (batch cutting, headers' constants, TLS, loop thread). Importing this
package does no I/O.
"""

from devstack.eventgrid.config import DEFAULT_KEY, DEFAULT_TOPIC, ConfigError, RetryPolicy, Subscription, TopicSettings
from devstack.eventgrid.topic import LocalTopic

__all__ = ["DEFAULT_KEY", "DEFAULT_TOPIC", "ConfigError", "LocalTopic", "RetryPolicy", "Subscription", "TopicSettings"]
