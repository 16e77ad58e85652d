"""Finding the running cockpit (cli/instance.py) and `up`'s preflight (cli/preflight.py), as plain functions and
through `boocontrol up` refusing to start next to a port that is taken."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import instance as I
from cli.main import cli
from cli.preflight import check_data_dir, check_ports, listener_of, port_in_use
from core.settings import Settings, get_settings
from tests.conftest import free_port

LISTENER = "import socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); " \
           "print('ready', flush=True); time.sleep(120)"


@pytest.fixture()
def held_port() -> Iterator[tuple[int, subprocess.Popen[str]]]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", LISTENER, str(port), "held-by-test"], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    yield port, proc
    proc.kill()
    proc.wait()


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def write_up_state(data: Path, pid: int, fields: dict[str, object] | None = None) -> None:
    path = I.state_path(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid, **(fields or {}), "services": []}))


def test_commands_find_the_running_up_through_the_pointer_and_keep_what_the_user_set(tmp_path):
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    data = tmp_path / "elsewhere"
    write_up_state(data, os.getpid(), I.state_fields(data, "postgresql+psycopg://postgres@127.0.0.1:5999/boocontrol",
                                                     data / "demo-fleet.yaml", "http://127.0.0.1:4999/api",
                                                     "http://127.0.0.1:8599"))
    assert I.find_instance(None, env) is None or I.find_instance(None, env).data_dir != data  # no pointer yet
    assert I.write_pointer(data, os.getpid(), env) == tmp_path / "state" / "boocontrol" / "running.json"
    inst = I.find_instance(None, env)
    assert inst is not None and (inst.data_dir, inst.prefect_api) == (data, "http://127.0.0.1:4999/api")

    adopted = I.adopt(Settings(), inst, {})
    assert (adopted.data_dir, adopted.fleet_path, adopted.resolved_database_url()) == (
        data, data / "demo-fleet.yaml", "postgresql+psycopg://postgres@127.0.0.1:5999/boocontrol")
    mine = I.adopt(Settings(), inst, {"BOOCONTROL_DATABASE_URL": "postgresql://me@db/x",
                                      "BOOCONTROL_FLEET_FILE": "/etc/fleet.yaml"})
    assert (mine.database_url, mine.fleet_file, mine.data_dir) == (None, None, data)  # explicit values untouched

    write_up_state(data, dead_pid())  # `up` gone: nothing is adopted
    assert I.find_instance(None, env) is None or I.find_instance(None, env).data_dir != data
    assert I.find_instance(data, env) is None


def test_a_database_password_is_never_written_to_the_state(tmp_path):
    fields = I.state_fields(tmp_path, "postgresql+psycopg://u:hunter2@db:5432/boo", tmp_path / "fleet.yaml", None, "")
    assert fields["database_url"] is None and "hunter2" not in json.dumps(fields)
    assert fields["database"] == "postgresql+psycopg://u:***@db:5432/boo"


def test_a_taken_port_is_named_with_its_process_and_its_up(held_port, tmp_path):
    port, proc = held_port
    assert port_in_use(port) and listener_of(port) is not None and listener_of(port).pid == proc.pid
    free = free_port()
    problems = check_ports({"the cockpit": (port, "--ui-port"), "the Prefect server": (free, "--prefect-port")}, [])
    assert len(problems) == 1  # the free port is no problem
    assert problems[0].startswith(f"port {port} (the cockpit) is in use by pid {proc.pid} ({sys.executable} -c "
                                  "import socket, sys")
    assert problems[0].endswith("…); stop it or choose another port with --ui-port")
    other = I.Instance(pid=4242, data_dir=tmp_path / "first", database="", database_url=None, fleet_file=None,
                       prefect_api=None, cockpit_url=None, services=[{"name": "prefect-server", "pid": proc.pid}])
    [problem] = check_ports({"the Prefect server": (port, "--prefect-port")}, [other])
    assert problem.endswith(f"…), the prefect-server of `boocontrol up` pid 4242 for {tmp_path / 'first'}; stop it "
                            "or choose another port with --prefect-port")


def test_a_data_dir_that_cannot_be_created_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    assert check_data_dir(tmp_path / "file" / "data") == [
        f"cannot create the data directory {tmp_path / 'file' / 'data'}: Not a directory; choose another with "
        "--data-dir"]
    assert check_data_dir(tmp_path / "ok") == []


def test_up_next_to_a_taken_port_starts_nothing_and_names_it(held_port, tmp_path, db, db_url):
    port, proc = held_port
    (tmp_path / "fleet.yaml").write_text("providers:\n  - id: gpu\n    base_url: http://127.0.0.1:9\n")
    get_settings.cache_clear()
    try:
        r = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "up", "--ui-port", str(free_port()),
                                     "--prefect-port", str(port)],
                               env={"BOOCONTROL_DATABASE_URL": db_url, "XDG_STATE_HOME": str(tmp_path / "state")})
    finally:
        get_settings.cache_clear()
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr.startswith(f"Error: port {port} (the Prefect server) is in use by pid {proc.pid} (")
    assert r.stderr.endswith("; stop it or choose another port with --prefect-port; nothing was started\n")
    assert len(r.stderr.splitlines()) == 1
    assert not I.state_path(tmp_path).exists() and not (tmp_path / "state").exists()
    assert not (tmp_path / "logs" / "prefect-server.log").exists()
