"""Needle in a haystack: the generated filler, the depth × length grid from the real window, exact scores
with a scripted model whose recall ends at a known word, and a real llama-server run on the tiny model whose
per-slot window (from /props) every prompt must fit."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select

from engines.evals.completions import ModelClient
from engines.evals.needle import (
    TEMPLATE_RESERVE,
    Cell,
    accuracy_by_length,
    assemble,
    build_prompt,
    context_window,
    filler,
    found,
    grid,
    heatmap,
    make_needles,
    needle_depths,
    needle_metrics,
    run_cells,
    server_context_window,
    server_counter,
)
from tests.support.llamaswap import HOW_TO_PROVIDE
from tests.support.scripted_openai import run_scripted_server


async def words(text: str) -> int:
    """The scripted server's own token count (``usage.prompt_tokens`` = whitespace words)."""
    return len(text.split())


def test_filler_is_reproducible_and_holds_no_codes() -> None:
    a, b, c = filler(7), filler(7), filler(8)
    sa, sb, sc = [a() for _ in range(300)], [b() for _ in range(300)], [c() for _ in range(300)]
    assert sa == sb and sa != sc
    assert not any(re.search(r"\d", s) for s in sa)
    needles = make_needles(5, 1)
    assert len({n.code for n in needles}) == 5 and len({(n.colour, n.thing) for n in needles}) == 5


def test_needles_sit_at_their_depths() -> None:
    sentences = [f"Filler {i}." for i in range(100)]
    [n] = make_needles(1, 3)
    for depth, before in ((0.0, 0), (0.5, 50), (1.0, 100)):
        body = assemble(sentences, [n], [depth]).split("<document>\n", 1)[1].split("\n</document>")[0]
        assert re.split(r"(?<=\.) ", body).index(n.sentence) == before
    assert needle_depths(3, None) == [1 / 6, 0.5, 5 / 6]


def test_found_counts_whole_numbers_only() -> None:
    ns = make_needles(2, 5)
    assert found(f"{ns[0].code} and {ns[1].code}", ns) == 2
    assert found(f"{ns[0].code}9", ns) == 0 and found(None, ns) == 0


def test_window_and_grid() -> None:
    assert context_window({"default_generation_settings": {"n_ctx": 1024}, "n_ctx": 4096}) == 1024
    assert context_window({"n_ctx": 4096}) == 4096
    assert context_window({"total_slots": 2}) is None
    cells = grid(2000, 16, lengths=(0.5, 1.0), depths=(0.0, 1.0), multi=(3,))
    usable = 2000 - 16 - TEMPLATE_RESERVE
    assert cells == [
        Cell(usable // 2, 0.5, 0.0, 1), Cell(usable // 2, 0.5, 1.0, 1), Cell(usable // 2, 0.5, None, 3),
        Cell(usable, 1.0, 0.0, 1), Cell(usable, 1.0, 1.0, 1), Cell(usable, 1.0, None, 3),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="no room"):
        grid(100, 64)
    with pytest.raises(ValueError, match="length fractions"):
        grid(2000, 16, lengths=(1.5,))


def test_prompt_fits_its_target_closely() -> None:
    needles = make_needles(3, 9)
    prompt, n = asyncio.run(build_prompt(1500, needles, needle_depths(3, None), 9, words))
    assert n == len(prompt.split()) and 1500 - 20 <= n <= 1500
    assert all(nd.sentence in prompt and nd.question in prompt for nd in needles)
    with pytest.raises(ValueError, match="cannot hold"):
        asyncio.run(build_prompt(20, needles, needle_depths(3, None), 9, words))


RECALL_WORDS = 1200


def short_memory(msg: str, seed: int) -> str:
    """A model that reads only the first 1200 words: it answers every code it saw there."""
    seen = " ".join(msg.split()[:RECALL_WORDS])
    return " ".join(re.findall(r"access code of the \w+ \w+ is (\d+)", seen)) or "I do not know."


def test_scripted_model_exact_accuracy_by_length() -> None:
    """Window 2000, 16 answer tokens: lengths 960 and 1920 words. At 960 every needle is within reach (1.0);
    at 1920 depth 0 and 0.5 are found, depth 1.0 is not, and of 3 spread needles (near words 320, 960,
    1600) 2 are: (1 + 1 + 0 + 2/3) / 4 = 2/3. Overall (4 + 8/3) / 8 = 5/6."""
    cells = grid(2000, 16, lengths=(0.5, 1.0), depths=(0.0, 0.5, 1.0), multi=(3,))
    sampling = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 16}
    with run_scripted_server(short_memory) as srv:

        async def go() -> list:  # type: ignore[type-arg]
            async with httpx.AsyncClient(trust_env=False) as http:
                ask = ModelClient(http, srv.base_url + "/v1/chat/completions", "m", sampling, 1234, 30.0)
                return await run_cells(cells, ask, words, seed=1234, parallel=2)

        results = asyncio.run(go())
    assert [r.score for r in results] == [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 2 / 3]
    assert [r.found for r in results] == [1, 1, 1, 3, 1, 1, 0, 2]
    assert all(r.reported_prompt_tokens == r.prompt_tokens <= r.cell.target_tokens for r in results)
    assert all(r.prompt_tokens >= r.cell.target_tokens - 20 for r in results)
    assert accuracy_by_length(results) == {0.5: 1.0, 1.0: pytest.approx(2 / 3)}
    m = needle_metrics(results)
    assert m == {"accuracy": pytest.approx(5 / 6), "accuracy@0.5": 1.0, "accuracy@1": pytest.approx(2 / 3),
                 "multi_accuracy": pytest.approx(5 / 6)}  # fmt: skip
    assert heatmap(results)[(1.0, 1920)] == 0.0 and heatmap(results)[(0.5, 1920)] == 1.0
    assert len(srv.state.asked) == 8


