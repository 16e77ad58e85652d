"""Actions against a REAL llama-swap (pinned build) with its own test upstreams (simple-responder, fake-model)."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text

from actions import drain_once, enqueue, run_direct
from core.providers import Provider, Registry
from tests.support.llamaswap import free_port_block, run_llama_swap
from warehouse.captures import read_capture, reassemble_stream

pytestmark = pytest.mark.real_llamaswap


def config(responder: Path, fake_model: Path, start_port: int) -> str:
    # fast-a / fast-b: simple-responder (instant start); slow-a / slow-b: fake-model with a 1 s load.
    # No groups: llama-swap's default runs one model at a time, so every warm evicts the previous model.
    return f"""healthCheckTimeout: 15
logLevel: debug
startPort: {start_port}
captureBuffer: 5
models:
  fast-a:
    cmd: {responder} -port ${{PORT}} -respond from-a -silent
    proxy: http://127.0.0.1:${{PORT}}
  fast-b:
    cmd: {responder} -port ${{PORT}} -respond from-b -silent
    proxy: http://127.0.0.1:${{PORT}}
  slow-a:
    cmd: {fake_model} -listen 127.0.0.1:${{PORT}} -load 1s -tokens 5 -tps 50
    proxy: http://127.0.0.1:${{PORT}}
  slow-b:
    cmd: {fake_model} -listen 127.0.0.1:${{PORT}} -load 1s -tokens 5 -tps 50
    proxy: http://127.0.0.1:${{PORT}}
