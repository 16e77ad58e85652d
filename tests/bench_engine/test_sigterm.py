"""`engines.bench.signals.cancel_on_sigterm`: a raising SIGTERM handler (Prefect's) must not be lost when
the signal lands inside a plain event-loop callback, and the run's cleanup must run before it is raised."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from engines.bench.signals import cancel_on_sigterm


class Terminated(BaseException):
    """Stands for Prefect's TerminationSignal (a BaseException raised by its SIGTERM handler)."""


def raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated(signum)


@pytest.fixture
def raising_handler() -> Iterator[None]:
    before = signal.signal(signal.SIGTERM, raise_terminated)
    yield
    signal.signal(signal.SIGTERM, before)


async def run_with_signal_in_a_callback(events: list[str]) -> str:
    """The 'run': a loop callback receives SIGTERM (like a socket reader would), then the run goes on
    for a while; its cleanup is recorded."""
    loop = asyncio.get_running_loop()
    loop.call_soon(lambda: (events.append("callback"), os.kill(os.getpid(), signal.SIGTERM)))
    try:
        await asyncio.sleep(0.5)
        events.append("finished normally")
        return "completed"
    except asyncio.CancelledError:
        events.append("cancelled")
        raise
    finally:
        events.append("cleanup")


def test_without_the_guard_a_signal_in_a_callback_is_swallowed(raising_handler: None) -> None:
    events: list[str] = []
    with asyncio.Runner() as r:
        # asyncio logs the exception raised inside the callback and carries on: the stop is lost
        assert r.run(run_with_signal_in_a_callback(events)) == "completed"
    assert events == ["callback", "finished normally", "cleanup"]


def test_guard_cancels_the_run_cleans_up_then_raises_the_previous_handlers_exception(raising_handler: None) -> None:
    events: list[str] = []
    with asyncio.Runner() as r, pytest.raises(Terminated):
        r.run(cancel_on_sigterm(lambda: run_with_signal_in_a_callback(events)))
    assert events == ["callback", "cancelled", "cleanup"]
    assert signal.getsignal(signal.SIGTERM) is raise_terminated  # handed back


def test_guard_with_the_default_disposition_exits_143_after_cleanup() -> None:
    before = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    events: list[str] = []
    try:
        with asyncio.Runner() as r, pytest.raises(SystemExit) as exc:
            r.run(cancel_on_sigterm(lambda: run_with_signal_in_a_callback(events)))
        assert exc.value.code == 143
        assert events == ["callback", "cancelled", "cleanup"]
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, before)


def test_guard_is_transparent_without_a_signal() -> None:
    async def work() -> int:
        await asyncio.sleep(0)
        return 7

    with asyncio.Runner() as r:
        assert r.run(cancel_on_sigterm(work)) == 7
