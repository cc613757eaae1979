"""host.json `logging.logLevel`, applied to what the runner writes, as the host applies it.

Why: the host filters every log by category before it reaches the console or Application Insights.
An app whose host.json says `"Function": "Warning"` (because it exports its own telemetry through
OpenTelemetry and does not want each record twice) shows no Information logs from its functions
under Core Tools either. A runner that printed them would hide a setting that matters in Azure.

Categories, as the host names them: `Function.<name>` for the host's lines about an invocation,
`Function.<name>.User` for what user code logs during one, `Host.General` for the runner's own
lines (and for anything logged outside an invocation). The most specific configured prefix wins
(`Function.send.User` over `Function.send` over `Function`), then `default`, then Information. App
settings `AzureFunctionsJobHost__logging__logLevel__<category>` override host.json, as in Azure.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The function whose invocation is running in this context (set by the worker around each call).
CURRENT_FUNCTION: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_function", default=None)

OVERRIDE_PREFIX = "AzureFunctionsJobHost__logging__logLevel__"
LEVELS = {
    "trace": 5,
    "debug": logging.DEBUG,
    "information": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "none": logging.CRITICAL + 100,
}
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
HOST_LOGGERS = "devstack."
INVOCATION_LOGGER = "devstack.host.invocations"


@dataclass(frozen=True)
class LogLevels:
    """Minimum level per category prefix (lower-cased), from host.json and app-setting overrides."""

    by_prefix: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_config(cls, log_level: Mapping[str, Any], environ: Mapping[str, str]) -> LogLevels:
        merged = {str(k): str(v) for k, v in log_level.items()}
        merged |= {k[len(OVERRIDE_PREFIX) :]: v for k, v in environ.items() if k.startswith(OVERRIDE_PREFIX)}
        parsed = {}
        for category, name in merged.items():
            level = LEVELS.get(name.strip().lower())
            if level is None:
                raise ValueError(f"logging.logLevel.{category}: unknown level {name!r}")
            parsed[category.replace("__", ".").lower()] = level
        return cls(parsed)

    def minimum(self, category: str) -> int:
        parts = category.lower().split(".")
        for end in range(len(parts), 0, -1):
            level = self.by_prefix.get(".".join(parts[:end]))
            if level is not None:
                return level
        return self.by_prefix.get("default", logging.INFO)


def category_of(record: logging.LogRecord) -> str:
    function = getattr(record, "function_name", None) or CURRENT_FUNCTION.get()
    if record.name == INVOCATION_LOGGER and function:
        return f"Function.{function}"
    if record.name.startswith(HOST_LOGGERS) or not function:
        return "Host.General"
    return f"Function.{function}.User"


class CategoryFilter(logging.Filter):
    """Drops a record below its category's level before it is formatted or written."""

    def __init__(self, levels: LogLevels) -> None:
        super().__init__()
        self._levels = levels

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self._levels.minimum(category_of(record))


def configure_logging(verbose: bool) -> None:
    """The runner's (and each worker process's) log output: stderr, one line per record."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=LOG_FORMAT, stream=sys.stderr)
    for noisy in ("azure", "aiohttp.access", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def apply_log_levels(levels: LogLevels) -> None:
    """Attach the filter to every handler of the root logger (those `configure_logging` made)."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(CategoryFilter(levels))
