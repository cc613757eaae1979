"""From indexed functions to runnable triggers, with every setting resolved up front.

Why resolve at startup: the host validates bindings when it builds listeners (queue names lower-cased
and checked, `%Setting%` tokens resolved, connections looked up, schedules parsed), and a function
whose binding cannot be resolved is reported as an error while the others run. Doing the same here
turns a typo in a setting into one clear startup line instead of a failure at the first message.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from devstack.host.config import HostConfig
from devstack.host.http_server import HttpFunction
from devstack.host.indexer import FunctionSpec
from devstack.host.invoker import LoadedFunction
from devstack.host.ncrontab import fires_more_than_once_a_minute, parse
from devstack.host.outputs import resolve_output
from devstack.host.queue_processor import QueueTrigger
from devstack.host.retry import RetryPolicy, from_decorator
from devstack.host.routes import compile_route
from devstack.host.schedule_monitor import next_occurrence
from devstack.host.settings import Settings
from devstack.host.timers import TimerTrigger

log = logging.getLogger(__name__)

_QUEUE_NAME = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
POISON_SUFFIX = "-poison"


class BindingError(ValueError):
    """A binding cannot be resolved; the function is reported and not started."""


@dataclass
class Catalog:
    queues: list[QueueTrigger] = field(default_factory=list)
    timers: list[TimerTrigger] = field(default_factory=list)
    eventgrid: dict[str, LoadedFunction] = field(default_factory=dict)
    http: list[HttpFunction] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        queues = [t.function.name for t in self.queues]
        timers = [t.function.name for t in self.timers]
        return sorted([*queues, *timers, *self.eventgrid, *(h.function.name for h in self.http)])


def build_catalog(specs: list[FunctionSpec], settings: Settings, config: HostConfig, zone: tzinfo) -> Catalog:
    catalog = Catalog()
    for spec in specs:
        if settings.is_disabled(spec.name) or (config.functions is not None and spec.name not in config.functions):
            log.info("Function '%s' is disabled", spec.name)
            continue
        try:
            _add(catalog, spec, settings, config, zone)
        except (BindingError, LookupError, ValueError) as exc:
            log.error("The '%s' function is in error: %s", spec.name, exc)
            catalog.errors[spec.name] = str(exc)
    return catalog


def _add(catalog: Catalog, spec: FunctionSpec, settings: Settings, config: HostConfig, zone: tzinfo) -> None:
    if len(spec.inputs) != 1:
        raise BindingError("input bindings other than the trigger are not supported by the local runner")
    function = LoadedFunction(
        spec=spec,
        outputs={p.name: resolve_output(p, settings) for p in spec.outputs},
        retry=_retry(spec, config),
    )
    kind = spec.trigger.type
    if kind == "queueTrigger":
        catalog.queues.append(_queue(function, settings))
    elif kind == "timerTrigger":
        catalog.timers.append(_timer(function, settings, zone))
    elif kind == "eventGridTrigger":
        catalog.eventgrid[spec.name] = function
    elif kind == "httpTrigger":
        catalog.http.append(_http(function))
    else:
        raise BindingError(f"trigger type '{kind}' is not supported by the local runner")


def _retry(spec: FunctionSpec, config: HostConfig) -> RetryPolicy | None:
    policy = from_decorator(spec.retry_settings) if spec.retry_settings else config.retry
    if policy is not None and spec.trigger.type != "timerTrigger":
        log.warning(
            "Soon retries will not be supported for function '%s'. For more information, please visit http://aka.ms/func-retry-policies.",
            spec.name,
        )
    return policy


def queue_name(raw: str, settings: Settings) -> str:
    name = settings.resolve(raw).lower()
    if not _QUEUE_NAME.match(name):
        raise BindingError(f"Invalid queue name: '{name}'")
    return name


def poison_queue_name(name: str) -> str | None:
    """`<queue>-poison`, except for a poison queue itself or when the name would be too long."""
    if name.endswith(POISON_SUFFIX) or len(name) + len(POISON_SUFFIX) > 63:
        return None
    return name + POISON_SUFFIX


def _queue(function: LoadedFunction, settings: Settings) -> QueueTrigger:
    binding = function.spec.trigger
    name = queue_name(binding.get("queueName", ""), settings)
    connection = settings.connection_string(binding.get("connection"))
    return QueueTrigger(function, connection, name, poison_queue_name(name))


def _timer(function: LoadedFunction, settings: Settings, zone: tzinfo) -> TimerTrigger:
    binding = function.spec.trigger
    schedule = parse(settings.resolve(str(binding.get("schedule", ""))))
    now = datetime.now(zone)
    next_occurrence(schedule, now, zone)  # fails for a schedule that never fires
    use_monitor = binding.get("useMonitor")
    use_monitor = True if use_monitor is None else bool(use_monitor)
    if use_monitor and fires_more_than_once_a_minute(schedule, now):
        log.info(
            "UseMonitor changed to false in function '%s' because schedule frequency is less than 1 minute",
            function.name,
        )
        use_monitor = False
    return TimerTrigger(function, schedule, bool(binding.get("runOnStartup") or False), use_monitor)


def _http(function: LoadedFunction) -> HttpFunction:
    binding = function.spec.trigger
    methods = binding.get("methods")
    return HttpFunction(
        function=function,
        route=compile_route(str(binding.get("route") or function.name)),
        methods=frozenset(str(m).upper() for m in methods) if methods else None,
        auth_level=str(binding.get("authLevel") or "function").lower(),
    )
