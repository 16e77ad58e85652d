"""Connector scenarios against llama-swap. Each ends with: Postgres activity == llama-swap's activity,
0 lost and 0 duplicated wherever llama-swap still held the rows, and a gap record exactly where not.

The resilience scenarios (``resilience``: ring overflow, restarts with and without ``store.path``, config
reload, ``kill -9`` of the connector mid-batch, Postgres restart with spool replay) run twice through the
``target_kind`` fixture: ``sim`` against the simulator process (``demo.single``, on every machine) and ``real``
against a real llama-swap binary where one is found. The unload/TTL/cancel/crash, API-key and
unreachable-provider tests run on both too (an upstream crash is provoked per kind: SIGKILL of the real
simple-responder, the demo fault on the simulator); only the older-release test needs a real v250 binary."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from core.providers import Provider
from tests.support.connector import ConnectorThread, chat, query, registry_for, upstream_activity, wait_until
from tests.support.llamaswap import (
    LlamaSwapProcess,
    find_llama_swap,
    free_port,
    free_port_block,
    responder_config,
)
from tests.support.targets import run_target

resilience = pytest.mark.resilience
real_only = pytest.mark.real_llamaswap


def acts(db_url, pid="ls"):
    return query(db_url, "SELECT epoch, upstream_id, model_id, status_code FROM activity WHERE provider_id=%s "
                         "ORDER BY epoch, upstream_id", (pid,))


def connected(db_url, pid="ls"):
    return wait_until(lambda: query(db_url, "SELECT status FROM connector_health WHERE provider_id=%s", (pid,))
                      == [("connected",)], what=f"{pid} connected")


def gaps(db_url):
    return query(db_url, "SELECT epoch, from_id, to_id FROM gaps ORDER BY id")


@resilience
def test_ring_overflow_while_away_writes_exact_gap(db, db_url, target_kind, tmp_path):
    with run_target(target_kind, extra="metricsMaxInMemory: 3") as ls:
        p = Provider(id="ls", label="ls", base_url=ls.base_url)
        with ConnectorThread(registry_for(p), db_url, tmp_path / "sp"):
            connected(db_url)
            chat(ls.base_url, "responder-a")
            chat(ls.base_url, "responder-a")
            wait_until(lambda: len(acts(db_url)) == 2, what="2 rows")
        for _ in range(6):  # ids 3..8; the ring keeps 6..8
            chat(ls.base_url, "responder-a")
        with ConnectorThread(registry_for(p), db_url, tmp_path / "sp"):
            wait_until(lambda: len(acts(db_url)) == 5, what="5 rows")
        ids = [r[1] for r in acts(db_url)]
        assert ids == [1, 2, 6, 7, 8]
        epoch = acts(db_url)[0][0]
        assert gaps(db_url) == [(epoch, 3, 5)]


@resilience
def test_restart_without_store_path_while_followed_starts_new_epoch_without_gap(db, db_url, target_kind, tmp_path):
    with run_target(target_kind) as ls:
        p = Provider(id="ls", label="ls", base_url=ls.base_url)
        with ConnectorThread(registry_for(p), db_url, tmp_path / "sp"):
            connected(db_url)
            chat(ls.base_url, "responder-a")
            chat(ls.base_url, "responder-b")
            wait_until(lambda: len(acts(db_url)) == 2, what="2 rows")
            before = upstream_activity(ls.base_url)
            time.sleep(0.3)
            ls.restart()
            chat(ls.base_url, "responder-a")
            wait_until(lambda: len(acts(db_url)) == 3, what="3 rows")
            after = upstream_activity(ls.base_url)
            wait_until(lambda: query(db_url, "SELECT count(*) FROM instance_boots") == [(2,)], what="2 boots")
        rows = acts(db_url)
        epochs = sorted({r[0] for r in rows})
        assert len(epochs) == 2
        assert [(r[1], r[2]) for r in rows if r[0] == rows[0][0]] == [(b["id"], b["model"]) for b in before]
        assert [(a["id"], a["model"]) for a in after] == [(1, "responder-a")]
        assert gaps(db_url) == []


@resilience
def test_restart_without_store_path_while_away_records_gap(db, db_url, target_kind, tmp_path):
    with run_target(target_kind) as ls:
        p = Provider(id="ls", label="ls", base_url=ls.base_url)
        with ConnectorThread(registry_for(p), db_url, tmp_path / "sp"):
            connected(db_url)
            chat(ls.base_url, "responder-a")
            wait_until(lambda: len(acts(db_url)) == 1, what="1 row")
        chat(ls.base_url, "responder-a")  # id 2: never seen by the connector, lost with the restart
        # Leave the old row 1's second before restarting: a responder row carries nothing but its
        # whole-second timestamp to tell it from the new boot's row 1 (same model, 0 ms, same tokens).
        time.sleep(1.1)
        ls.restart()
        chat(ls.base_url, "responder-a")
        with ConnectorThread(registry_for(p), db_url, tmp_path / "sp"):
            wait_until(lambda: len(acts(db_url)) == 2, what="2 rows")
        rows = acts(db_url)
        assert [(r[1]) for r in rows] == [1, 1] and rows[0][0] != rows[1][0]
        g = gaps(db_url)
        assert len(g) == 1 and g[0][1] == 2 and g[0][2] is None  # from id 2, count unknown
        assert g[0][0] in {rows[0][0], rows[1][0]}


@resilience
def test_restart_with_store_path_continues_epoch_without_duplicates(db, db_url, target_kind, tmp_path):
    store = tmp_path / "activity.sqlite"
    with run_target(target_kind, extra=f"store:\n  path: {store}") as ls:
        p = Provider(id="ls", label="ls", base_url=ls.base_url)
        with ConnectorThread(registry_for(p), db_url, tmp_path / "sp"):
            connected(db_url)
            chat(ls.base_url, "responder-a")
            chat(ls.base_url, "responder-a")
            wait_until(lambda: len(acts(db_url)) == 2, what="2 rows")
        ls.restart()
        chat(ls.base_url, "responder-b")
        with ConnectorThread(registry_for(p), db_url, tmp_path / "sp"):
            wait_until(lambda: len(acts(db_url)) == 3, what="3 rows")
            up = upstream_activity(ls.base_url)
        rows = acts(db_url)
        assert [(r[1], r[2]) for r in rows] == [(u["id"], u["model"]) for u in up] == [
            (1, "responder-a"), (2, "responder-a"), (3, "responder-b")]
        assert len({r[0] for r in rows}) == 1
        assert gaps(db_url) == []
        assert query(db_url, "SELECT count(*) FROM instance_boots") == [(2,)]


@resilience
def test_config_reload_is_recorded_and_nothing_is_lost(db, db_url, target_kind, tmp_path):
    with run_target(target_kind) as ls:
        p = Provider(id="ls", label="ls", base_url=ls.base_url)
        with ConnectorThread(registry_for(p), db_url, tmp_path / "sp"):
            connected(db_url)
            chat(ls.base_url, "responder-a")
            wait_until(lambda: query(db_url, "SELECT state FROM models WHERE model_id='responder-a'") == [("ready",)],
                       what="a ready")
            ls.reload()
            wait_until(lambda: query(db_url, "SELECT count(*) FROM config_reloads") == [(1,)], what="reload row")
            wait_until(lambda: query(db_url, "SELECT state FROM models WHERE model_id='responder-a'") == [("stopped",)],
                       what="a stopped after reload")
            chat(ls.base_url, "responder-a")
            wait_until(lambda: len(acts(db_url)) == 2, what="2 rows")
            up = upstream_activity(ls.base_url)
        assert [(r[1], r[2]) for r in acts(db_url)] == [(u["id"], u["model"]) for u in up]
        assert len({r[0] for r in acts(db_url)}) == 1
        assert query(db_url, "SELECT count(*) FROM instance_boots") == [(1,)]
        assert gaps(db_url) == []


def crash_upstream(ls, model):
    """Make ``model``'s upstream process die: on the real binary SIGKILL its simple-responder (only the children
    of this llama-swap, never another test's); on the simulator the demo fault ``crash``."""
    if ls.kind == "sim":
        chat(ls.base_url, model, headers={"X-Demo-Fault": "crash"})
        return
    import psutil

    for child in psutil.Process(ls.proc.pid).children(recursive=True):
        if f"from-{model}" in child.cmdline():
            child.kill()


