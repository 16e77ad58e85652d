"""The README's "Using it" commands, run exactly as written, from a fresh shell, against a running cockpit.

The running cockpit is what `up` leaves for other shells: its state file in a data directory that is not
the default one (with the registry it really uses, `demo-fleet.yaml`) and the per-user pointer, both under
a temporary HOME, a live service, the suite's real Postgres and a real Prefect server (the session's test
harness) holding the deployments. The shell has no BOOCONTROL_* or PREFECT_* variable.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import psycopg

from cli.instance import state_fields, state_path, write_pointer
from cli.services import Service, wait_http, write_state
from tests.conftest import free_port
from warehouse import lease as L
from warehouse.db import psycopg_dsn

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = ("providers:\n  - id: demo-1\n    base_url: http://127.0.0.1:19400\n"
            "  - id: demo-2\n    base_url: http://127.0.0.1:19401\n")


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Using it\n"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None
    return [line for line in block.group(1).splitlines() if line.strip()]


def fresh_shell(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOOCONTROL_", "PREFECT_", "XDG_"))}
    return {**env, "HOME": str(home)}


def test_readme_lists_the_commands_it_promises():
    assert [shlex.split(c)[1:3] for c in readme_commands()] == [
        ["status"], ["providers", "list"], ["lease", "list"], ["bench", "list"], ["prefect", "deployment"]]


def test_readme_commands_work_from_a_fresh_shell_after_up(tmp_path, db, db_url, prefect_harness):
    from prefect.settings import PREFECT_API_URL

    from flows.deploy import deploy_all

    home, data = tmp_path / "home", tmp_path / "elsewhere"
    (data / "run").mkdir(parents=True)
    fleet = data / "demo-fleet.yaml"
    fleet.write_text(REGISTRY)
    api = str(PREFECT_API_URL.value())
    assert "fleet-digest/daily" in deploy_all(ROOT / "prefect.yaml", pool="boocontrol-test")
    with psycopg.connect(psycopg_dsn(db_url), autocommit=True) as conn:
        assert L.try_acquire(conn, "demo-1", L.SCOPE_HOST, "bench@box:7:abc", "bench run 1f2e (qwen)", 300)
    port = free_port()
    svc = Service("cockpit", [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                  url=f"http://127.0.0.1:{port}", health_url=f"http://127.0.0.1:{port}/")
    svc.start(tmp_path)
    try:
        assert wait_http(f"http://127.0.0.1:{port}/", 30, svc.alive)
        write_state(state_path(data), [svc], state_fields(data, db_url, fleet, api, f"http://127.0.0.1:{port}"))
        write_pointer(data, os.getpid(), {"XDG_STATE_HOME": str(home / ".local" / "state")})

        out = {}
        for command in readme_commands():
            r = subprocess.run(shlex.split(command), cwd=ROOT, env=fresh_shell(home), capture_output=True, text=True,
                               timeout=120)
            assert r.returncode == 0 and "Traceback" not in r.stderr, (command, r.stdout, r.stderr)
            out[" ".join(shlex.split(command)[1:3])] = r.stdout
    finally:
        svc.stop()
    assert out["status"] == f"cockpit         running                   pid {svc.proc.pid} http://127.0.0.1:{port}\n"
    assert out["providers list"] == ("demo-1 (default)\tllama-swap\thttp://127.0.0.1:19400\tdemo-1\n"
                                     "demo-2\tllama-swap\thttp://127.0.0.1:19401\tdemo-2\n")
    assert out["lease list"].startswith("demo-1\thost\tbench@box:7:abc\tbench run 1f2e (qwen)\tsince ")
    header, rule, *runs = out["bench list"].splitlines()  # the warehouse has no run: the table's head only
    assert header.split()[:4] == ["id", "started", "(UTC)", "model"] and set(rule) == {"-", " "} and runs == []
    assert "Created flow run" in out["prefect deployment"] and "fleet-digest/daily" in out["prefect deployment"]


def test_without_a_running_up_the_same_commands_say_so_in_one_line(tmp_path):
    home = tmp_path / "home"
    for command in readme_commands():
        r = subprocess.run(shlex.split(command), cwd=ROOT, env=fresh_shell(home), capture_output=True, text=True,
                           timeout=120)
        words = shlex.split(command)[1:3]
        assert "Traceback" not in r.stderr, (command, r.stderr)
        if words == ["status"]:
            assert (r.returncode, r.stdout) == (
                0, f"nothing is running (no `boocontrol up` state in {home / '.local/share/boocontrol'})\n")
        else:
            assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and r.stderr.startswith("Error: "), (
                command, r.stderr)
