"""Action queue and executor against fake hosts (httpx.MockTransport) and the real test Postgres."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import psycopg
import pytest
from sqlalchemy import Engine, text

from actions import InvalidAction, drain_once, enqueue, run_direct, run_forever
from actions.executor import drain_provider
from core.providers import Provider, Registry
from tests.actions.fake_llamaswap import FakeLlamaSwap, capture_payload
from tests.ui import seed
from tests.ui.seed import T0
from warehouse import lease
from warehouse.captures import read_capture, reassemble_stream
from warehouse.db import psycopg_dsn
from warehouse.queries.actions import action_log

KEY = "sk-test-key-0123456789"


def registry(*ids: str) -> Registry:
    return Registry(
        tuple(Provider(i, i, f"http://{i}.test:8080", api_key_env=f"KEY_{i.upper()}") for i in ids),
        default_provider=ids[0] if ids else None,
    )


def factory(fakes: dict[str, FakeLlamaSwap]) -> Callable[[Provider], httpx.AsyncClient]:
    def make(p: Provider) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=fakes[p.id].transport())

    return make


def audit(db: Engine) -> list[dict[str, object]]:
    with db.connect() as c:
        return [dict(r) for r in c.execute(text("SELECT * FROM actions ORDER BY id")).mappings()]


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ALPHA", "BETA", "GAMMA"):
        monkeypatch.setenv(f"KEY_{name}", KEY)


def test_enqueue_validates(db: Engine) -> None:
    with pytest.raises(InvalidAction, match="unknown action"):
        enqueue(db, "alpha", "reboot")
    with pytest.raises(InvalidAction, match="needs a target"):
        enqueue(db, "alpha", "warm")
    with pytest.raises(InvalidAction, match="takes no target"):
        enqueue(db, "alpha", "unload_all", "x")
    with pytest.raises(InvalidAction, match="epoch"):
        enqueue(db, "alpha", "fetch_capture", "3")
    assert audit(db) == []
    aid = enqueue(db, "alpha", "warm", "qwen", requested_by="ui")
    (row,) = audit(db)
    assert row["id"] == aid and row["status"] == "queued" and row["requested_by"] == "ui"
    assert row["started_at"] is None and row["requested_at"] is not None


def test_warm_then_unload_records_states(db: Engine) -> None:
    fake = FakeLlamaSwap()
    enqueue(db, "alpha", "warm", "qwen")
    enqueue(db, "alpha", "unload", "qwen")
    assert drain_once(db, registry("alpha"), factory({"alpha": fake})) == 2
    warm, unload = audit(db)
    assert warm["status"] == "succeeded" and warm["result"]["state"] == "ready"
    assert unload["status"] == "succeeded" and unload["result"] == {"model": "qwen", "state": "stopped"}
    assert fake.models["qwen"] == "stopped"
    assert set(fake.seen_auth) == {
        f"Bearer {KEY}",
        None,
    }  # key sent to mutating calls only; /wol-health has none


def test_one_host_runs_in_order_without_overlap_and_hosts_run_in_parallel(db: Engine) -> None:
    fa, fb = FakeLlamaSwap(load_s=0.3, unload_s=0.3), FakeLlamaSwap(load_s=0.3, unload_s=0.3)
    ids = []
    for pid in ("alpha", "beta"):
        ids += [
            enqueue(db, pid, "warm", "qwen"),
            enqueue(db, pid, "warm", "llama"),
            enqueue(db, pid, "unload", "llama"),
        ]
    t0 = time.monotonic()
    assert drain_once(db, registry("alpha", "beta"), factory({"alpha": fa, "beta": fb})) == 6
    elapsed = time.monotonic() - t0
    rows = audit(db)
    assert [r["status"] for r in rows] == ["succeeded"] * 6
    for pid in ("alpha", "beta"):
        mine = [r for r in rows if r["provider_id"] == pid]
        assert [r["action"] for r in mine] == ["warm", "warm", "unload"]
        for prev, nxt in zip(mine, mine[1:], strict=False):
            assert prev["id"] < nxt["id"]
            assert prev["finished_at"] <= nxt["started_at"], "actions on one host overlapped"
        assert all(
            r["finished_at"] - r["started_at"] >= __import__("datetime").timedelta(seconds=0.3) for r in mine
        )
    # the fake saw the same order: qwen loaded, then llama (evicting qwen), then llama unloaded
    assert [
        p for m, p, *_ in fa.calls if m in ("GET", "POST") and p.startswith(("/upstream", "/api/models"))
    ] == ["/upstream/qwen/", "/upstream/llama/", "/api/models/unload/llama"]
    a_rows = [r for r in rows if r["provider_id"] == "alpha"]
    b_rows = [r for r in rows if r["provider_id"] == "beta"]
    assert (
        a_rows[0]["started_at"] < b_rows[-1]["finished_at"]
        and b_rows[0]["started_at"] < a_rows[-1]["finished_at"]
    )
    assert elapsed < 2.5  # 3 x 0.3 s per host in parallel, not 6 x 0.3 s in series plus overhead


def test_unreachable_provider_is_refused_with_a_clear_message(db: Engine) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    def make(p: Provider) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(refuse))

    enqueue(db, "alpha", "unload_all")
    drain_once(db, registry("alpha"), make)
    (row,) = audit(db)
    assert row["status"] == "refused"
    assert row["error"] == "provider alpha is unreachable: ConnectError: [Errno 111] Connection refused"
    assert row["started_at"] is not None and row["finished_at"] is not None


def test_unknown_provider_and_host_errors(db: Engine) -> None:
    fake = FakeLlamaSwap()
    enqueue(db, "ghost", "unload_all")
    enqueue(db, "alpha", "unload", "nope")
    enqueue(db, "alpha", "cancel_inflight", "42")
    drain_once(db, registry("alpha"), factory({"alpha": fake}))
    ghost, unload, cancel = audit(db)
    assert ghost["status"] == "refused" and ghost["error"] == "provider ghost is not in the provider registry"
    assert (
        unload["status"] == "failed"
        and "model not found" in unload["error"]
        and "HTTP 404" in unload["error"]
    )
    assert cancel["status"] == "failed" and "in-flight request 42 not found" in cancel["error"]


def test_cancel_inflight_and_unload_all(db: Engine) -> None:
    fake = FakeLlamaSwap(models={"qwen": "ready", "llama": "stopped"}, inflight={"7"})
    enqueue(db, "alpha", "cancel_inflight", "7")
    enqueue(db, "alpha", "unload_all")
    drain_once(db, registry("alpha"), factory({"alpha": fake}))
    cancel, unload_all = audit(db)
    assert cancel["status"] == "succeeded" and fake.inflight == set()
    assert unload_all["result"] == {"unloaded": ["qwen"]} and fake.models["qwen"] == "stopped"


def test_keys_never_reach_the_audit_table(db: Engine) -> None:
    fake = FakeLlamaSwap(error_text=f"upstream said: bad key {KEY} for Authorization: Bearer {KEY}")
    enqueue(db, "alpha", "unload_all")
    drain_once(db, registry("alpha"), factory({"alpha": fake}))
    (row,) = audit(db)
    assert row["status"] == "failed"
    assert KEY not in str(row) and "[REDACTED]" in row["error"]


def test_waits_for_the_host_lease(db: Engine, db_url: str) -> None:
    fake = FakeLlamaSwap()
    aid = enqueue(db, "alpha", "warm", "qwen")
    stop = threading.Event()
    with lease.hold(db_url, "alpha", lease.SCOPE_HOST, "bench run 7", holder="bench-1"):  # a benchmark holds it
        t = threading.Thread(
            target=drain_provider, args=(db, registry("alpha"), factory({"alpha": fake}), "alpha", stop, 0.1)
        )
        t.start()
        time.sleep(0.5)
        assert audit(db)[0]["status"] == "queued"
    t.join(timeout=10)
    assert not t.is_alive()
    (row,) = audit(db)
    assert row["id"] == aid and row["status"] == "succeeded"
    with db.connect() as c:
        events = c.execute(text("SELECT holder, purpose, event FROM lease_events ORDER BY id")).all()
    assert [(h == "bench-1", p, e) for h, p, e in events] == [
        (True, "bench run 7", "acquired"), (True, "bench run 7", "released"),
        (False, "action queue", "acquired"), (False, "action queue", "released")]
    assert events[2][0].startswith("actions@")


def test_a_broken_lease_stops_the_queue_before_the_next_action(db: Engine, db_url: str) -> None:
    """An operator's `lease break` takes the host away: the executor finishes the action it runs, then claims
    nothing more until it holds the lease again."""
    first = enqueue(db, "alpha", "warm", "qwen")
    second = enqueue(db, "alpha", "unload", "qwen")

    class BrokenDuringWarm(FakeLlamaSwap):
        async def handle(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.startswith("/upstream/"):  # during the first action: the operator breaks it
                with psycopg.connect(psycopg_dsn(db_url), autocommit=True) as raw:
                    broken.append(lease.break_lease(raw, "alpha", lease.SCOPE_HOST, by="operator"))
            return await super().handle(request)

    broken: list[lease.Lease | None] = []
    assert drain_provider(db, registry("alpha"), factory({"alpha": BrokenDuringWarm()}), "alpha") == 1
    statuses = {r["id"]: r["status"] for r in audit(db)}
    assert statuses == {first: "succeeded", second: "queued"}
    # while it ran, the lease said which action held the host
    assert [(b.purpose, b.holder.startswith("actions@")) for b in broken if b] == [(f"action {first}: warm qwen", True)]


def test_orphaned_running_rows_are_marked_interrupted(db: Engine) -> None:
    aid = enqueue(db, "alpha", "warm", "qwen")
    with db.begin() as c:
        c.execute(
            text("UPDATE actions SET status = 'running', started_at = now() WHERE id = :id"), {"id": aid}
        )
    enqueue(db, "alpha", "unload_all")
    drain_once(db, registry("alpha"), factory({"alpha": FakeLlamaSwap()}))
    first, second = audit(db)
    assert first["status"] == "failed" and first["error"].startswith("interrupted")
    assert second["status"] == "succeeded"


def test_fetch_capture_direct_stores_redacted_capture(db: Engine) -> None:
    with db.begin() as c:
        seed.provider(c, "alpha")
        seed.epoch(c, "alpha", "old", T0)
        seed.epoch(c, "alpha", "cur", T0.replace(hour=13))
    fake = FakeLlamaSwap(captures={5: capture_payload(5, "hello fleet")})
    aid, outcome = run_direct(
        db,
        registry("alpha"),
        factory({"alpha": fake}),
        "alpha",
        "fetch_capture",
        "5",
        {"epoch": "cur"},
        requested_by="ui",
    )
    assert outcome.status == "succeeded" and outcome.result and outcome.result["stored"] is True
    stored = read_capture(db, "alpha", "cur", 5)
    assert stored is not None and stored.row.req_headers is not None
    assert stored.row.req_headers["Authorization"] == "[REDACTED]"
    assert reassemble_stream(stored.row.resp_body) == "hellofleet"
    _, stale = run_direct(
        db, registry("alpha"), factory({"alpha": fake}), "alpha", "fetch_capture", "5", {"epoch": "old"}
    )
    assert stale.status == "refused" and "has restarted since" in (stale.error or "")
    _, gone = run_direct(
        db, registry("alpha"), factory({"alpha": fake}), "alpha", "fetch_capture", "6", {"epoch": "cur"}
    )
    assert gone.status == "failed" and "no longer held" in (gone.error or "")
    log = action_log(db, ("alpha",))
    assert log["status"].to_list() == ["failed", "refused", "succeeded"] and log["id"][2] == aid
    with pytest.raises(ValueError, match="enqueue it instead"):
        run_direct(db, registry("alpha"), factory({"alpha": fake}), "alpha", "warm", "qwen")


def test_run_forever_picks_up_new_actions_and_stops(db: Engine) -> None:
    fake = FakeLlamaSwap()
    stop = threading.Event()
    t = threading.Thread(
        target=run_forever, args=(db, registry("alpha"), factory({"alpha": fake}), stop, 0.05)
    )
    t.start()
    try:
        aid = enqueue(db, "alpha", "warm", "llama")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and audit(db)[0]["status"] != "succeeded":
            time.sleep(0.05)
        assert audit(db)[0]["status"] == "succeeded" and audit(db)[0]["id"] == aid
    finally:
        stop.set()
        t.join(timeout=10)
    assert not t.is_alive()
