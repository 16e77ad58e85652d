"""How far an instance's clock is from ours, from the ``Date`` header of its HTTP answers.

llama-swap stamps process starts (``/api/hardware`` ``captured_at``) with its host's clock; the connector
knows when it lost a stream by its own clock. Comparing the two needs bounds on the offset
``instance clock - connector clock``. Go's HTTP server sets ``Date`` (whole seconds) on every answer: if
the request was sent at connector time ``sent`` and the answer arrived at ``received``, the header was
written at an instance time in ``[D, D + 1)`` and a connector time in ``[sent, received]``, so the offset
lies in ``(D - received, D + 1 - sent)``. Every answer gives such a bracket; their intersection narrows
towards the round-trip time. A bracket that does not overlap the current bounds means a clock was stepped:
the bounds restart from it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime


class ClockOffset:
    """Bounds (seconds) on ``instance clock - connector clock``; unknown until a ``Date`` header is seen."""

    def __init__(self) -> None:
        self.lo: float | None = None
        self.hi: float | None = None

    def observe(self, date_header: str | None, sent: float, received: float) -> None:
        """One answer: its ``Date`` header and the connector's epoch seconds around the request."""
        if not date_header:
            return
        try:
            d = parsedate_to_datetime(date_header).timestamp()
        except (TypeError, ValueError, IndexError):
            return
        lo, hi = d - received, d + 1.0 - sent
        if self.lo is None or self.hi is None or lo > self.hi or hi < self.lo:
            self.lo, self.hi = lo, hi
        else:
            self.lo, self.hi = max(self.lo, lo), min(self.hi, hi)

    def earliest_local(self, instance_time: datetime) -> datetime:
        """The earliest connector time an instance timestamp can correspond to (offset 0 while unknown)."""
        return instance_time - timedelta(seconds=self.hi or 0.0)
