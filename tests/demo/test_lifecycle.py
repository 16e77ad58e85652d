"""llama-swap's process lifecycle, observed the same way on the simulator (``sim``) and on a real binary (``real``).

Every assertion holds for both kinds: that is what makes the simulator a fair stand-in for the resilience
scenarios. Activity ids restart at 1 after a restart or ``kill -9`` with the in-memory store and continue with
``store.path``; ``metricsMaxInMemory`` caps the in-memory ring (never the file); a config reload (SIGHUP) stops
the models, closes every event stream, empties the capture cache and keeps the boot marker and the activity;
a restart changes the boot marker; activity timestamps are whole seconds in the host's UTC offset while
``captured_at`` is UTC; the ``activity`` event comes after the capture is stored.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.support.connector import chat, upstream_activity, wait_until
from tests.support.targets import Target, run_target


def boot_marker(ls: Target) -> str:
    return str(httpx.get(ls.base_url + "/api/hardware", timeout=5).json()["captured_at"])


def ids(ls: Target) -> list[int]:
    return [int(r["id"]) for r in upstream_activity(ls.base_url)]


def ok_chat(ls: Target, model: str = "responder-a") -> None:
    assert chat(ls.base_url, model).status_code == 200


@dataclass
class EventLog:
    """``/api/events`` read in a thread: every envelope, the capture status seen at each ``activity`` message."""

    base_url: str
    envelopes: list[dict[str, Any]] = field(default_factory=list)
    capture_status: dict[int, int] = field(default_factory=dict)
    subscribed: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        try:
            with httpx.stream("GET", self.base_url + "/api/events", timeout=httpx.Timeout(5, read=60)) as resp:
                for line in resp.iter_lines():
                    self.subscribed.set()
                    if not line.startswith("data:"):
                        continue
                    env = json.loads(line[5:])
                    self.envelopes.append(env)
                    if env["type"] == "activity":
                        aid = int(json.loads(env["data"])["id"])
                        self.capture_status[aid] = httpx.get(f"{self.base_url}/api/captures/{aid}", timeout=5).status_code
        finally:
            self.ended.set()

    def types(self) -> list[str]:
        return [e["type"] for e in self.envelopes]


@contextmanager
def events(ls: Target) -> Iterator[EventLog]:
    log = EventLog(ls.base_url)
    t = threading.Thread(target=log.run, daemon=True)
    t.start()
    assert log.subscribed.wait(10), "no /api/events snapshot"
    yield log


def test_restart_and_kill_9_with_in_memory_store_restart_ids_at_1_under_a_new_boot_marker(target_kind: str) -> None:
    with run_target(target_kind) as ls:
        ok_chat(ls)
        ok_chat(ls, "responder-b")
        assert ids(ls) == [1, 2]
        first = boot_marker(ls)
        time.sleep(0.01)
        ls.restart()
        second = boot_marker(ls)
        assert second != first
        assert ids(ls) == []
        ok_chat(ls)
        assert ids(ls) == [1]
        ls.kill()
        ls.start()
        assert boot_marker(ls) not in {first, second}
        assert ids(ls) == []
        ok_chat(ls)
        ok_chat(ls)
        assert ids(ls) == [1, 2]


def test_store_path_keeps_ids_across_restart_and_kill_9_and_is_never_pruned(target_kind: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with run_target(target_kind, extra=f"metricsMaxInMemory: 2\nstore:\n  path: {tmp_path / 'activity.db'}") as ls:
        ok_chat(ls)
        ok_chat(ls, "responder-b")
        ok_chat(ls)
        first = boot_marker(ls)
        ls.restart()
        assert boot_marker(ls) != first
        ok_chat(ls)
        ls.kill()
        ls.start()
        ok_chat(ls, "responder-b")
        rows = upstream_activity(ls.base_url)
        assert [(r["id"], r["model"]) for r in rows] == [
            (1, "responder-a"), (2, "responder-b"), (3, "responder-a"), (4, "responder-a"), (5, "responder-b")]


def test_in_memory_ring_keeps_the_newest_metrics_max_in_memory_rows(target_kind: str) -> None:
    with run_target(target_kind, extra="metricsMaxInMemory: 3") as ls:
        for _ in range(5):
            ok_chat(ls)
        assert ids(ls) == [3, 4, 5]
        page = httpx.get(ls.base_url + "/api/metrics/activity", timeout=5).json()
        assert (page["total"], [r["id"] for r in page["data"]]) == (3, [5, 4, 3])


def test_reload_stops_models_closes_streams_keeps_boot_marker_and_activity(target_kind: str) -> None:
    with run_target(target_kind) as ls:
        ok_chat(ls)
        boot = boot_marker(ls)
        wait_until(lambda: upstream_activity(ls.base_url)[0]["has_capture"], what="capture of row 1")
        assert [r["model"] for r in httpx.get(ls.base_url + "/running", timeout=5).json()["running"]] == ["responder-a"]
        with events(ls) as log:
            ls.reload()
            assert log.ended.wait(15), "the event stream stayed open across a config reload"
        assert "modelStatus" in log.types()
        wait_until(lambda: httpx.get(ls.base_url + "/running", timeout=5).json()["running"] == [],
                   what="no model running after the reload")
        assert boot_marker(ls) == boot
        assert [(r["id"], r["has_capture"]) for r in upstream_activity(ls.base_url)] == [(1, False)]
        assert httpx.get(ls.base_url + "/api/captures/1", timeout=5).status_code == 404
        ok_chat(ls)
        assert ids(ls) == [1, 2]


def test_timestamps_are_whole_seconds_in_the_host_offset_and_the_boot_marker_is_utc(
        target_kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # +05:30 all year; the instance process inherits it
    with run_target(target_kind) as ls:
        before = time.time()
        ok_chat(ls)
        (row,) = upstream_activity(ls.base_url)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+05:30", row["timestamp"]), row["timestamp"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z", boot_marker(ls)), boot_marker(ls)
        from datetime import datetime

        stamp = datetime.fromisoformat(row["timestamp"]).timestamp()
        assert int(before) <= stamp <= time.time()


def test_activity_is_announced_after_its_capture_is_stored(target_kind: str) -> None:
    with run_target(target_kind) as ls, events(ls) as log:
        ok_chat(ls)
        ok_chat(ls, "responder-b")
        wait_until(lambda: len(log.capture_status) == 2, what="2 activity messages")
        assert log.capture_status == {1: 200, 2: 200}


@pytest.mark.simulator
def test_simulator_row_is_queryable_before_its_capture_exists() -> None:
    """The window between llama-swap's insert and its capture store, stretched to 5 s by ``capture_delay_s``."""
    with run_target("sim", capture_delay_s=5.0) as ls, events(ls) as log:
        ok_chat(ls)
        (row,) = wait_until(lambda: upstream_activity(ls.base_url), what="row 1")
        assert (row["id"], row["has_capture"]) == (1, False)
        assert httpx.get(ls.base_url + "/api/captures/1", timeout=5).status_code == 404
        assert "activity" not in log.types()
        wait_until(lambda: log.capture_status, timeout=20, what="activity message")
        assert log.capture_status == {1: 200}
        assert upstream_activity(ls.base_url)[0]["has_capture"] is True


def test_simple_responder_rows_are_the_same_on_both(target_kind: str) -> None:
    """A model whose ``cmd`` runs simple-responder answers like it on the simulator too: identical rows."""
    with run_target(target_kind) as ls:
        ok_chat(ls)
        r = httpx.post(ls.base_url + "/v1/chat/completions?stream=true", timeout=30,
                       json={"model": "responder-b", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200 and r.text.count("data:{\"choices\"") == 10
        rows = upstream_activity(ls.base_url)
        tokens = {"cache_tokens": -1, "draft_tokens": -1, "draft_acc_tokens": -1, "input_tokens": 25,
                  "output_tokens": 10, "prompt_per_second": 0, "tokens_per_second": 10}
        assert [(r["id"], r["model"], r["resp_status_code"], r["resp_content_type"], r["tokens"], r["metadata"])
                for r in rows] == [
            (1, "responder-a", 200, "application/json", tokens, {"fifo_priority": "0"}),
            (2, "responder-b", 200, "text/event-stream", tokens, {"fifo_priority": "0"})]
        assert all(r["duration_ms"] >= 30 for r in rows)  # max(wall time, prompt_ms 13 + predicted_ms 17)
