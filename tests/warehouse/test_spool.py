"""The on-disk spool on its own: order, surviving a restart, its byte budget, unreadable files set aside."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

import pytest

from warehouse.records import Health
from warehouse.spool import Spool, SpoolFull

AT = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def h(i: int) -> Health:
    return Health(f"p{i}", "connected", AT)


def drain(spool: Spool) -> list[str]:
    seen = []
    while (item := spool.peek()) is not None:
        path, records = item
        seen += [r.provider_id for r in records]
        spool.ack(path)
    return seen


def test_batches_come_back_in_the_order_they_were_put_also_after_a_restart(tmp_path):
    sp = Spool(tmp_path)
    for i in range(12):  # past 10: order is numeric, not by name length
        sp.put([h(i), h(100 + i)])
    assert len(sp) == 12 and not list(tmp_path.glob("*.tmp"))
    reopened = Spool(tmp_path)  # the connector was killed; the next start continues the sequence
    reopened.put([h(99)])
    expected = [p for i in range(12) for p in (f"p{i}", f"p{100 + i}")] + ["p99"]
    assert drain(reopened) == expected
    assert len(reopened) == 0 and reopened.peek() is None


def test_over_its_budget_the_spool_refuses_and_writes_nothing(tmp_path):
    one = len(pickle.dumps([h(0)], protocol=pickle.HIGHEST_PROTOCOL))
    sp = Spool(tmp_path, max_bytes=2 * one)
    sp.put([h(0)])
    sp.put([h(1)])
    with pytest.raises(SpoolFull, match="over its"):
        sp.put([h(2)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["000000000000.batch", "000000000001.batch"]
    assert drain(sp) == ["p0", "p1"]
    sp.put([h(3)])  # room again once replayed
    assert drain(sp) == ["p3"]


def test_unreadable_files_are_set_aside_and_the_rest_replays_in_order(tmp_path):
    sp = Spool(tmp_path)
    sp.put([h(0)])
    (tmp_path / "000000000001.batch").write_bytes(b"not a pickle")
    whole = pickle.dumps([h(2)], protocol=pickle.HIGHEST_PROTOCOL)
    (tmp_path / "000000000002.batch").write_bytes(whole[: len(whole) // 2])  # torn write
    # a batch pickled by an older build whose record class no longer exists where it was
    (tmp_path / "000000000003.batch").write_bytes(b"\x80\x04\x95\x1a\x00\x00\x00\x00\x00\x00\x00\x8c\x0fconnectors.gone"
                                                  b"\x94\x8c\x06Health\x94\x93\x94.")
    sp = Spool(tmp_path)
    sp.put([h(4)])
    assert drain(sp) == ["p0", "p4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "000000000001.bad", "000000000002.bad", "000000000003.bad"]
