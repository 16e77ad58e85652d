"""Layers point down: import-linter's contracts in pyproject.toml ([tool.importlinter]) hold.

Bottom to top: core → warehouse → connectors → actions | engines → reports → tasks : flows : ui → cli
(pages/ and app.py are Streamlit scripts above everything). demo/ may import nothing of the product
but core. Known violations are listed in the contract's ``ignore_imports`` with a comment each.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[1]
LINT = Path(sys.executable).parent / "lint-imports"


def contracts() -> dict[str, object]:
    config: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return config


def lint(cwd: Path, config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [str(LINT), "--no-cache", "--no-logo", str(config)], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=120,
    )


def test_layers_point_down() -> None:
    known = [c.get("ignore_imports", []) for c in contracts()["contracts"]]  # type: ignore[attr-defined]
    print("known violations (ignore_imports):", [i for group in known for i in group] or "none")
    r = lint(ROOT, ROOT / "pyproject.toml")
    assert r.returncode == 0, f"import-linter contracts broken:\n{r.stdout}{r.stderr}"
    assert "Contracts: 2 kept, 0 broken." in r.stdout, r.stdout


def test_every_package_is_under_a_contract() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert set(contracts()["root_packages"]) == packages  # type: ignore[call-overload]


def test_the_contracts_catch_an_upward_import(tmp_path: Path) -> None:
    """The same contracts on a skeleton of the same packages: one upward import each way is reported."""
    for name in contracts()["root_packages"]:  # type: ignore[attr-defined]
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / "warehouse" / "ingest.py").write_text("def f():\n    from connectors import follower\n")
    (tmp_path / "connectors" / "follower.py").write_text("import warehouse.ingest\n")
    (tmp_path / "demo" / "fleet.py").write_text("import core\nfrom warehouse import ingest\n")
    (tmp_path / "engines" / "x.py").write_text("import actions\n")
    (tmp_path / "cli" / "main.py").write_text("import flows, tasks, ui, reports, engines, actions, demo\n")
    r = lint(tmp_path, ROOT / "pyproject.toml")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Contracts: 0 kept, 2 broken." in r.stdout, r.stdout
    assert "warehouse is not allowed to import connectors" in r.stdout
    assert "- warehouse.ingest -> connectors.follower (l.2)" in r.stdout
    assert "engines is not allowed to import actions" in r.stdout
    assert "demo.fleet -> warehouse.ingest (l.2)" in r.stdout
    assert "cli" not in r.stdout.split("Broken contracts", 1)[1]  # cli may import everything below it
