"""SIGTERM during a run: cancel the run's task at a safe point, then hand the signal on.

A Python signal handler that *raises* (Prefect's ``capture_sigterm`` raises ``TerminationSignal``)
raises wherever the main thread happens to be. Inside a task step that is fine — the task fails with
it and the run's cleanup runs — but inside a plain event-loop callback (a socket reader, a timer)
asyncio logs the exception and carries on, and the run would not stop. So for the run's duration
SIGTERM goes to the loop (`loop.add_signal_handler`): the handler cancels the run's task, the runner
records the run as cancelled and restores the host, and afterwards the signal is handed to the handler
that was installed before (Prefect's raises ``TerminationSignal`` for its engine to see). With the
default disposition the process exits with status 143 after the cleanup, instead of dying mid-run
with requests left in flight. SIGINT needs none of this: `asyncio.Runner` already turns the first
Ctrl-C into a cancellation of the main task.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def cancel_on_sigterm(make: Callable[[], Awaitable[T]]) -> T:
    """Await ``make()``; a SIGTERM meanwhile cancels it (message ``"SIGTERM"``), then is re-delivered to
    the previous handler once the awaitable has finished its cleanup."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    previous = signal.getsignal(signal.SIGTERM)
    got: list[int] = []
    if previous is None or previous is signal.SIG_IGN or task is None:  # None: installed outside Python
        return await make()

    def on_sigterm() -> None:
        if not got:
            got.append(signal.SIGTERM)
            task.cancel("SIGTERM")

    try:
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    except (ValueError, RuntimeError, NotImplementedError):  # not the main thread, or no signal support
        return await make()
    try:
        return await make()
    except asyncio.CancelledError:
        if not got:
            raise
    finally:
        with contextlib.suppress(Exception):
            loop.remove_signal_handler(signal.SIGTERM)
        signal.signal(signal.SIGTERM, previous)
    # the run was cancelled by SIGTERM and has cleaned up: deliver the signal as it would have been
    if callable(previous):
        previous(signal.SIGTERM, None)
    raise SystemExit(128 + signal.SIGTERM)
