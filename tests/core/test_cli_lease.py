"""`boocontrol lease list` / `lease break` against the suite's Postgres, as a user runs them (a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

from warehouse import lease as L
from warehouse.db import psycopg_dsn

ROOT = Path(__file__).parents[2]


def run_cli(db_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BOOCONTROL_DATABASE_URL": db_url}
    return subprocess.run([sys.executable, "-m", "cli.main", "--data-dir", str(tmp_path), "lease", *args],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=60)


def test_list_and_break(db: object, db_url: str, tmp_path: Path) -> None:
    r = run_cli(db_url, tmp_path, "list")
    assert (r.returncode, r.stdout, r.stderr) == (0, "no leases held\n", "")
    with psycopg.connect(psycopg_dsn(db_url), autocommit=True) as conn:
        assert L.try_acquire(conn, "gpu1", L.SCOPE_HOST, "bench@box:7:abc", "bench run 1f2e (qwen)", 300) is not None
        assert L.try_acquire(conn, "gpu1", L.SCOPE_FOLLOW, "connector@box:9:def", "follow", 300) is not None
    r = run_cli(db_url, tmp_path, "list")
    assert r.returncode == 0 and r.stderr == ""
    lines = [ln.split("\t") for ln in r.stdout.splitlines()]
    assert [ln[:4] for ln in lines] == [["gpu1", "follow", "connector@box:9:def", "follow"],
                                       ["gpu1", "host", "bench@box:7:abc", "bench run 1f2e (qwen)"]]
    assert lines[1][4].startswith("since ") and ", until " in lines[1][4]
    r = run_cli(db_url, tmp_path, "list", "--scope", "host")
    assert [ln.split("\t")[1] for ln in r.stdout.splitlines()] == ["host"]

    r = run_cli(db_url, tmp_path, "break", "gpu1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("broke gpu1 (host): it was held by bench@box:7:abc for bench run 1f2e (qwen), since ")
    r = run_cli(db_url, tmp_path, "break", "gpu1")
    assert (r.returncode, r.stderr) == (2, "Error: gpu1 has no host lease (see `boocontrol lease list`)\n")
    r = run_cli(db_url, tmp_path, "break", "gpu1", "--scope", "hots")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    with psycopg.connect(psycopg_dsn(db_url), autocommit=True) as conn:
        assert [x.scope for x in L.list_leases(conn)] == ["follow"]
        (detail,) = conn.execute("SELECT detail FROM lease_events WHERE event = 'broken'").fetchone() or ("",)
    assert str(detail).startswith("by ") and str(detail).endswith("(boocontrol lease break)")
