"""`boocontrol gateway` as processes: two stateless replicas on one Postgres, each request recorded once by the
replica that served it; while Postgres is away they keep serving and the rows arrive once it is back."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.gateway.conftest import wait_rows
from tests.gateway.upstream import UpstreamState, run_upstream

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(env: dict[str, str], port: int, replica: str, log: Path) -> subprocess.Popen[bytes]:
    e = {**env, "BOOCONTROL_GATEWAY_PORT": str(port), "BOOCONTROL_GATEWAY_REPLICA": replica}
    with open(log, "wb") as out:
        p = subprocess.Popen([sys.executable, "-m", "cli.main", "gateway"], cwd=ROOT, env=e, stdout=out,
                             stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return p
        except httpx.HTTPError:
            pass
        assert p.poll() is None, log.read_text()
        time.sleep(0.1)
    raise AssertionError(f"replica {replica} did not come up: {log.read_text()}")


def stop(p: subprocess.Popen[bytes]) -> None:
    p.send_signal(signal.SIGTERM)
    p.wait(30)


def test_two_replicas_on_one_postgres_and_serving_through_an_outage(pg_cluster, gw_db: str, tmp_path: Path) -> None:
    with run_upstream(UpstreamState(models=("m",))) as up:
        fleet = tmp_path / "fleet.yaml"
        fleet.write_text(f"default_provider: inst\nproviders:\n  - id: inst\n    base_url: {up.base_url}\n"
                         "    kind: openai\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOOCONTROL_")}
        env.update({"BOOCONTROL_DATA_DIR": str(tmp_path / "data"), "BOOCONTROL_FLEET_FILE": str(fleet),
                    "BOOCONTROL_DATABASE_URL": gw_db, "BOOCONTROL_GATEWAY_FACTS_REFRESH_SECONDS": "0.5"})
        ports = free_port(), free_port()
        procs = [start(env, ports[0], "r1", tmp_path / "r1.log"), start(env, ports[1], "r2", tmp_path / "r2.log")]
        try:
            body = {"model": "inst/m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
            for i in range(8):  # alternate, as a load balancer would
                r = httpx.post(f"http://127.0.0.1:{ports[i % 2]}/v1/chat/completions", json=body,
                               headers={"X-Boo-Source": "lb-test"})
                assert r.status_code == 200 and r.headers["X-Boo-Target"] == "inst/m"
            assert len(wait_rows(gw_db, 8)) == 8
            pg_cluster.stop("fast")
            try:
                for i in range(4):  # Postgres is away: still served (bare id through the default provider)
                    r = httpx.post(f"http://127.0.0.1:{ports[i % 2]}/v1/chat/completions", json={**body, "model": "m"},
                                   headers={"X-Boo-Source": "during-outage"})
                    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == " tok tok"
                time.sleep(1.0)  # let each replica try to write, fail and spool
            finally:
                pg_cluster.start()
            got = wait_rows(gw_db, 12, timeout=60)
        finally:
            for p in procs:
                stop(p)
    assert Counter((r["replica"], r["consumer"]) for r in got) == {
        ("r1", "lb-test"): 4, ("r2", "lb-test"): 4, ("r1", "during-outage"): 2, ("r2", "during-outage"): 2}
    assert len({r["request_id"] for r in got}) == 12
    assert up.state.asked == ["m"] * 12
    logs = (tmp_path / "r1.log").read_text()
    assert "gateway: http://127.0.0.1:" in logs and "Traceback" not in logs


def test_expected_start_failures_are_one_line_errors(tmp_path: Path, gw_db: str) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("providers:\n  - id: p\n    base_url: http://127.0.0.1:9\n    kind: openai\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOCONTROL_")}
    env.update({"BOOCONTROL_DATA_DIR": str(tmp_path / "data"), "BOOCONTROL_FLEET_FILE": str(fleet),
                "BOOCONTROL_DATABASE_URL": gw_db, "BOOCONTROL_GATEWAY_PORT": str(free_port())})
    cases = [
        ({"BOOCONTROL_GATEWAY_KEYS": "alice=sk-very-secret,sk-orphan"},
         "Error: BOOCONTROL_GATEWAY_KEYS: pair 2: expected owner=key"),
        ({"BOOCONTROL_GATEWAY_REQUIRE_KEY": "true"},
         "Error: BOOCONTROL_GATEWAY_REQUIRE_KEY is set but no key is configured"),
        ({"BOOCONTROL_GATEWAY_POLICIES_FILE": str(tmp_path / "bad.yaml")}, f"Error: {tmp_path / 'bad.yaml'}:2:"),
    ]
    (tmp_path / "bad.yaml").write_text("policies:\n  fast: {}\n")
    for extra, start in cases:
        r = subprocess.run([sys.executable, "-m", "cli.main", "gateway"], cwd=ROOT, env={**env, **extra},
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and r.stderr.startswith(start) and len(r.stderr.splitlines()) == 1, r.stderr
        assert "sk-very-secret" not in r.stderr and "Traceback" not in r.stderr


def test_a_gateway_started_while_postgres_is_down_serves_and_says_so_in_one_line(tmp_path: Path) -> None:
    # unlike `connect`, the gateway starts without Postgres (rows are spooled until it is back): a restart during
    # an outage must not take the fleet's one endpoint down with it
    with run_upstream(UpstreamState(models=("m",))) as up:
        fleet = tmp_path / "fleet.yaml"
        fleet.write_text(f"default_provider: inst\nproviders:\n  - id: inst\n    base_url: {up.base_url}\n"
                         "    kind: openai\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOOCONTROL_")}
        env.update({"BOOCONTROL_DATA_DIR": str(tmp_path / "data"), "BOOCONTROL_FLEET_FILE": str(fleet),
                    "BOOCONTROL_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:9/x"})
        port = free_port()
        p = start(env, port, "r-down", tmp_path / "down.log")
        try:
            body = {"model": "inst/m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
            r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body)
            assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == " tok tok"
        finally:
            stop(p)
    log = (tmp_path / "down.log").read_text()
    assert "Traceback" not in log
    assert [line for line in log.splitlines() if "Postgres cannot be reached" in line] == [
        next(line for line in log.splitlines() if "Postgres cannot be reached" in line)]
    assert list((tmp_path / "data" / "spool").glob("gateway-*/*"))  # the request's row waits on disk
