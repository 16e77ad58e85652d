"""Evals against real llama.cpp on the generated tiny model: its answers are gibberish, so these assert the
pipeline — failed code recorded as failed with its sandbox outcome, instruction checks recorded, nothing
crashes, the host's parallel slots and model file read from /props, and (through a real llama-swap) the host
left as found."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select

from core.providers import Provider
from engines.evals.options import EvalOptions
from engines.evals.runner import run_eval
from engines.evals.sandbox import BubblewrapSandbox
from engines.evals.suites import load_humaneval, load_ifeval
from tests.conftest import truncate_all
from tests.support.llamaserver import require_llama_server, run_llama_server
from tests.support.llamaswap import HOW_TO_PROVIDE, find_llama_swap, run_llama_swap, simple_responder_path
from tests.support.tinymodel import write_tiny_gguf
from warehouse import eval_store
from warehouse.schema_evals import eval_answers, eval_sandbox_outcomes

pytestmark = [pytest.mark.llama_server]

BASE_UID = 2_100_310_000


@pytest.fixture()
def db(engine: Engine) -> Iterator[Engine]:
    truncate_all(engine)
    yield engine


def test_gibberish_answers_are_scored_as_failures(db: Engine, tmp_path: Path) -> None:
    binary = require_llama_server()
    model = write_tiny_gguf(tmp_path / "tiny.gguf", seed=2)
    sandbox = BubblewrapSandbox(base_uid=BASE_UID)
    sandbox.check()
    with run_llama_server(model, parallel=2, ctx=8192, binary=binary, extra_args=("--slots",)) as base:
        p = Provider("direct", "direct", base, kind="openai")
        he = asyncio.run(run_eval(db, p, "tiny", load_humaneval(), EvalOptions(suite="humaneval", limit=3, max_tokens=24),
                                  confirm_takeover=True, sandbox=sandbox))  # fmt: skip
        ie = asyncio.run(run_eval(db, p, "tiny", load_ifeval(), EvalOptions(suite="ifeval", limit=4, max_tokens=24),
                                  confirm_takeover=True))  # fmt: skip
    assert he.status == "completed" and he.asked == 3 and he.failed_requests == 0
    assert he.metrics == {"pass@1": 0.0}
    assert he.parallel == 2 and he.model_file == str(model)  # /props total_slots and model_path
    assert ie.status == "completed" and ie.asked == 4
    assert set(ie.metrics) == {"prompt_strict", "instruction_strict"}
    with db.connect() as conn:
        answers = conn.execute(select(eval_answers.c.run_id, eval_answers.c.text, eval_answers.c.passed,
                                      eval_answers.c.completion_tokens, eval_answers.c.detail)).all()  # fmt: skip
        boxes = conn.execute(select(eval_sandbox_outcomes.c.exit_code, eval_sandbox_outcomes.c.stderr)).all()
        run = eval_store.get_run(conn, he.run_id)
    assert len(answers) == 7 and all(a.text is not None and a.completion_tokens == 24 for a in answers)
    assert all(a.passed is False for a in answers if a.run_id == he.run_id)
    assert len(boxes) == 3 and all(b.exit_code not in (0, None) and b.stderr for b in boxes)
    assert all(len(a.detail["checks"]) >= 1 for a in answers if a.run_id == ie.run_id)
    assert run["server_version"] and run["sampling"]["temperature"] == 0.0


@pytest.mark.real_llamaswap
def test_through_llama_swap_the_host_is_left_as_found(db: Engine, tmp_path: Path) -> None:
    from tests.bench_engine.conftest import TINY, swap_config

    binary = require_llama_server()
    swap, responder = find_llama_swap(), simple_responder_path()
    if swap is None or responder is None:
        pytest.skip(f"REAL LLAMA-SWAP NOT FOUND: {HOW_TO_PROVIDE}")
    model = write_tiny_gguf(tmp_path / "tiny.gguf", seed=0)
    with run_llama_swap(swap_config(model, binary, responder)) as ls:
        p = Provider("lab", "lab", ls.base_url)
        out = asyncio.run(run_eval(db, p, TINY, load_ifeval(), EvalOptions(suite="ifeval", limit=4, max_tokens=16),
                                   confirm_takeover=True))  # fmt: skip
        running = httpx.get(ls.base_url + "/running", timeout=10).json()
    assert out.status == "completed" and out.asked == 4
    assert out.parallel == 4 and out.model_file == str(model)  # llama-server /props through /upstream
    assert [r for r in running.get("running", []) if r.get("state") in ("ready", "starting")] == []  # unloaded
    with db.connect() as conn:
        run = eval_store.get_run(conn, out.run_id)
    assert run["host_kind"] == "llama-swap" and run["server_version"]
    assert out.cleanup == run["extra"]["cleanup"] == [f"unloaded {TINY} (it was not loaded before the run)"]