@pytest.mark.llama_server
def test_real_llama_server_prompts_fit_the_slot_window(tmp_path: Path) -> None:
    """2 slots of a 2048-token server: /props says 1024 per slot, every prompt (the longest close to it)
    is accepted by the real server (it refuses a prompt over the window with HTTP 400), nothing crashes."""
    from tests.support.llamaserver import require_llama_server, run_llama_server
    from tests.support.tinymodel import write_tiny_gguf

    binary = require_llama_server()
    model = write_tiny_gguf(tmp_path / "tiny.gguf", seed=2)
    sampling = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 8}
    with run_llama_server(model, parallel=2, ctx=2048, binary=binary) as base:

        async def go() -> tuple[int, list]:  # type: ignore[type-arg]
            async with httpx.AsyncClient(trust_env=False) as http:
                n_ctx = await server_context_window(http, base, {})
                cells = grid(n_ctx, 8, lengths=(0.5, 1.0), depths=(0.0, 1.0), multi=(3,))
                ask = ModelClient(http, base + "/v1/chat/completions", "tiny", sampling, 1234, 120.0)
                return n_ctx, await run_cells(cells, ask, server_counter(http, base, {}), parallel=2)

        n_ctx, results = asyncio.run(go())
    assert n_ctx == 1024
    assert len(results) == 6 and [r.error for r in results] == [None] * 6
    longest = max(r.reported_prompt_tokens or 0 for r in results)
    assert 900 <= longest <= n_ctx - 8
    assert set(needle_metrics(results)) >= {"accuracy", "accuracy@0.5", "accuracy@1", "multi_accuracy"}


@pytest.mark.llama_server
def test_real_llama_server_needle_run_stored(engine: Engine, tmp_path: Path) -> None:
    """``eval run --suite needle`` on the tiny model: the grid is built on /props' 1024-token slot and sized
    with /tokenize (its tokenizer spends ~150 tokens on the bare question, so the 6 cells of 1/8 of the window
    and the 3-needle cell at 1/4 cannot be built and are left out); the other 23 are asked and accepted (none
    over the window), scored, metrics stored; the longest prompt the server counted is within the slot."""
    from core.providers import Provider
    from engines.evals.options import EvalOptions
    from engines.evals.runner import run_eval
    from engines.evals.suites import load_suite
    from tests.conftest import truncate_all
    from tests.support.llamaserver import require_llama_server, run_llama_server
    from tests.support.tinymodel import write_tiny_gguf
    from warehouse.schema_evals import eval_answers

    truncate_all(engine)
    binary = require_llama_server()
    model = write_tiny_gguf(tmp_path / "tiny.gguf", seed=2)
    with run_llama_server(model, parallel=2, ctx=2048, binary=binary, extra_args=("--slots",)) as base:
        p = Provider("direct", "direct", base, kind="openai")
        out = asyncio.run(run_eval(engine, p, "tiny", load_suite("needle"), EvalOptions(suite="needle", max_tokens=8),
                                   confirm_takeover=True))  # fmt: skip
    assert out.status == "completed" and out.asked == 23 and out.failed_requests == 0
    assert {"accuracy", "accuracy@0.25", "accuracy@1", "multi_accuracy"} <= set(out.metrics)
    assert "accuracy@0.125" not in out.metrics
    with engine.connect() as conn:
        rows = conn.execute(select(eval_answers.c.prompt_tokens, eval_answers.c.detail)).all()
    assert len(rows) == 23 and all(r.detail["asked"] in (1, 3) for r in rows)
    assert 900 <= max(r.prompt_tokens for r in rows) <= 1024 - 8


@pytest.mark.llama_server
@pytest.mark.real_llamaswap
def test_real_llama_swap_needle_run_uses_the_upstream_window(engine: Engine, tmp_path: Path) -> None:
    """Through a real llama-swap: the window comes from /upstream/tiny/props (4 slots of 8192 -> 2048) and the
    prompts are sized with /upstream/tiny/tokenize; every cell is accepted and the host is left as found."""
    from core.providers import Provider
    from engines.evals.options import EvalOptions
    from engines.evals.runner import run_eval
    from engines.evals.suites import load_suite
    from tests.bench_engine.conftest import TINY, swap_config
    from tests.conftest import truncate_all
    from tests.support.llamaserver import require_llama_server
    from tests.support.llamaswap import find_llama_swap, run_llama_swap, simple_responder_path
    from tests.support.tinymodel import write_tiny_gguf
    from warehouse.schema_evals import eval_answers

    truncate_all(engine)
    binary = require_llama_server()
    swap, responder = find_llama_swap(), simple_responder_path()
    if swap is None or responder is None:
        pytest.skip(f"REAL LLAMA-SWAP NOT FOUND: {HOW_TO_PROVIDE}")
    model = write_tiny_gguf(tmp_path / "tiny.gguf", seed=0)
    with run_llama_swap(swap_config(model, binary, responder)) as ls:
        p = Provider("lab", "lab", ls.base_url)
        out = asyncio.run(run_eval(engine, p, TINY, load_suite("needle"), EvalOptions(suite="needle", max_tokens=8),
                                   confirm_takeover=True))  # fmt: skip
    assert out.status == "completed" and out.failed_requests == 0 and out.asked >= 24
    with engine.connect() as conn:
        rows = conn.execute(select(eval_answers.c.prompt_tokens, eval_answers.c.detail)).all()
    assert (
        max(r.prompt_tokens for r in rows) <= 2048 - 8
        and max(r.detail["target_tokens"] for r in rows) == 2048 - 8 - 64
    )
    assert out.cleanup == [f"unloaded {TINY} (it was not loaded before the run)"]
