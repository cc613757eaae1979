"""End-to-end fixtures: the app in the local Functions runner, on Azurite, with the ACS emulator."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devstack.acs import AcsEmulator
from devstack.azurite import Azurite
from devstack.eventgrid import LocalTopic, RetryPolicy, Subscription, TopicSettings
from devstack.feedsink import FeedSink
from devstack.host.process import RunnerProcess
from shared.models import Status
from shared.runtime import Services, build_services
from shared.settings import load_settings
from shared.status import TERMINAL
from tests.conftest import EXTRA_LOG_FILES
from tests.integration.conftest import Clock, app_env

ROOT = Path(__file__).resolve().parents[2]
_LOG_LEVELS = json.loads((ROOT / "host.json").read_text())["logging"]["logLevel"]
SHOW_APP_LOGS = {
    "AzureFunctionsJobHost__logging__logLevel__" + category.replace(".", "__"): "Information"
    for category in ["Function", *(c for c in _LOG_LEVELS if c.startswith("Function."))]
}


@dataclass
class Stack:
    """A running pipeline: emulator, runner, the app's settings, and services for inspection."""

    acs: AcsEmulator
    env: dict[str, str]
    svc: Services
    clock: Clock
    log_dir: Path
    runner: RunnerProcess | None = None
    restarts: int = 0
    logs: list[Path] = field(default_factory=list)
    # A host id of its own, as each Function App has: the suite shares one Azurite, and a runner an
    # earlier test killed may still hold its timer's 60 s listener lease under the default id.
    host_id: str = field(default_factory=lambda: f"e2e-{uuid.uuid4().hex[:16]}")

    def start_runner(self) -> RunnerProcess:
        log = self.log_dir / f"runner-{self.restarts}.log"
        self.restarts += 1
        EXTRA_LOG_FILES.append(log)
        self.runner = RunnerProcess(
            ROOT,
            env=self.env,
            storage=self.env["AzureWebJobsStorage"],
            log_path=log,
            grace_period=5.0,
            host_id=self.host_id,
        ).start()
        self.acs.set_webhook(f"{self.runner.url}/runtime/webhooks/eventgrid?functionName=record_event")
        return self.runner

    def http(self, method: str, path: str, body: object | None = None) -> tuple[int, Any]:
        assert self.runner is not None
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.runner.url}{path}", data=data, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    async def statuses(self, ids: list[str]) -> dict[str, Status | None]:
        rows = await asyncio.gather(*(self.svc.ledger.get(i) for i in ids))
        return {i: (r.status if r else None) for i, r in zip(ids, rows, strict=True)}


@pytest.fixture
async def make_stack(azurite: Azurite, tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Stack]]]:
    """Build a stack with app-setting overrides; everything is stopped at the end of the test."""
    stacks: list[Stack] = []

    async def make(report_delay: float = 0.2, emulator: dict[str, Any] | None = None, **overrides: str) -> Stack:
        acs = AcsEmulator(report_delay=report_delay, late_delay=report_delay * 10, **(emulator or {})).start()
        # host.json keeps the host from forwarding the app's own records (Azure gets them through
        # OpenTelemetry, once); the suite wants them in the runner log, for the PII scan and for tests.
        env = app_env(azurite, acs, **{**SHOW_APP_LOGS, **overrides})
        clock = Clock()
        stack = Stack(acs, env, await build_services(load_settings(env), clock=clock), clock, tmp_path)
        stacks.append(stack)
        stack.start_runner()
        return stack

    yield make
    for stack in stacks:
        if stack.runner is not None:
            stack.runner.terminate()
        stack.acs.stop()
        await stack.svc.close()


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.25)


async def all_final(stack: Stack, ids: list[str], final: frozenset[Status] = TERMINAL) -> bool:
    statuses = await stack.statuses(ids)
    return all(s in final for s in statuses.values())


@pytest.fixture
def feed() -> Iterator[tuple[LocalTopic, FeedSink]]:
    """The status feed's local topic, with a webhook subscriber standing for a downstream system."""
    sink = FeedSink().start()
    with LocalTopic(TopicSettings()) as topic:
        retry = RetryPolicy(max_delivery_attempts=30, event_ttl_minutes=1440, time_scale=0.002)
        topic.subscribe(Subscription("crm", sink.url, max_events_per_batch=20, retry=retry))
        yield topic, sink
    sink.stop()
