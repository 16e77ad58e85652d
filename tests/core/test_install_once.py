"""`scripts/up.sh` runs `scripts/install.sh` on every start; pip runs only when pyproject.toml changed since the
last install (it used to re-run `pip install -e .`, with setuptools' warning box, every time). The real script
in a copy of the repository layout, with a recording `pip` in its virtualenv (nothing is installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("postgresql", "python3-venv", "python3-dev", "ca-certificates", "curl", "git")


def _missing_packages() -> list[str]:
    return [p for p in PACKAGES if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode != 0]


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    if shutil.which("dpkg") is None or _missing_packages():
        pytest.skip("the script would apt-get install the system packages first")
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "install.sh", repo / "scripts" / "install.sh")
    shutil.copy(ROOT / "pyproject.toml", repo / "pyproject.toml")
    bin_dir = repo / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(ROOT / ".venv" / "bin" / "python")
    pip = bin_dir / "pip"  # records its arguments; what the script does with pip is what is tested
    pip.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path / "pip.calls"}\ntouch {bin_dir / "boocontrol"} && chmod +x {bin_dir / "boocontrol"}\n')
    pip.chmod(0o755)
    return repo


def install(repo: Path) -> str:
    env = {**os.environ, "HOME": str(repo.parent)}
    r = subprocess.run(["bash", "scripts/install.sh"], cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_pip_runs_once_per_pyproject(repo: Path) -> None:
    calls = repo.parent / "pip.calls"
    first = install(repo)
    assert "== python environment ready (.venv)" in first
    assert calls.read_text().splitlines() == ["install -q --upgrade pip", "install -q -e ."]
    again = install(repo)
    assert "== python environment up to date (.venv; pyproject.toml unchanged since it was installed)" in again
    assert len(calls.read_text().splitlines()) == 2  # no pip on the second start
    with (repo / "pyproject.toml").open("a") as f:
        f.write("\n# a dependency was added\n")
    assert "== python environment ready (.venv)" in install(repo)
    assert calls.read_text().splitlines()[2:] == ["install -q --upgrade pip", "install -q -e ."]