def test_unload_ttl_inflight_cancel_and_crash(db, db_url, target_kind, tmp_path):
    with run_target(target_kind, ttl=2, models=("responder-a", "responder-b", "ttl-model"),
                    ttl_models=("ttl-model",)) as ls:
        p = Provider(id="ls", label="ls", base_url=ls.base_url)
        with ConnectorThread(registry_for(p), db_url, tmp_path / "sp"):
            connected(db_url)
            state = lambda m: query(db_url, "SELECT state FROM models WHERE model_id=%s", (m,))  # noqa: E731
            chat(ls.base_url, "responder-a")
            wait_until(lambda: state("responder-a") == [("ready",)], what="a ready")
            assert httpx.post(ls.base_url + "/api/models/unload/responder-a").text == "OK"
            wait_until(lambda: state("responder-a") == [("stopped",)], what="a stopped by unload")
            chat(ls.base_url, "ttl-model")
            wait_until(lambda: state("ttl-model") == [("ready",)], what="ttl-model ready")
            wait_until(lambda: state("ttl-model") == [("stopped",)], timeout=15, what="ttl unload")
            # in flight, then cancelled
            t = threading.Thread(target=lambda: chat(ls.base_url, "responder-b", query_str="?wait=20s"))
            t.start()
            snap = wait_until(lambda: query(db_url, "SELECT requests FROM inflight_snapshots WHERE count=1 AND "
                                                    "requests @> '[{\"model\": \"responder-b\"}]' "
                                                    "ORDER BY observed_at DESC LIMIT 1"), what="1 in flight")
            rid = snap[0][0][0]["id"]
            assert httpx.post(f"{ls.base_url}/api/inflight/{rid}/cancel").json() == {"msg": "ok"}
            t.join(timeout=10)
            wait_until(lambda: query(db_url, "SELECT count FROM inflight_snapshots ORDER BY observed_at DESC "
                                             "LIMIT 1") == [(0,)], what="0 in flight")
            # crash: the upstream process behind responder-b dies
            chat(ls.base_url, "responder-b")
            wait_until(lambda: state("responder-b") == [("ready",)], what="b ready")
            crash_upstream(ls, "responder-b")
            wait_until(lambda: state("responder-b") == [("stopped",)], what="b stopped after crash")
            wait_until(lambda: query(db_url, "SELECT count(*) > 0 FROM logs WHERE strpos(text, "
                                             "'upstream process exited unexpectedly') > 0") == [(True,)],
                       what="crash log line")
            up = upstream_activity(ls.base_url)
            wait_until(lambda: len(acts(db_url)) == len(up), what="all rows")
        assert [(r[1], r[2], r[3]) for r in acts(db_url)] == [(u["id"], u["model"], u["resp_status_code"]) for u in up]


