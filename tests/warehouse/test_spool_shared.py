"""Two connectors on one machine share one spool directory: neither overwrites the other's batches."""

from __future__ import annotations

from datetime import UTC, datetime

from warehouse.records import Health
from warehouse.spool import Spool


def test_two_spools_on_one_directory_keep_every_batch(tmp_path):
    a, b = Spool(tmp_path), Spool(tmp_path)  # both start at sequence 0
    at = datetime(2026, 1, 1, tzinfo=UTC)
    pa = a.put([Health("p1", "connected", at)])
    pb = b.put([Health("p2", "connected", at)])
    pa2 = a.put([Health("p1", "stopped", at)])
    assert len({pa, pb, pa2}) == 3
    assert len(a) == 3 and not list(tmp_path.glob("*.tmp"))
    seen = []
    while (item := b.peek()) is not None:
        path, records = item
        seen += [(r.provider_id, r.status) for r in records]
        b.ack(path)
    assert seen == [("p1", "connected"), ("p2", "connected"), ("p1", "stopped")]
