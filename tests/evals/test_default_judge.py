"""The default judge (no ``--judge``): the best-scoring local model on the stored ifeval scores, exactly as
`engines.evals.default_judge` documents it — on the real Postgres, and through ``eval run --suite chat`` against
the scripted server (the chosen judge stored with the run; the candidate judging itself flagged)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select

from cli.main import cli
from core.providers import Provider
from core.settings import get_settings
from engines.evals.default_judge import NoDefaultJudge, default_judge
from engines.evals.runner import HARNESS_VERSION
from engines.evals.suites import load_suite
from tests.conftest import truncate_all
from tests.evals.conftest import provider_yaml
from tests.support.scripted_openai import run_scripted_server
from warehouse import eval_store
from warehouse.schema_evals import eval_judgments, eval_runs

IFEVAL = load_suite("ifeval")
FULL = len(IFEVAL.items)
PROVIDERS = (
    Provider("box", "box", "http://127.0.0.1:1", kind="llama-swap"),
    Provider("gpu", "gpu", "http://127.0.0.1:2", kind="vllm"),
    Provider("cloud", "cloud", "https://api.example.invalid", kind="openai"),
)
NO_SCORES = ("no --judge given, and no local model has a fresh score on the whole ifeval suite to choose the "
             "default judge by: give --judge provider/model (or run `eval run provider/model --suite ifeval` on a "
             "local model)")  # fmt: skip


@pytest.fixture()
def db(engine: Engine) -> Iterator[Engine]:
    truncate_all(engine)
    yield engine


def store_scores(
    engine: Engine, model: str, prompt: float, instruction: float, *, n_items: int = FULL,
    version: str = IFEVAL.version, suite: str = "ifeval", stale: str | None = None,
) -> int:  # fmt: skip
    """A completed run of ``model`` with its two instruction-following scores, as the runner writes them."""
    pid, mid = model.split("/", 1)
    with engine.begin() as conn:
        suite_id, _ = eval_store.ensure_suite(conn, suite, version, "instructions", [])
        run_id = eval_store.insert_run(conn, {
            "run_uid": uuid.uuid4().hex, "suite_id": suite_id, "provider_id": pid, "model_id": mid,
            "status": "completed", "config_key": "k", "harness_version": HARNESS_VERSION, "sampling": {},
            "samples_per_item": 1, "params": {}, "started_at": datetime.now(UTC),
        })  # fmt: skip
        common = {"n_items": n_items, "suite_name": suite, "suite_version": version, "provider_id": pid,
                  "model_id": mid, "harness_version": HARNESS_VERSION, "sampling": {}}  # fmt: skip
        eval_store.write_scores(conn, run_id, [{"metric": "prompt_strict", "value": prompt, **common},
                                               {"metric": "instruction_strict", "value": instruction, **common}])
        if stale:
            eval_store.set_stale(conn, [(int(s["id"]), stale) for s in eval_store.fresh_scores(conn, pid, mid)
                                        if s["run_id"] == run_id])  # fmt: skip
    return run_id


def pick(engine: Engine) -> str:
    with engine.connect() as conn:
        return default_judge(conn, PROVIDERS).model


def test_no_scores_is_a_one_line_error_naming_the_judge_option(db: Engine) -> None:
    with db.connect() as conn, pytest.raises(NoDefaultJudge) as err:
        default_judge(conn, PROVIDERS)
    assert str(err.value) == NO_SCORES


def test_the_best_local_model_on_the_whole_current_ifeval_suite(db: Engine) -> None:
    store_scores(db, "cloud/gpt", 1.0, 1.0)  # a cloud model: never the default
    store_scores(db, "box/quick", 1.0, 1.0, n_items=3)  # a --limit 3 run: not comparable
    store_scores(db, "box/old", 1.0, 1.0, version="0123456789ab")  # an older suite version
    store_scores(db, "box/stale", 1.0, 1.0, stale="model file changed: a -> b")
    store_scores(db, "box/chatty", 1.0, 1.0, suite="utility")  # another suite's scores
    with db.connect() as conn, pytest.raises(NoDefaultJudge):
        default_judge(conn, PROVIDERS)
    store_scores(db, "box/top", 1.0, 1.0)
    with db.connect() as conn:
        assert default_judge(conn, PROVIDERS).model == "box/top"
        with pytest.raises(NoDefaultJudge):  # its provider is no longer in the registry
            default_judge(conn, PROVIDERS[1:])
    with db.begin() as conn:
        eval_store.set_stale(conn, [(int(s["id"]), "model file changed") for s in
                                    eval_store.fresh_scores(conn, "box", "top")])  # fmt: skip

    store_scores(db, "box/a", 0.8125, 0.9)
    b = store_scores(db, "gpu/b", 0.8125, 0.95)  # same prompt_strict: the higher instruction_strict wins
    with db.connect() as conn:
        choice = default_judge(conn, PROVIDERS)
    assert (choice.model, choice.run_id, choice.prompt_strict, choice.instruction_strict, choice.considered) == (
        "gpu/b", b, 0.8125, 0.95, 2)
    assert choice.describe() == (f"gpu/b (default judge: the best of 2 local model(s) on the ifeval suite, "
                                 f"prompt_strict 0.812, run #{b})")  # fmt: skip

    store_scores(db, "box/a", 0.84375, 0.91)  # the newest full run of a model counts: box/a now leads
    assert pick(db) == "box/a"
    store_scores(db, "box/a", 0.5, 0.6)  # ... even when it is worse than its earlier one
    assert pick(db) == "gpu/b"
    store_scores(db, "box/c", 0.8125, 0.95)  # a full tie: provider/model alphabetically
    assert pick(db) == "box/c"


def test_chat_run_without_judge_uses_the_default_and_flags_it_judging_itself(db: Engine, use_fleet: Callable[..., Path]) -> None:
    def script(msg: str, seed: int) -> str:
        return "Fine.\nRating: [[6]]" if "[[rating]]" in msg else "an answer"

    with run_scripted_server(script) as srv:
        use_fleet(provider_yaml("loc", srv.base_url, "vllm"), provider_yaml("cl", srv.base_url, "openai"))
        try:
            runner = CliRunner()
            none = runner.invoke(cli, ["eval", "run", "loc/cand", "--suite", "chat", "--limit", "1", "--yes-take-over"])
            assert none.exit_code == 2 and "Traceback" not in none.output
            assert none.output.strip().splitlines()[-1] == f"Error: {NO_SCORES}"

            store_scores(db, "cl/gpt", 1.0, 1.0)
            store_scores(db, "loc/judge", 0.75, 0.8)
            store_scores(db, "loc/cand", 0.5, 0.9)
            ok = runner.invoke(cli, ["eval", "run", "loc/cand", "--suite", "chat", "--limit", "1", "--yes-take-over"])
            assert ok.exit_code == 0, ok.output
            assert "judge: loc/judge (default judge: the best of 2 local model(s) on the ifeval suite" in ok.output
            assert "judge_score: 6.000" in ok.output

            store_scores(db, "loc/cand", 0.9, 0.9)  # now the candidate itself is the best: it judges itself
            self_run = runner.invoke(cli, ["eval", "run", "loc/cand", "--suite", "chat", "--limit", "1",
                                           "--yes-take-over"])  # fmt: skip
            assert self_run.exit_code == 0, self_run.output
        finally:
            get_settings.cache_clear()
    with db.connect() as conn:
        runs = conn.execute(select(eval_runs.c.judge).where(eval_runs.c.judge.is_not(None))
                            .order_by(eval_runs.c.id)).scalars().all()  # fmt: skip
        js = conn.execute(select(eval_judgments.c.judge_model_id, eval_judgments.c.self_judged)
                          .order_by(eval_judgments.c.id)).all()  # fmt: skip
    assert runs == ["loc/judge@judge-1", "loc/cand@judge-1"]
    assert js == [("judge", False), ("judge", False), ("cand", True), ("cand", True)]  # two turns each
