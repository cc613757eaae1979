"""One pipeline for the whole corpus module: the app in the local Functions runner, on Azurite, with the
ACS emulator sending for real but delivering no events of its own, so that every status and engagement
the tests see comes from the published payload they posted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devstack.acs import AcsEmulator
from devstack.azurite import Azurite
from shared.runtime import build_services
from shared.settings import load_settings
from tests.e2e.conftest import Stack
from tests.integration.conftest import Clock, app_env


@pytest.fixture(scope="module")
async def corpus_stack(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    acs = AcsEmulator(report_delay=0.05, late_delay=0.5).start()
    env = app_env(azurite, acs, AzureFunctionsJobHost__logging__logLevel__Function="Information")
    clock = Clock()
    log_dir = Path(tmp_path_factory.mktemp("conformance"))
    stack = Stack(acs, env, await build_services(load_settings(env), clock=clock), clock, log_dir)
    stack.start_runner()
    acs.set_webhook(None)  # the emulator's own reports would race the published ones
    yield stack
    if stack.runner is not None:
        stack.runner.terminate()
    acs.stop()
    await stack.svc.close()
