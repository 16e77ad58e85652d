"""`boocontrol config show|history|diff|lint|edit` as a user runs them (subprocesses), on two simulated hosts
(``demo.single -watch-config``: MCP offered) whose files are reachable through the test's real sshd."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ops_config.hosts import watched_host

ROOT = Path(__file__).parents[2]

A = """\
startPort: {port}
models:
  qwen:
    cmd: llama-server --port ${{PORT}} -m /m/qwen2.5-7b-Q4_K_M.gguf -c 8192
    ttl: 300
  phi:
    cmd: llama-server --port ${{PORT}} -m /m/phi-4-mini-Q8_0.gguf
peers:
  b:
    proxy: {b_url}
    models: [gemma]
"""
B = """\
startPort: {port}
models:
  qwen:
    cmd: llama-server --port ${{PORT}} -m /m/qwen2.5-7b-Q5_K_M.gguf -c 32768
    ttl: 300
  gemma:
    cmd: llama-server --port ${{PORT}} -m /m/gemma-3-12b-Q4_K_M.gguf
peers:
  a:
    proxy: {a_url}
    models: [phi]
"""


@pytest.fixture()
def fleet(sshd, tmp_path, db_url, db):
    from tests.support.llamaswap import free_port

    a_port, b_port = free_port(), free_port()
    a_url, b_url = f"http://127.0.0.1:{a_port}", f"http://127.0.0.1:{b_port}"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with contextlib.ExitStack() as stack:
        ha = stack.enter_context(watched_host("sim", tmp_path / "a", A.format(port=26000, b_url=b_url), port=a_port))
        hb = stack.enter_context(watched_host("sim", tmp_path / "b", B.format(port=26100, a_url=a_url), port=b_port))
        data = tmp_path / "data"
        shutil.copytree(sshd.secrets_dir, data / "secrets")
        ssh = f"{{host: 127.0.0.1, port: {sshd.port}, user: {sshd.user}, key: {sshd.key_name}, config_path: "
        (data / "fleet.yaml").write_text(
            "providers:\n"
            f"  - {{id: a, base_url: '{a_url}', ssh: {ssh}{ha.config_path}}}}}\n"
            f"  - {{id: b, base_url: '{b_url}', ssh: {ssh}{hb.config_path}}}}}\n")
        yield data, ha, hb


def run(data: Path, db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BOOCONTROL_DATABASE_URL": db_url}
    env.pop("BOOCONTROL_FLEET_FILE", None)
    return subprocess.run([sys.executable, "-m", "cli.main", "--data-dir", str(data), "config", *args], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=120)


def test_show_diff_lint_edit_history(fleet, db_url, tmp_path):
    data, ha, hb = fleet
    r = run(data, db_url, "show", "a")
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines()[0].startswith("a: read via mcp, ")
    assert r.stderr.splitlines()[1].startswith("# a: via mcp, sha256 ")
    assert "    cmd: llama-server --port 26001 -m /m/qwen2.5-7b-Q4_K_M.gguf -c 8192\n" in r.stdout

    r = run(data, db_url, "diff", "--refresh")
    assert r.returncode == 0, r.stderr
    assert r.stdout == (
        "qwen\tcmd\n"
        "    a: llama-server --port ${PORT} -m /m/qwen2.5-7b-Q4_K_M.gguf -c 8192\n"
        "    b: llama-server --port ${PORT} -m /m/qwen2.5-7b-Q5_K_M.gguf -c 32768\n"
        "qwen\tctx_size\n    a: 8192\n    b: 32768\n"
        "qwen\tquantization\n    a: Q4_K_M\n    b: Q5_K_M\n")

    r = run(data, db_url, "lint")
    assert (r.returncode, r.stdout) == (0, "error\ta\tpeer-cycle\tpeers form a cycle a → b → a: a request for a "
                                           "model none of them serves is forwarded around it\n")

    new_b = hb.config_text.replace("-c 32768", "-c 8192").replace("Q5_K_M", "Q4_K_M")
    (tmp_path / "new_b.yaml").write_text(new_b)
    r = run(data, db_url, "edit", "b", "--file", str(tmp_path / "new_b.yaml"), "--health-timeout", "30")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("action 1: succeeded: applied; backup ")
    assert hb.config_path.read_text() == new_b
    r = run(data, db_url, "diff", "--refresh")
    assert r.stdout == "no differences: every model on two or more hosts is configured alike\n"

    (tmp_path / "bad.yaml").write_text("models:\n  x: {ttl: 3}\n")
    r = run(data, db_url, "edit", "b", "--file", str(tmp_path / "bad.yaml"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.splitlines()[-1] == ("Error: action 2: refused: the new config has 2 problem(s): schema: "
                                         "models.x: 'cmd' is a required property")
    assert hb.config_path.read_text() == new_b

    r = run(data, db_url, "history", "b")
    lines = [ln.split("\t") for ln in r.stdout.splitlines()]
    assert [(ln[1], ln[3]) for ln in lines] == [("mcp", "observed"), ("ssh", "edit #1"), ("ssh", "before edit #1"),
                                               ("mcp", "observed")]

    r = run(data, db_url, "show", "nope")
    assert r.returncode == 2 and r.stderr.startswith("Error: unknown provider 'nope'")


def test_edit_in_editor_and_refused_when_the_file_changed_meanwhile(sshd, tmp_path, db_url, db):
    with watched_host("sim", tmp_path, "# hand-written\nmodels:\n  alpha:\n    cmd: simple-responder -port ${PORT}\n"
                      "    proxy: http://127.0.0.1:${PORT}\n") as host:
        data = tmp_path / "data"
        shutil.copytree(sshd.secrets_dir, data / "secrets")
        (data / "fleet.yaml").write_text(
            f"providers:\n  - {{id: h, base_url: '{host.base_url}', ssh: {{host: 127.0.0.1, port: {sshd.port}, "
            f"user: {sshd.user}, key: {sshd.key_name}, config_path: {host.config_path}}}}}\n")
        editor = tmp_path / "editor.sh"  # what a person does in $EDITOR: rename the model
        editor.write_text("#!/bin/sh\nsed -i 's/alpha/beta/' \"$1\"\n")
        editor.chmod(0o755)
        env = {"EDITOR": str(editor)}
        r = run_env(data, db_url, env, "edit", "h", "--health-timeout", "30")
        assert r.returncode == 0, r.stderr
        assert host.config_path.read_text().startswith("# hand-written\nmodels:\n  beta:\n")
        # someone changes the file on the host while the editor is open: the edit is refused, theirs kept
        racer = tmp_path / "racer.sh"
        racer.write_text(f"#!/bin/sh\necho '# theirs' >> {host.config_path}\nsed -i 's/beta/gamma/' \"$1\"\n")
        racer.chmod(0o755)
        r = run_env(data, db_url, {"EDITOR": str(racer)}, "edit", "h")
        assert r.returncode == 2
        assert r.stderr.splitlines()[-1].startswith("Error: action 2: refused: ")
        assert "changed since it was read" in r.stderr.splitlines()[-1]
        assert host.config_path.read_text().endswith("# theirs\n") and "gamma" not in host.config_path.read_text()


def run_env(data: Path, db_url: str, extra: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BOOCONTROL_DATABASE_URL": db_url, **extra}
    env.pop("BOOCONTROL_FLEET_FILE", None)
    return subprocess.run([sys.executable, "-m", "cli.main", "--data-dir", str(data), "config", *args], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=120)