def test_api_key_auth_and_secrets_never_stored(db, db_url, target_kind, tmp_path, monkeypatch, caplog):
    secret = "sk-test-SECRET-1234567890"
    monkeypatch.setenv("LS_TEST_KEY", secret)
    monkeypatch.setenv("LS_WRONG_KEY", "sk-wrong-key-0000000000")
    with run_target(target_kind, extra=f'apiKeys: ["{secret}"]') as ls:
        good = Provider(id="ls", label="ls", base_url=ls.base_url, api_key_env="LS_TEST_KEY")
        bad = Provider(id="bad", label="bad", base_url=ls.base_url, api_key_env="LS_WRONG_KEY")
        with ConnectorThread(registry_for(good, bad), db_url, tmp_path / "sp"):
            connected(db_url)
            assert chat(ls.base_url, "responder-a", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
            wait_until(lambda: len(acts(db_url)) == 1, what="1 row")
            wait_until(lambda: query(db_url, "SELECT status FROM connector_health WHERE provider_id='bad'")
                       == [("auth_failed",)], what="auth_failed")
        err = query(db_url, "SELECT last_error FROM connector_health WHERE provider_id='bad'")[0][0]
        assert "401" in err
        dump = "\n".join(str(r) for t in ("raw_events", "connector_health", "logs", "captures", "models")
                         for r in query(db_url, f"SELECT * FROM {t}"))  # noqa: S608 - fixed names
        assert secret not in dump and "sk-wrong-key" not in dump
        assert secret not in caplog.text


def test_unreachable_provider_does_not_delay_the_others(db, db_url, target_kind, tmp_path):
    with run_target(target_kind) as ls:
        dead = Provider(id="dead", label="dead", base_url=f"http://127.0.0.1:{free_port()}")
        good = Provider(id="ls", label="ls", base_url=ls.base_url)
        with ConnectorThread(registry_for(dead, good), db_url, tmp_path / "sp"):
            connected(db_url)
            chat(ls.base_url, "responder-a")
            wait_until(lambda: len(acts(db_url)) == 1, what="row from the live provider")
            wait_until(lambda: query(db_url, "SELECT status FROM connector_health WHERE provider_id='dead'")
                       == [("unreachable",)], what="dead unreachable")
        assert "cannot connect" in query(db_url, "SELECT last_error FROM connector_health WHERE provider_id='dead'")[0][0]


def _traffic(base_url, stop, counter):
    models = ["responder-a", "responder-b"]
    i = 0
    while not stop.is_set():
        try:
            chat(base_url, models[(i // 5) % 2], timeout=10)
            counter.append(1)
        except httpx.HTTPError:
            pass
        i += 1


def _connector_proc(db_url, registry_file, data_dir):
    env = {**os.environ, "BOOCONTROL_DATABASE_URL": db_url, "BOOCONTROL_CONNECTOR_FLUSH_SECONDS": "0.05",
           "BOOCONTROL_CONNECTOR_PERF_POLL_SECONDS": "1"}
    return subprocess.Popen([sys.executable, "-m", "cli.main", "--data-dir", str(data_dir), "connect",
                             "--registry", str(registry_file)], env=env, cwd=Path(__file__).parents[2],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@resilience
def test_connector_kill_9_mid_batch_loses_and_duplicates_nothing(db, db_url, target_kind, tmp_path):
    with run_target(target_kind) as ls:
        reg = tmp_path / "fleet.yaml"
        reg.write_text(f"providers:\n  - id: ls\n    label: ls\n    base_url: {ls.base_url}\n")
        stop, counter = threading.Event(), []
        t = threading.Thread(target=_traffic, args=(ls.base_url, stop, counter))
        t.start()
        try:
            for _ in range(3):
                proc = _connector_proc(db_url, reg, tmp_path / "data")
                wait_until(lambda: len(acts(db_url)) > len(counter) // 2 > 0, timeout=30, what="ingesting")
                time.sleep(0.4)
                proc.send_signal(signal.SIGKILL)
                proc.wait()
        finally:
            stop.set()
            t.join()
        up = upstream_activity(ls.base_url)
        proc = _connector_proc(db_url, reg, tmp_path / "data")
        try:
            wait_until(lambda: len(acts(db_url)) == len(up), timeout=30, what="catch up")
        finally:
            proc.terminate()
            proc.wait(timeout=20)
        assert len(up) >= 10
        assert [(r[1], r[2]) for r in acts(db_url)] == [(u["id"], u["model"]) for u in up]


@resilience
def test_postgres_restart_mid_stream_replays_spool_without_duplicates(pg_cluster, target_kind, tmp_path):
    from warehouse.migrate import upgrade

    pg_cluster.ensure_database(f"pg_restart_{target_kind}")  # one database per kind: rows must start from none
    url = pg_cluster.url(f"pg_restart_{target_kind}")
    upgrade(url)
    with run_target(target_kind) as ls:
        p = Provider(id="ls", label="ls", base_url=ls.base_url)
        with ConnectorThread(registry_for(p), url, tmp_path / "sp") as ct:
            connected(url)
            for _ in range(3):
                chat(ls.base_url, "responder-a")
            wait_until(lambda: len(acts(url)) == 3, what="3 rows")
            pg_cluster.stop("fast")  # the test cluster runs with fsync off: an immediate stop would lose commits
            try:
                for _ in range(5):
                    chat(ls.base_url, "responder-b")
                wait_until(lambda: len(ct.connector.spool) > 0, what="spooled batches")
            finally:
                pg_cluster.start()
            for _ in range(2):
                chat(ls.base_url, "responder-a")
            up = upstream_activity(ls.base_url)
            wait_until(lambda: len(acts(url)) == 10, timeout=30, what=f"10 rows after replay (up={len(up)}) {acts(url)}")
            wait_until(lambda: len(ct.connector.spool) == 0, what="spool drained")
        assert [(r[1], r[2]) for r in acts(url)] == [(u["id"], u["model"]) for u in up]


@real_only
@pytest.mark.parametrize("which", ["v250"])
def test_older_release_without_id_filters(which, db, db_url, tmp_path):
    from tests.support.llamaswap import simple_responder_path

    if find_llama_swap(which) is None:
        pytest.skip(f"REAL LLAMA-SWAP {which} NOT FOUND: place its binaries in ~/.cache/boocontrol/llama-swap/{which}/")
    cfg = responder_config(simple_responder_path(which), start_port=free_port_block(),
                           extra="metricsMaxInMemory: 4")
    binary = find_llama_swap(which)
    cfgp = tmp_path / "cfg.yaml"
    cfgp.write_text(cfg)
    ls = LlamaSwapProcess(binary, cfgp, free_port(), tmp_path / "ls.log")
    ls.start()
    try:
        p = Provider(id="ls", label="ls", base_url=ls.base_url)
        with ConnectorThread(registry_for(p), db_url, tmp_path / "sp"):
            connected(db_url)
            chat(ls.base_url, "responder-a")
            wait_until(lambda: len(acts(db_url)) == 1, what="1 row")
        for _ in range(6):  # ids 2..7, ring keeps 4..7
            chat(ls.base_url, "responder-a")
        with ConnectorThread(registry_for(p), db_url, tmp_path / "sp") as ct:
            wait_until(lambda: len(acts(db_url)) == 5, what="5 rows")
            chat(ls.base_url, "responder-a")  # id 8: v250 ignores min_id and answers 5..8 -> paging fallback
            wait_until(lambda: len(acts(db_url)) == 6, what="6 rows")
            assert ct.connector.followers["ls"].state.id_filter is False
        assert [r[1] for r in acts(db_url)] == [1, 4, 5, 6, 7, 8]
        assert [g[1:] for g in gaps(db_url)] == [(2, 3)]
    finally:
        ls.stop()
