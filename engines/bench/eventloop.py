"""An asyncio event loop that remembers when its last I/O poll returned.

When the loop wakes up with several sockets readable, it runs their callbacks one after another,
after whatever task steps were already queued. With 64 token streams in flight that queue can hold
a millisecond of other streams' parsing, and a timestamp taken inside a callback would charge that
to the server. `StampingEventLoop.io_returned_at()` is the `time.perf_counter` instant the current
batch of I/O events came back from the kernel: the earliest moment this process could know the
bytes had arrived. `engines.bench.transport.LeanTransport` stamps received data with it when the
run uses this loop and the default clock and the kernel gives no receive timestamps (the kernel's
stamp, where there is one, is earlier still and wins); `new_event_loop` is the factory the bench entry points
pass to `asyncio.Runner`.

Plain asyncio otherwise (a `selectors.DefaultSelector` wrapped; timers, signals, subprocesses and
cancellation behave as usual).
"""

from __future__ import annotations

import asyncio
import selectors
import time


class _StampingSelector(selectors.DefaultSelector):
    returned_at: float = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready: list[tuple[selectors.SelectorKey, int]] = super().select(timeout)
        self.returned_at = time.perf_counter()
        return ready


class StampingEventLoop(asyncio.SelectorEventLoop):
    """`asyncio.SelectorEventLoop` whose ``io_returned_at()`` is the instant of the last poll's return."""

    def __init__(self) -> None:
        self._stamping = _StampingSelector()
        super().__init__(self._stamping)

    def io_returned_at(self) -> float:
        return self._stamping.returned_at


def new_event_loop() -> StampingEventLoop:
    return StampingEventLoop()
