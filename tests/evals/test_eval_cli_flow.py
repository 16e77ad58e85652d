"""The two shells of the eval engine: ``boocontrol eval run/list/show`` (in process and as a real process
killed with SIGKILL mid-suite, then continued) and the ``eval-run`` Prefect flow, against a scripted server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select

from cli.main import cli
from core.settings import get_settings
from engines.evals.suites import load_ifeval
from tests.conftest import truncate_all
from tests.evals.conftest import provider_yaml
from tests.support.scripted_openai import ScriptedServer, ScriptState, run_scripted_server
from warehouse import eval_store, lease
from warehouse.db import psycopg_dsn
from warehouse.schema_evals import eval_answers, eval_runs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def scripted(engine: Engine, use_fleet: Callable[..., Path]) -> Iterator[ScriptedServer]:
    truncate_all(engine)
    state = ScriptState(total_slots=1)
    with run_scripted_server(lambda msg, seed: "- one\n- two", state) as srv:
        use_fleet(provider_yaml("sc", srv.base_url), default="sc")
        yield srv
        get_settings.cache_clear()


def test_cli_run_list_show(scripted: ScriptedServer, engine: Engine) -> None:
    runner = CliRunner()
    refused = runner.invoke(cli, ["eval", "run", "sc/scripted", "--suite", "ifeval", "--limit", "2"])
    assert refused.exit_code == 2 and "takeover confirmation" in refused.output
    assert [ln for ln in refused.output.splitlines() if ln.startswith("Error:")] == [
        "Error: refusing to run the eval without an explicit takeover confirmation: it keeps the host's slots busy "
        "and every other client on it sees the slowdown (pass --yes-take-over / confirm_takeover=True)"
    ]
    assert "Traceback" not in refused.output
    bad = runner.invoke(cli, ["eval", "run", "sc/scripted", "--suite", "ifeval", "--items", "nope", "--yes-take-over"])
    assert bad.exit_code == 2 and "Error: ifeval has no item(s) nope" in bad.output
    ok = runner.invoke(cli, ["eval", "run", "sc/scripted", "--suite", "ifeval", "--items", "bullets-4,lowercase",
                             "--yes-take-over"])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert "run #1: completed, 2 asked, 1 in parallel" in ok.output
    assert "prompt_strict: 0.500" in ok.output  # two bullets: 'bullets-4' fails, 'lowercase' passes
    listed = runner.invoke(cli, ["eval", "list"])
    assert listed.exit_code == 0 and "sc/scripted" in listed.output and "completed" in listed.output
    shown = runner.invoke(cli, ["eval", "show", "1"])
    assert shown.exit_code == 0 and "bullet_count: 2 bullets (want exactly 4)" in shown.output
    missing = runner.invoke(cli, ["eval", "show", "99"])
    assert missing.exit_code == 2 and "no eval run #99" in missing.output
    scores = runner.invoke(cli, ["eval", "list", "--scores"])
    assert "prompt_strict" in scores.output and "/models/scripted-q4.gguf" in scores.output


def test_killed_cli_run_is_continued_by_the_same_command(scripted: ScriptedServer, engine: Engine,
                                                         db_url: str) -> None:
    scripted.state.delay_s = 0.3
    args = [sys.executable, "-m", "cli.main", "eval", "run", "sc/scripted", "--suite", "ifeval", "--limit", "6",
            "--yes-take-over", "--json"]  # fmt: skip
    proc = subprocess.Popen(args, cwd=ROOT, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            with engine.connect() as conn:
                n = len(conn.execute(select(eval_answers.c.id)).all())
            if n >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)  # no cleanup at all: the run row stays 'running', the lease held
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    with engine.connect() as conn:
        [row] = conn.execute(select(eval_runs.c.id, eval_runs.c.status)).all()
        stored = len(conn.execute(select(eval_answers.c.id)).all())
    assert row.status == "running" and 2 <= stored < 6
    asked_before = len(scripted.state.asked)
    # the dead process still holds the host lease: the operator breaks it (or waits for it to expire)
    with psycopg.connect(psycopg_dsn(db_url)) as c:
        assert lease.break_lease(c, "sc", lease.SCOPE_HOST, "test") is not None
    scripted.state.delay_s = 0.0
    again = subprocess.run(args, cwd=ROOT, env=os.environ.copy(), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    import json

    out = json.loads(again.stdout.strip().splitlines()[-1])
    assert out["resumed"] is True and out["run_id"] == row.id and out["status"] == "completed"
    assert out["reused"] == stored and out["asked"] == 6 - stored
    suite = load_ifeval()
    by_prompt = {i.prompt: i.key for i in suite.items}
    second = sorted(by_prompt[m] for m, _ in scripted.state.asked[asked_before:])
    assert second == sorted(i.key for i in suite.items[stored:6])
    with engine.connect() as conn:
        assert len(conn.execute(select(eval_answers.c.id)).all()) == 6
        assert eval_store.get_run(conn, row.id)["resumes"] == 1


def test_flow_runs_an_eval(prefect_harness: None, scripted: ScriptedServer, engine: Engine) -> None:
    from flows.evals import eval_run

    result = eval_run(model="sc/scripted", confirm_takeover=True, suite="ifeval", items="bullets-4,json-list")
    assert result["status"] == "completed" and result["asked"] == 2
    assert result["metrics"] == {"prompt_strict": 0.0, "instruction_strict": 0.0}
    with engine.connect() as conn:
        [run] = eval_store.list_runs(conn)
        assert conn.execute(select(eval_runs.c.requested_by)).scalar_one().startswith("prefect:")
    assert run["suite"] == "ifeval" and run["answers"] == 2


def test_cli_options_and_flow_parameters_are_the_same_declaration() -> None:
    import inspect

    from cli.evals import run_cmd
    from engines.evals.options import RUN_PARAMS, eval_params
    from flows.evals import eval_run

    declared = [p.name for p in (*RUN_PARAMS, *eval_params())]
    flow_params = list(inspect.signature(eval_run.fn).parameters)
    cli_params = [p.name for p in run_cmd.params]
    assert flow_params == ["model", *declared]
    assert [n for n in cli_params if n in declared] == declared
