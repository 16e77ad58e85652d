"""``boocontrol eval run --suite chat --judge …`` in process against a scripted server: the judge resolved from
the registry, an MT-bench-format file given with --questions, one-line errors for a missing judge and a malformed question file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select

from cli.main import cli
from core.settings import get_settings
from tests.conftest import truncate_all
from tests.evals.conftest import provider_yaml
from tests.support.scripted_openai import ScriptedServer, ScriptState, run_scripted_server
from warehouse.schema_evals import eval_judgments, eval_runs

MT_BENCH = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mt_bench" / "question.jsonl"


def script(msg: str, seed: int) -> str:
    return "Fine.\nRating: [[7]]" if "[[rating]]" in msg else "an answer"


@pytest.fixture()
def scripted(engine: Engine, use_fleet: Callable[..., Path]) -> Iterator[ScriptedServer]:
    truncate_all(engine)
    with run_scripted_server(script, ScriptState(total_slots=1)) as srv:
        use_fleet(provider_yaml("sc", srv.base_url), default="sc")
        yield srv
        get_settings.cache_clear()


def test_cli_chat_run_with_judge(scripted: ScriptedServer, engine: Engine, tmp_path: Path) -> None:
    runner = CliRunner()
    no_judge = runner.invoke(cli, ["eval", "run", "sc/cand", "--suite", "chat", "--yes-take-over"])
    assert no_judge.exit_code == 2 and "Traceback" not in no_judge.output
    # no --judge and no local model scored to choose one by (sc is an openai-kind provider: never a default)
    assert "Error: no --judge given, and no local model has a fresh score on the whole ifeval suite" in no_judge.output
    ok = runner.invoke(cli, ["eval", "run", "sc/cand", "--suite", "chat", "--judge", "sc/judge", "--limit", "2",
                             "--yes-take-over"])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert "judge_score: 7.000" in ok.output
    shown = runner.invoke(cli, ["eval", "show", "1"])
    assert shown.exit_code == 0
    assert "judge sc/judge@judge-1 (not trusted: never calibrated against human labels" in shown.output
    assert shown.output.count("judge t1: 7.0 | t2: 7.0") == 2
    if not MT_BENCH.is_file():
        pytest.skip(f"MT-bench questions not found at {MT_BENCH} (../shared/data beside the clone)")
    mt = runner.invoke(cli, ["eval", "run", "sc/cand", "--suite", "chat", "--questions", str(MT_BENCH),
                             "--items", "81,111", "--judge", "sc/judge", "--yes-take-over"])  # fmt: skip
    assert mt.exit_code == 0, mt.output
    with engine.connect() as conn:
        runs = conn.execute(select(eval_runs.c.judge).order_by(eval_runs.c.id)).scalars().all()
        n = len(conn.execute(select(eval_judgments.c.id)).all())
    assert runs == ["sc/judge@judge-1", "sc/judge@judge-1"]
    assert n == 2 * 2 + 2 * 2  # two items x two turns, twice
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"question_id": 1, "category": "x"}\n')
    broken = runner.invoke(cli, ["eval", "run", "sc/cand", "--suite", "chat", "--questions", str(bad),
                                 "--judge", "sc/judge", "--yes-take-over"])  # fmt: skip
    assert broken.exit_code == 2 and f"Error: {bad} line 1: turns must be" in broken.output
