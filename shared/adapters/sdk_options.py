"""Options every Azure SDK client of the app is built with (storage, ACS, the feed's publisher)."""

from __future__ import annotations

from typing import Any

# azure-core's default `use_env_settings=True` makes aiohttp (trust_env) look up ~/.netrc and the proxy
# variables on a worker thread for every request. The app needs neither (no proxy in Functions), and
# those thread hops cost a third of its CPU in the throughput benchmark.
NO_ENV_SETTINGS: dict[str, Any] = {"use_env_settings": False}
