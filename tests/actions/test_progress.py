"""An action's status line: exact text for each phase on known rows (pure), and the query that feeds it
(real test Postgres, a host lease taken through warehouse.lease as a benchmark would)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
from sqlalchemy import Engine, text

from actions.progress import describe, measured_load_s, seconds
from actions.queue import enqueue
from tests.ui import seed
from warehouse import lease
from warehouse.db import psycopg_dsn
from warehouse.queries.actions import ActionProgress, action_progress, claim_next, finish_action

T = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def progress(**kw: object) -> ActionProgress:
    base = ActionProgress(
        id=12, provider_id="gpu-box", action="warm", target="qwen", status="queued",
        requested_at=T, started_at=None, finished_at=None, now=T + timedelta(seconds=4), error=None, result=None,
        ahead=0, lease_holder=None, lease_purpose=None, lease_held_s=None, lease_expired=None,
        target_state="stopped", target_state_since=None,
    )  # fmt: skip
    return replace(base, **kw)  # type: ignore[arg-type]


def test_seconds_and_measured_load() -> None:
    assert [seconds(s) for s in (0.04, 3.21, 25.4, 245)] == ["0.0 s", "3.2 s", "25 s", "4m 05s"]
    assert measured_load_s([2800.0, None, 3100.0, 3000.0]) == 3.0
    assert measured_load_s([None]) is None


def test_queued_behind_a_benchmark_holding_the_host_lease() -> None:
    line = describe(progress(lease_holder="bench@box:7:abc", lease_purpose="bench run 1f2e", lease_held_s=21.0))
    assert (line.status, line.done) == ("queued", False)
    assert line.text == (
        "#12 warm qwen: queued for 4.0 s: waiting for the host lease held by bench@box:7:abc (bench run 1f2e) "
        "for 21 s"
    )
    expired = describe(progress(lease_holder="bench@box:7:abc", lease_purpose=None, lease_held_s=90.0,
                                lease_expired=True))  # fmt: skip
    assert expired.text.endswith(
        "held by bench@box:7:abc for 1m 30s; it stopped heartbeating, the executor takes the lease when it expires"
    )


def test_queued_behind_earlier_actions_and_without_an_executor() -> None:
    behind = describe(progress(ahead=2, lease_holder="actions@box:9:def", lease_purpose="action 11: unload llama"))
    assert behind.text == (
        "#12 warm qwen: queued for 4.0 s: behind 2 earlier actions on gpu-box (running: action 11: unload llama)"
    )
    assert describe(progress()).text == "#12 warm qwen: queued for 4.0 s: waiting for the action executor"
    stuck = describe(progress(now=T + timedelta(seconds=45)))
    assert stuck.text == (
        "#12 warm qwen: queued for 45 s: no action executor has picked it up: is `boocontrol up` "
        "(or `boocontrol actions run`) running?"
    )


def test_running_warm_says_what_it_waits_for() -> None:
    run = {"status": "running", "started_at": T + timedelta(seconds=1), "now": T + timedelta(seconds=26)}
    waiting = describe(progress(**run), load_s=3.0, inflight_by_model={"llama": 2, "qwen": 0})
    assert waiting.text == (
        "#12 warm qwen: running for 25 s: waiting for 2 in-flight requests on loaded models (2 on llama): "
        "llama-swap lets a model's requests finish before it evicts it"
    )
    loading = describe(progress(**run, target_state="starting", target_state_since=T + timedelta(seconds=24)),
                       load_s=3.0)  # fmt: skip
    assert loading.text == "#12 warm qwen: running for 25 s: loading for 2.0 s of a measured ~3.0 s"
    slow = describe(progress(**run, target_state="starting", target_state_since=T + timedelta(seconds=2)),
                    load_s=3.0)  # fmt: skip
    assert slow.text == "#12 warm qwen: running for 25 s: loading for 24 s of a measured ~3.0 s (slower than usual)"
    first = describe(progress(**run, target_state="starting", target_state_since=T + timedelta(seconds=20)))
    assert first.text == "#12 warm qwen: running for 25 s: loading for 6.0 s (no load time measured yet)"
    ready = describe(progress(**run, target_state="ready"), load_s=3.0)
    assert ready.text == "#12 warm qwen: running for 25 s: llama-swap reports it ready; waiting for its server to answer"
    asking = describe(progress(**run), load_s=3.0)
    assert asking.text == "#12 warm qwen: running for 25 s: asking llama-swap to load it (a measured ~3.0 s)"


def test_finished_lines_carry_duration_result_and_message() -> None:
    done = {"started_at": T + timedelta(seconds=2), "finished_at": T + timedelta(seconds=5.25)}
    ok = describe(progress(status="succeeded", result={"model": "qwen", "seconds": 3.2, "state": "ready"}, **done))
    assert (ok.status, ok.done) == ("succeeded", True)
    assert ok.text == "#12 warm qwen: done in 3.2 s (queued 2.0 s): qwen is ready"
    failed = describe(progress(status="failed", error="provider gpu-box: timed out: ReadTimeout", **done))
    assert failed.text == (
        "#12 warm qwen: failed after 3.2 s (queued 2.0 s): provider gpu-box: timed out: ReadTimeout"
    )
    refused = describe(progress(status="refused", error="provider gpu-box is unreachable: ConnectError",
                                started_at=T, finished_at=T + timedelta(seconds=0.1)))  # fmt: skip
    assert refused.text == "#12 warm qwen: refused: provider gpu-box is unreachable: ConnectError"
    all_ = describe(progress(action="unload_all", target=None, status="succeeded", started_at=T,
                             finished_at=T + timedelta(seconds=0.4), result={"unloaded": ["llama", "qwen"]}))  # fmt: skip
    assert all_.text == "#12 unload all: done in 0.4 s: unloaded llama, qwen"


def test_action_progress_reads_the_row_the_lease_and_the_target_state(db: Engine, db_url: str) -> None:
    now = datetime.now(UTC)
    with db.begin() as c:
        seed.provider(c, "alpha")
        seed.model(c, "alpha", "qwen", state="starting")
        seed.transition(c, "alpha", "qwen", now - timedelta(seconds=3), "starting", "stopped")
    first = enqueue(db, "alpha", "unload_all", requested_by="test")
    warm = enqueue(db, "alpha", "warm", "qwen", requested_by="ui")
    with psycopg.connect(psycopg_dsn(db_url), autocommit=True) as conn:
        lease.try_acquire(conn, "alpha", lease.SCOPE_HOST, "bench@box:7:abc", "bench run 1f2e", ttl_s=300)
    p = action_progress(db, warm)
    assert (p.id, p.provider_id, p.action, p.target, p.status, p.ahead) == (warm, "alpha", "warm", "qwen", "queued", 1)
    assert (p.lease_holder, p.lease_purpose, p.lease_expired) == ("bench@box:7:abc", "bench run 1f2e", False)
    assert p.lease_held_s is not None and 0 <= p.lease_held_s < 60
    assert p.target_state == "starting" and p.target_state_since is not None
    assert abs((p.target_state_since - (now - timedelta(seconds=3))).total_seconds()) < 0.001
    assert p.started_at is None and p.finished_at is None and p.now >= p.requested_at
    with db.connect() as c:
        conn = c.execution_options(isolation_level="AUTOCOMMIT")
        assert claim_next(conn, "alpha").id == first  # type: ignore[union-attr]
        finish_action(conn, first, "succeeded", {"unloaded": []}, None)
        assert claim_next(conn, "alpha").id == warm  # type: ignore[union-attr]
        finish_action(conn, warm, "failed", None, "provider alpha: boom")
    done = action_progress(db, warm)
    assert (done.status, done.error, done.ahead) == ("failed", "provider alpha: boom", 0)
    assert done.started_at is not None and done.finished_at is not None
    assert describe(done).text.startswith(f"#{warm} warm qwen: failed after ")
    assert action_progress(db, first).result == {"unloaded": []}
    with db.begin() as c:
        c.execute(text("DELETE FROM actions"))
    try:
        action_progress(db, warm)
    except KeyError as exc:
        assert str(exc) == f"'no action {warm}'"
    else:  # pragma: no cover
        raise AssertionError("an unknown action must raise KeyError")
