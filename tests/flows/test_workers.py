"""Deployments run through the work pool: a real Prefect server, two process workers, several runs.

This is the multi-machine setup of docs/scaling.md on one machine: the server and the workers are
separate processes that share only the Prefect API and the Postgres database.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from tests.conftest import free_port
from tests.flows.synthetic import at, load_activity_scenario

ROOT = Path(__file__).resolve().parents[2]
RUNS = 4


def _wait(predicate, timeout_s: float, what: str, procs=()):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"{what}: process {p.args[:4]} exited with {p.returncode}")
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _stop(proc: subprocess.Popen, timeout_s: float = 20) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@pytest.fixture()
def prefect_server(tmp_path, pg_cluster):
    # Prefect's own database in the suite's Postgres, as `boocontrol up` runs it. With its default SQLite,
    # two workers polling every second and the test's writes contend, and the server answers 503 to a
    # SQLITE_BUSY/locked error (its `is_client_retryable_exception`) — seen once in CI on create_flow_run.
    prefect_db = f"prefect_{uuid.uuid4().hex[:12]}"
    pg_cluster.ensure_database(prefect_db)
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_API_DATABASE_CONNECTION_URL": (
            f"postgresql+asyncpg://postgres@127.0.0.1:{pg_cluster.port}/{prefect_db}"
        ),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_LOGGING_LEVEL": "INFO",
    }
    for k in [k for k in env if k.startswith("PREFECT_") and k.endswith("_PROFILE")]:
        env.pop(k)
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api = f"http://127.0.0.1:{port}/api"

    def healthy():
        try:
            return httpx.get(f"{api}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    workers: list[subprocess.Popen] = []
    try:
        _wait(healthy, 120, "prefect server health", [server])
        yield api, env, workers
    finally:
        for w in workers:  # workers first, or the server shutdown hangs on them
            _stop(w)
        _stop(server, 30)
        log.close()


def test_flows_run_through_the_pool_on_two_workers(prefect_server, db, db_url, tmp_path):
    api, env, workers = prefect_server
    load_activity_scenario(db)
    deployed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from pathlib import Path; from flows.deploy import deploy_all; "
            f"print('\\n'.join(deploy_all(Path({str(ROOT / 'prefect.yaml')!r}))))",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert deployed.returncode == 0, deployed.stderr[-2000:]
    assert "rollup/every-10m" in deployed.stdout.split()

    wenv = {
        **env,
        "BOOCONTROL_DATABASE_URL": db_url,
        "BOOCONTROL_DATA_DIR": str(tmp_path / "data"),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "1",
    }
    logs = {}
    for name in ("worker-a", "worker-b"):
        logs[name] = tmp_path / f"{name}.log"
        workers.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "prefect",
                    "worker",
                    "start",
                    "--pool",
                    "boocontrol",
                    "--name",
                    name,
                    "--limit",
                    "1",
                    "--type",
                    "process",
                ],
                env=wenv,
                stdout=open(logs[name], "w"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=tmp_path,
            )
        )

    with httpx.Client(base_url=api, timeout=30) as client:
        dep = client.get("/deployments/name/rollup/every-10m").json()
        run_ids = []
        for i in range(RUNS):
            body = {
                "parameters": {"start": at(12, 0).isoformat(), "end": at(13, 0).isoformat(), "hours": 1},
                "name": f"pool-test-{i}",
            }
            r = client.post(f"/deployments/{dep['id']}/create_flow_run", json=body)
            assert r.status_code in (200, 201), r.text
            run_ids.append(r.json()["id"])

        def states():
            return {rid: client.get(f"/flow_runs/{rid}").json()["state"]["type"] for rid in run_ids}

        def all_final():
            s = states()
            return (
                s if all(v in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"} for v in s.values()) else None
            )

        final = _wait(all_final, 400, "flow runs to finish", workers)
    assert set(final.values()) == {"COMPLETED"}, (final, {n: p.read_text()[-3000:] for n, p in logs.items()})

    submitted = re.compile(r"Worker '(worker-[ab])' submitting flow run '([0-9a-f-]+)'")
    ran: dict[str, set[str]] = {"worker-a": set(), "worker-b": set()}
    for path in logs.values():
        for name, rid in submitted.findall(path.read_text()):
            ran[name].add(rid)
    assert ran["worker-a"] | ran["worker-b"] == set(run_ids)
    # each worker takes one run at a time (--limit 1) and four were queued together, so both got work
    assert ran["worker-a"] and ran["worker-b"], ran

    with db.connect() as conn:
        n = conn.execute(text("SELECT sum(requests) FROM rollup_activity_1h WHERE model_id = 'm1'")).scalar()
    assert n == 5
