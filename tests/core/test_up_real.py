"""One real `boocontrol up` (embedded Postgres, migrations, demo fleet, connector, action executor, Streamlit;
no Prefect, to stay near a minute): the README's commands find it from a fresh shell, a second `up` on the
same ports starts nothing and names the first one's processes, Ctrl-C stops everything and removes the state.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import free_port
from tests.core.test_readme_commands import readme_commands

ROOT = Path(__file__).resolve().parents[2]
BIN = str(ROOT / ".venv" / "bin" / "boocontrol")


def shell(home: Path, pg_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOOCONTROL_", "PREFECT_", "XDG_"))}
    return {**env, "HOME": str(home), "BOOCONTROL_EMBEDDED_PG_PORT": str(pg_port)}


def test_up_then_commands_from_another_shell_then_a_second_up_then_ctrl_c(tmp_path):
    home, data = tmp_path / "home", tmp_path / "data"
    ui, demo, pg, gw = free_port(), free_port(), free_port(), free_port()
    out = (tmp_path / "up.out").open("w")
    up = subprocess.Popen([BIN, "--data-dir", str(data), "up", "--no-prefect", "--demo-count", "1", "--ui-port",
                           str(ui), "--demo-base-port", str(demo)], cwd=ROOT,
                          env={**shell(home, pg), "BOOCONTROL_GATEWAY_PORT": str(gw)}, stdout=out,
                          stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while "Ctrl-C stops everything." not in (tmp_path / "up.out").read_text():
            assert up.poll() is None and time.monotonic() < deadline, (tmp_path / "up.out").read_text()
            time.sleep(1)
        for command in readme_commands()[:4]:  # status, providers list, lease list, bench list (no Prefect here)
            r = subprocess.run(shlex.split(command), cwd=ROOT, env=shell(home, 1), capture_output=True, text=True,
                               timeout=120)  # a wrong embedded port in this shell: the state's URL is used
            assert r.returncode == 0 and r.stderr == "", (command, r.stdout, r.stderr)
            if "status" in command:
                assert [line.split()[:2] for line in r.stdout.splitlines()] == [
                    ["demo-fleet", "running"], ["connector", "running"], ["actions", "running"],
                    ["gateway", "running"], ["cockpit", "running"]]
            if "providers" in command:
                assert r.stdout == f"demo-01 (default)\tllama-swap\thttp://127.0.0.1:{demo}\tDemo host 01\n"

        second = subprocess.run([BIN, "--data-dir", str(tmp_path / "other"), "up", "--no-prefect", "--demo-count",
                                 "1", "--ui-port", str(ui), "--demo-base-port", str(demo)], cwd=ROOT,
                                env={**shell(home, pg), "BOOCONTROL_GATEWAY_PORT": str(free_port())},
                                capture_output=True, text=True, timeout=120)
        lines = second.stderr.splitlines()
        assert second.returncode == 2 and second.stdout == "" and len(lines) == 3, second.stderr
        assert lines[0].startswith(f"Error: port {ui} (the cockpit) is in use by pid ")
        assert f"the cockpit of `boocontrol up` pid {up.pid} for {data}; stop it" in lines[0]
        assert f"the embedded Postgres of `boocontrol up` pid {up.pid} for {data}" in lines[1]
        assert f"the demo-fleet of `boocontrol up` pid {up.pid} for {data}" in lines[2]
        assert lines[2].endswith("; nothing was started")
        assert not (tmp_path / "other" / "run").exists() and not (tmp_path / "other" / "postgres").exists()
    finally:
        if up.poll() is None:
            os.kill(up.pid, signal.SIGINT)
        code = up.wait(timeout=120)
        out.close()
    log = (tmp_path / "up.out").read_text()
    assert code == 0 and "stopped postgres" in log, log
    assert f"Gateway (OpenAI-compatible, any client's base_url): http://127.0.0.1:{gw}/v1" in log
    assert not (data / "run" / "up.json").exists()
    assert not (home / ".local" / "state" / "boocontrol" / "running.json").exists()
