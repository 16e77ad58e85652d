"""Expected failures give clear messages, not stack traces, and start nothing."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=60)


def test_bad_registry_refuses_to_start_connector(tmp_path):
    reg = tmp_path / "fleet.yaml"
    reg.write_text("providers:\n  - id: a\n    base_url: nope\n")
    r = run_cli("--data-dir", str(tmp_path), "connect", "--registry", str(reg))
    assert r.returncode == 2
    assert r.stderr == f"Error: {reg}:3: providers[0].base_url: 'nope' is not an http(s) URL; nothing was started\n"


def test_old_schema_refuses_with_the_command_to_run(pg_cluster, tmp_path):
    from warehouse.migrate import upgrade

    pg_cluster.ensure_database("old_schema")
    url = pg_cluster.url("old_schema")
    upgrade(url, "0001")
    reg = tmp_path / "fleet.yaml"
    reg.write_text("providers:\n  - id: a\n    base_url: http://127.0.0.1:9\n")
    r = run_cli("--data-dir", str(tmp_path), "connect", "--registry", str(reg), env={"BOOCONTROL_DATABASE_URL": url})
    assert r.returncode == 2
    assert "the database schema is at 0001 but this version of BooControl needs" in r.stderr
    assert "run `boocontrol db upgrade` first" in r.stderr and "Traceback" not in r.stderr


def test_unreachable_database_is_a_clear_error(tmp_path):
    reg = tmp_path / "fleet.yaml"
    reg.write_text("providers:\n  - id: a\n    base_url: http://127.0.0.1:9\n")
    r = run_cli("--data-dir", str(tmp_path), "connect", "--registry", str(reg),
                env={"BOOCONTROL_DATABASE_URL": "postgresql://postgres@127.0.0.1:9/x"})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr == (
        'Error: cannot reach Postgres at postgresql+psycopg://postgres@127.0.0.1:9/x: connection failed: connection '
        'to server at "127.0.0.1", port 9 failed: Connection refused (start it: `boocontrol up` runs the embedded '
        "one; or point BOOCONTROL_DATABASE_URL at yours)\n")
