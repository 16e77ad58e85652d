"""Pages stay thin: no SQL or HTTP libraries in app.py or pages/*.py, and the UI's structural rules hold."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"sqlalchemy", "psycopg", "psycopg2", "duckdb", "httpx", "requests"}
PAGES = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))]


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                roots.add(arg.value.split(".")[0])
    return roots


def test_there_are_pages() -> None:
    names = {p.name for p in PAGES}
    assert {"app.py", "1_Fleet.py", "2_Activity.py", "3_Logs.py", "4_Models.py", "5_Performance.py"} <= names


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_page_imports_no_sql_or_http(path: Path) -> None:
    bad = imported_roots(path) & FORBIDDEN
    assert not bad, f"{path.name} imports {sorted(bad)}: put SQL in warehouse/queries and HTTP in actions"


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_page_never_calls_st_navigation_or_caches(path: Path) -> None:
    src = path.read_text()
    assert "st.navigation" not in src, "pages/ auto-discovery only; never mix it with st.navigation"
    assert "cache_data" not in src and "cache_resource" not in src, "caches live in ui/data.py only"


def test_thin_page_check_catches_violations(tmp_path: Path) -> None:
    bad = tmp_path / "9_Bad.py"
    bad.write_text("import streamlit as st\nfrom sqlalchemy import text\nimport httpx.Client\n")
    assert imported_roots(bad) & FORBIDDEN == {"sqlalchemy", "httpx"}


def test_only_ui_data_modules_define_streamlit_caches() -> None:
    # ui/data.py, plus the per-feature data modules of other pages (ui/bench_data.py, ui/reports_data.py, ...)
    offenders = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "ui").glob("*.py")
        if not p.name.endswith("data.py")
        and ("st.cache_data" in p.read_text() or "st.cache_resource" in p.read_text())
    ]
    assert offenders == []


def test_domain_code_never_imports_streamlit() -> None:
    domain = [ROOT / "actions", ROOT / "warehouse", ROOT / "reports"]
    offenders = [
        p.relative_to(ROOT).as_posix()
        for d in domain
        for p in d.rglob("*.py")
        if "streamlit" in imported_roots(p)
    ]
    assert offenders == []