"""


def running(base_url: str) -> dict[str, str]:
    return {r["model"]: r["state"] for r in httpx.get(base_url + "/running", timeout=5).json()["running"]}


def audit(db: Engine) -> list[dict[str, object]]:
    with db.connect() as c:
        return [dict(r) for r in c.execute(text("SELECT * FROM actions ORDER BY id")).mappings()]


def reg(base_url: str) -> Registry:
    return Registry((Provider("ls", "real llama-swap", base_url),), default_provider="ls")


@pytest.fixture()
def llama_swap(ls_bins: tuple[Path, Path]):  # type: ignore[no-untyped-def]
    responder, fake_model = ls_bins
    with run_llama_swap(config(responder, fake_model, free_port_block())) as ls:
        yield ls.base_url


def test_warm_makes_the_model_ready_and_unload_stops_it(db: Engine, llama_swap: str) -> None:
    enqueue(db, "ls", "warm", "slow-a")
    assert drain_once(db, reg(llama_swap)) == 1
    assert running(llama_swap) == {"slow-a": "ready"}
    (warm,) = audit(db)
    assert warm["status"] == "succeeded", warm["error"]
    assert warm["result"]["state"] == "ready" and warm["result"]["seconds"] >= 1.0  # the 1 s simulated load
    enqueue(db, "ls", "unload", "slow-a")
    drain_once(db, reg(llama_swap))
    assert running(llama_swap) == {}
    unload = audit(db)[1]
    assert unload["status"] == "succeeded" and unload["result"] == {"model": "slow-a", "state": "stopped"}


def test_actions_enqueued_together_run_one_at_a_time_in_order(db: Engine, llama_swap: str) -> None:
    plan = [
        ("warm", "slow-a"),
        ("warm", "slow-b"),
        ("warm", "fast-a"),
        ("unload", "fast-a"),
        ("warm", "slow-a"),
        ("unload_all", None),
    ]
    ids = [enqueue(db, "ls", a, t) for a, t in plan]
    states: list[dict[str, str]] = []
    stop = threading.Event()

    def watch() -> None:  # what llama-swap itself reports while the queue drains
        while not stop.is_set():
            states.append(running(llama_swap))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        assert drain_once(db, reg(llama_swap)) == len(plan)
    finally:
        stop.set()
        watcher.join()
    rows = audit(db)
    assert [r["id"] for r in rows] == ids
    assert [(r["action"], r["target"]) for r in rows] == plan
    assert all(r["status"] == "succeeded" for r in rows), [r["error"] for r in rows]
    for prev, nxt in zip(rows, rows[1:], strict=False):
        assert prev["finished_at"] <= nxt["started_at"], "two actions overlapped on one host"
    slow = [r for r in rows if r["action"] == "warm" and str(r["target"]).startswith("slow")]
    assert all(r["finished_at"] - r["started_at"] >= timedelta(seconds=1) for r in slow)
    # never two models at once (the default group), and the last action left nothing running
    assert all(len([s for s in snap.values() if s != "stopped"]) <= 1 for snap in states)
    assert running(llama_swap) == {}
    assert rows[-1]["result"] == {"unloaded": ["slow-a"]}


def first_inflight_id(base_url: str, timeout: float = 10) -> str:
    """Read /api/events until an in-flight entry appears; return its id."""
    deadline = time.monotonic() + timeout
    with httpx.stream("GET", base_url + "/api/events", timeout=httpx.Timeout(timeout)) as resp:
        for line in resp.iter_lines():
            if time.monotonic() > deadline:
                break
            if not line.startswith("data:"):
                continue
            env = json.loads(line[5:])
            if env["type"] != "inflight":
                continue
            msg = json.loads(env["data"])
            reqs = msg.get("requests") or ([msg["request"]] if msg.get("request") else [])
            if reqs:
                return str(reqs[0]["id"])
    raise TimeoutError("no in-flight request seen")


def test_cancel_inflight_aborts_a_running_request(db: Engine, llama_swap: str) -> None:
    result: dict[str, object] = {}

    def slow_request() -> None:
        t0 = time.monotonic()
        try:
            r = httpx.post(
                llama_swap + "/v1/chat/completions?wait=20s",
                timeout=30,
                json={"model": "fast-a", "messages": [{"role": "user", "content": "hi"}]},
            )
            result["status"] = r.status_code
        except httpx.HTTPError as exc:
            result["error"] = type(exc).__name__
        result["seconds"] = time.monotonic() - t0

    t = threading.Thread(target=slow_request)
    t.start()
    rid = first_inflight_id(llama_swap)
    enqueue(db, "ls", "cancel_inflight", rid)
    drain_once(db, reg(llama_swap))
    t.join(timeout=25)
    (row,) = audit(db)
    assert row["status"] == "succeeded", row["error"]
    assert row["result"] == {"cancelled": rid}
    assert float(result["seconds"]) < 15  # type: ignore[arg-type]  # cut off, not the full 20 s wait
    enqueue(db, "ls", "cancel_inflight", rid)  # it is gone now
    drain_once(db, reg(llama_swap))
    again = audit(db)[1]
    assert again["status"] == "failed" and f"in-flight request {rid} not found" in str(again["error"])


def test_fetch_capture_stores_the_streamed_answer(db: Engine, llama_swap: str) -> None:
    with db.begin() as c:
        c.execute(
            text("INSERT INTO providers (id, label, base_url, kind) VALUES ('ls', 'ls', :u, 'llama-swap')"),
            {"u": llama_swap},
        )
    r = httpx.post(
        llama_swap + "/v1/chat/completions?stream=true",
        timeout=30,
        json={"model": "fast-a", "messages": [{"role": "user", "content": "hi"}], "stream": True},
    )
    assert r.status_code == 200
    act = httpx.get(llama_swap + "/api/metrics/activity", timeout=5).json()["data"]
    aid = int(act[0]["id"])
    _, outcome = run_direct(db, reg(llama_swap), None, "ls", "fetch_capture", str(aid), {"epoch": "boot-1"})
    assert outcome.status == "succeeded", outcome.error
    stored = read_capture(db, "ls", "boot-1", aid)
    assert stored is not None and stored.row.req_path == "/v1/chat/completions"
    assert reassemble_stream(stored.row.resp_body) == "asdf" * 10
    assert json.loads(stored.row.req_body or b"{}")["model"] == "fast-a"


def test_unknown_model_fails_with_llama_swaps_message(db: Engine, llama_swap: str) -> None:
    enqueue(db, "ls", "unload", "no-such-model")
    drain_once(db, reg(llama_swap))
    (row,) = audit(db)
    assert row["status"] == "failed" and "HTTP 404" in str(row["error"])


def test_model_log_is_read_from_the_host(db: Engine, llama_swap: str) -> None:
    from actions.host_logs import fetch_model_log

    enqueue(db, "ls", "warm", "slow-b")
    drain_once(db, reg(llama_swap))
    text = fetch_model_log(reg(llama_swap).get("ls"), "slow-b", read_s=0.5)
    assert text.strip(), "the model's log history should not be empty after a load"
