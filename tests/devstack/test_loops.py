"""The stand-in loop: uvloop for the runner's host side and the emulator, without touching other loops."""

from __future__ import annotations

import asyncio
import sys

import pytest

from devstack.loops import run_stand_in, stand_in_loop_factory


async def _loop_class() -> str:
    running = asyncio.get_running_loop()
    return f"{type(running).__module__}.{type(running).__qualname__}"


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop is not installed on Windows")
def test_stand_in_runs_on_uvloop_where_it_is_installed() -> None:
    assert stand_in_loop_factory() is not None
    assert run_stand_in(_loop_class()).startswith("uvloop")


def test_stand_in_leaves_the_global_policy_alone() -> None:
    """Loops made afterwards (the worker loop, worker processes, tests) stay asyncio's default."""
    before = type(asyncio.get_event_loop_policy())
    run_stand_in(_loop_class())
    assert type(asyncio.get_event_loop_policy()) is before
    loop = asyncio.new_event_loop()
    try:
        assert not type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()


def test_stand_in_returns_what_the_coroutine_returns_and_raises_what_it_raises() -> None:
    async def fails() -> None:
        raise LookupError("from the coroutine")

    assert run_stand_in(asyncio.sleep(0, result=7)) == 7
    with pytest.raises(LookupError, match="from the coroutine"):
        run_stand_in(fails())
