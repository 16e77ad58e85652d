"""The commands the empty Reports and Analysis pages suggest work on a new install (data only from today).

The hint is read from the rendered page (AppTest) and run: the Analysis export with the suggested
parameters really lands rows in the lake (the old `--param days=90`, ending yesterday, exported 810 empty
partitions), and the Reports command names a deployment of prefect.yaml through `boocontrol prefect` (which
finds the running cockpit's Prefect server; tests/core/test_readme_commands.py runs it against one).
"""

from __future__ import annotations

import re
import shlex
from datetime import UTC, date, datetime
from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

from flows.deploy import load_deployments, load_entrypoint
from tests.flows.synthetic import add_provider, add_request

ROOT = Path(__file__).resolve().parents[2]


def page_hint(page: str) -> list[str]:
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "pages" / page), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    commands = re.findall(r"`(boocontrol prefect deployment run [^`]+)`", at.info[0].value)
    assert len(commands) == 1, at.info[0].value
    return shlex.split(commands[0])


def params(argv: list[str]) -> dict[str, str]:
    pairs = [argv[i + 1] for i, a in enumerate(argv) if a == "--param"]
    return dict(p.split("=", 1) for p in pairs)


def test_the_analysis_hint_exports_todays_rows_on_a_new_install(prefect_harness, flow_env, db):
    from flows.exports import export_parquet

    now = datetime.now(UTC)
    since_midnight = now - now.replace(hour=0, minute=0, second=0, microsecond=0)
    with db.begin() as conn:
        add_provider(conn)
        for i in range(3):  # three requests today, none before
            add_request(conn, now - since_midnight * (i + 1) / 4, 200)

    argv = page_hint("8_Analysis.py")
    assert argv[:5] == ["boocontrol", "prefect", "deployment", "run", "export-parquet/daily"]
    p = params(argv)
    assert p == {"day": now.date().isoformat(), "days": "90"}
    # the suggested run, on the table that shows it (every table takes the same path; 90 x 9 partitions take minutes)
    results = export_parquet(day=date.fromisoformat(p["day"]), days=int(p["days"]), tables=["activity"])
    assert len(results) == 90
    assert [(r["day"], r["rows"]) for r in results if r["rows"]] == [(now.date().isoformat(), 3)]
    old_hint = export_parquet(days=90, tables=["activity"])  # what the page used to suggest: ends yesterday
    assert (len(old_hint), sum(int(r["rows"]) for r in old_hint)) == (90, 0)
    assert page_hint_gone()


def page_hint_gone() -> bool:
    st.cache_data.clear()
    at = AppTest.from_file(str(ROOT / "pages" / "8_Analysis.py"), default_timeout=60)
    at.run()
    return not at.exception and not any("No Parquet exports" in i.value for i in at.info)


def test_the_reports_hint_runs_a_deployment_that_exists(flow_env):
    argv = page_hint("7_Reports.py")
    _, entries = load_deployments(ROOT / "prefect.yaml")
    deployments = {f"{load_entrypoint(e['entrypoint'], ROOT).name}/{e['name']}" for e in entries}
    assert argv == ["boocontrol", "prefect", "deployment", "run", "fleet-digest/today"]
    assert "fleet-digest/today" in deployments
