"""Needle in a haystack: can the model find facts placed at a given depth of a long context?

* The filler is generated: seeded synthetic sentences from small word lists (no borrowed text), so a
  haystack is reproducible from its seed and says nothing a model could know beforehand.
* A needle is a sentence "The access code of the <colour> <thing> is <5-digit number>." with its question;
  the answer is scored by code: the fraction of the asked numbers found in the answer.
* The grid is depth × context length. Lengths are fractions of the model's **real** context window (the
  llama-server ``/props`` ``n_ctx`` of one slot, or the catalog's), minus the room for the answer and the chat
  template; an unknown window is an error, never a made-up default. Single-needle cells are asked at every
  depth; multi-needle cells place ``k`` needles evenly through the haystack and ask for all of them.
* Lengths are in the model's own tokens: the haystack is sized with a token counter (llama-server
  ``/tokenize``) and trimmed until the prompt fits its target.

The result per model is accuracy vs length (mean over depths) and the depth × length heatmap.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from engines.evals.completions import Answer

DEFAULT_LENGTHS = (0.125, 0.25, 0.5, 0.75, 1.0)
DEFAULT_DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
TEMPLATE_RESERVE = 64
"""Tokens kept free for the chat template's wrapping of the prompt (role markers, BOS), beside the answer."""

_SUBJECTS = ("the river", "a small farm", "the old mill", "every harbour", "the northern road", "a quiet village",
             "the market square", "the signal tower", "a wooden bridge", "the orchard", "the weather station",
             "a narrow valley", "the library", "the ferry", "the council", "a mountain pass")  # fmt: skip
_VERBS = ("stays open", "was repaired", "is painted", "gets busy", "was measured", "looks calm", "was cleaned",
          "is inspected", "was rebuilt", "grows quiet", "is visited", "was mapped")  # fmt: skip
_TIMES = ("in early spring", "after the rain", "before sunrise", "every second week", "during the harvest",
          "late in the evening", "on most mondays", "when the wind turns", "in the dry season", "at noon")  # fmt: skip
_EXTRAS = ("and nobody minds", "as the records show", "according to the notes", "while the bells ring",
           "and the workers rest", "as it did last year", "without much noise", "and the lamps stay lit")  # fmt: skip
_COLOURS = (
    "red",
    "blue",
    "green",
    "amber",
    "violet",
    "silver",
    "orange",
    "grey",
    "white",
    "black",
    "teal",
    "gold",
)
_THINGS = ("lantern", "suitcase", "bicycle", "teapot", "compass", "umbrella", "notebook", "kettle", "ladder",
           "telescope", "drum", "basket")  # fmt: skip

PROMPT = (
    "Read the document below. Somewhere in it are one or more access codes.\n\n<document>\n{haystack}\n"
    "</document>\n\n{questions}\nAnswer with the code number(s) only."
)


def filler(seed: int) -> Callable[[], str]:
    """A generator of synthetic sentences, reproducible from ``seed``."""
    rng = random.Random(seed)

    def sentence() -> str:
        s = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_TIMES)}"
        if rng.random() < 0.5:
            s += f" {rng.choice(_EXTRAS)}"
        return s[0].upper() + s[1:] + "."

    return sentence


@dataclass(frozen=True)
class Needle:
    colour: str
    thing: str
    code: str

    @property
    def sentence(self) -> str:
        return f"The access code of the {self.colour} {self.thing} is {self.code}."

    @property
    def question(self) -> str:
        return f"What is the access code of the {self.colour} {self.thing}?"


def make_needles(k: int, seed: int) -> list[Needle]:
    """``k`` needles with distinct (colour, thing) and distinct 5-digit codes."""
    rng = random.Random(seed * 7919 + k)
    pairs = rng.sample([(c, t) for c in _COLOURS for t in _THINGS], k)
    codes = rng.sample(range(10000, 100000), k)
    return [Needle(c, t, str(n)) for (c, t), n in zip(pairs, codes, strict=True)]


def needle_depths(k: int, depth: float | None) -> list[float]:
    """One needle at ``depth``; several spread evenly ((i + 0.5) / k)."""
    if k == 1:
        return [0.0 if depth is None else depth]
    return [(i + 0.5) / k for i in range(k)]


def assemble(sentences: Sequence[str], needles: Sequence[Needle], depths: Sequence[float]) -> str:
    """The prompt with every needle inserted at its depth (a fraction of the filler sentences)."""
    body = list(sentences)
    for needle, d in sorted(zip(needles, depths, strict=True), key=lambda nd: -nd[1]):
        body.insert(round(d * len(sentences)), needle.sentence)
    questions = "\n".join(n.question for n in needles)
    return PROMPT.format(haystack=" ".join(body), questions=questions)


class TooShort(ValueError):
    """The target length cannot even hold the instructions, the needles and the questions."""


Counter = Callable[[str], Awaitable[int]]
"""Tokens of a text, in the model's tokenizer."""


async def build_prompt(
    target_tokens: int, needles: Sequence[Needle], depths: Sequence[float], seed: int, count: Counter
) -> tuple[str, int]:
    """The prompt of at most ``target_tokens`` tokens (as close under it as whole sentences allow) and its
    token count. Sized from a calibration count, then grown or trimmed by whole sentences (each step counted
    again) until it fits with less than about a sentence to spare."""
    next_sentence = filler(seed)
    empty = await count(assemble([], needles, depths))
    if empty > target_tokens:
        raise TooShort(
            f"a {target_tokens}-token prompt cannot hold the question and its needles ({empty} tokens)"
        )
    sample = [next_sentence() for _ in range(200)]
    per = max(1e-6, (await count(assemble(sample, needles, depths)) - empty) / len(sample))
    want = int((target_tokens - empty) / per)
    shrunk = False
    sentences = sample[:want] + [next_sentence() for _ in range(max(0, want - len(sample)))]
    best: tuple[str, int] | None = None
    for _ in range(50):
        prompt = assemble(sentences, needles, depths)
        n = await count(prompt)
        if n <= target_tokens:
            if best is None or n > best[1]:
                best = (prompt, n)
            grow = int((target_tokens - n) / per * 0.9)
            if grow < 1 or shrunk:  # full enough, or it just came down from too long: stop here
                return best
            sentences += [next_sentence() for _ in range(grow)]
        else:
            shrunk = True
            sentences = sentences[: max(0, len(sentences) - max(1, math.ceil((n - target_tokens) / per)))]
    if best is not None:
        return best
    raise ValueError(f"could not fit the haystack under {target_tokens} tokens")


def found(answer: str | None, needles: Sequence[Needle]) -> int:
    """How many of the needles' codes appear in the answer (as whole numbers)."""
    nums = set(re.findall(r"\d+", answer or ""))
    return sum(1 for n in needles if n.code in nums)


def context_window(props: Mapping[str, Any]) -> int | None:
    """One slot's context window from llama-server ``/props`` (``default_generation_settings.n_ctx``, else a
    top-level ``n_ctx``); None when the server does not say."""
    gen = props.get("default_generation_settings")
    for v in ((gen or {}).get("n_ctx") if isinstance(gen, dict) else None, props.get("n_ctx")):
        if isinstance(v, int) and v > 0:
            return v
    return None


@dataclass(frozen=True)
class Cell:
    target_tokens: int
    length_fraction: float
    depth: float | None  # None: several needles spread through the haystack
    needles: int


def grid(
    n_ctx: int,
    max_tokens: int,
    lengths: Sequence[float] = DEFAULT_LENGTHS,
    depths: Sequence[float] = DEFAULT_DEPTHS,
    multi: Sequence[int] = (3,),
) -> list[Cell]:
    """Depth × length single-needle cells, and one multi-needle cell per length for each count in ``multi``.
    A length fraction of 1.0 is the whole window less the answer's ``max_tokens`` and `TEMPLATE_RESERVE`."""
    usable = n_ctx - max_tokens - TEMPLATE_RESERVE
    if usable < 64:
        raise ValueError(
            f"a {n_ctx}-token window leaves no room for a haystack with {max_tokens} answer tokens"
        )
    for f in lengths:
        if not 0 < f <= 1:
            raise ValueError(f"length fractions are in (0, 1], got {f}")
    for d in depths:
        if not 0 <= d <= 1:
            raise ValueError(f"depths are in [0, 1], got {d}")
    cells = []
    for f in lengths:
        t = int(usable * f)
        cells += [Cell(t, f, d, 1) for d in depths]
        cells += [Cell(t, f, None, k) for k in multi if k > 1]
    return cells


@dataclass
class CellResult:
    cell: Cell
    prompt_tokens: int  # counted by the tokenizer when built
    reported_prompt_tokens: int | None  # the server's usage.prompt_tokens (chat template included)
    asked: int
    found: int
    answer: str | None
    error: str | None

    @property
    def score(self) -> float:
        return self.found / self.asked if self.asked else 0.0


Ask = Callable[[str], Awaitable[Answer]]
"""A prompt -> the model's answer (its ``prompt_tokens`` are the server's count of the prompt;
`engines.evals.completions.ModelClient` on a real server)."""


async def run_cells(cells: Sequence[Cell], ask: Ask, count: Counter, seed: int = 1234,
                    parallel: int = 1) -> list[CellResult]:  # fmt: skip
    """Build, ask and score every cell (``parallel`` at a time); results in the cells' order. The haystack
    and needles of cell i come from ``seed + i``."""
    sem = asyncio.Semaphore(parallel)

    async def one(i: int, cell: Cell) -> CellResult:
        needles = make_needles(cell.needles, seed + i)
        prompt, n = await build_prompt(cell.target_tokens, needles, needle_depths(cell.needles, cell.depth),
                                       seed + i, count)  # fmt: skip
        async with sem:
            a = await ask(prompt)
        text, reported, error = a.text, a.prompt_tokens, a.error
        return CellResult(
            cell, n, reported, len(needles), found(text, needles) if error is None else 0, text, error
        )

    return list(await asyncio.gather(*(one(i, c) for i, c in enumerate(cells))))


def accuracy_by_length(results: Sequence[CellResult]) -> dict[float, float]:
    """Length fraction -> mean score over its cells (single and multi needle), answered cells only."""
    by: dict[float, list[float]] = {}
    for r in results:
        if r.error is None:
            by.setdefault(r.cell.length_fraction, []).append(r.score)
    return {f: sum(v) / len(v) for f, v in sorted(by.items())}


def heatmap(results: Sequence[CellResult]) -> dict[tuple[float, int], float]:
    """(depth, target tokens) -> score of the single-needle cells."""
    return {(r.cell.depth, r.cell.target_tokens): r.score for r in results
            if r.cell.depth is not None and r.error is None}  # fmt: skip


def needle_metrics(results: Sequence[CellResult]) -> dict[str, float]:
    """``accuracy`` (all answered cells), ``accuracy@<fraction>`` per length, ``multi_accuracy``."""
    ok = [r for r in results if r.error is None]
    if not ok:
        return {}
    out = {"accuracy": sum(r.score for r in ok) / len(ok)}
    out.update({f"accuracy@{f:g}": v for f, v in accuracy_by_length(ok).items()})
    multi = [r for r in ok if r.cell.needles > 1]
    if multi:
        out["multi_accuracy"] = sum(r.score for r in multi) / len(multi)
    return out


# ----------------------------------------------------------------------------------- llama-server glue


async def server_context_window(http: httpx.AsyncClient, base_url: str, headers: Mapping[str, str]) -> int:
    """The context window of one slot from ``<base_url>/props`` (a llama-server, or llama-swap's
    ``/upstream/<model>``); a clear error when it cannot be known."""
    try:
        resp = await http.get(base_url.rstrip("/") + "/props", headers=dict(headers), timeout=30)
        resp.raise_for_status()
        props = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ValueError(f"cannot read the context window from {base_url}/props: {exc}") from None
    n = context_window(props) if isinstance(props, dict) else None
    if n is None:
        raise ValueError(
            f"{base_url}/props does not say the context window (n_ctx); give it from the catalog"
        )
    return n


def server_counter(http: httpx.AsyncClient, base_url: str, headers: Mapping[str, str]) -> Counter:
    """Token counts from llama-server ``POST /tokenize`` (the model's own tokenizer)."""

    async def count(text: str) -> int:
        resp = await http.post(base_url.rstrip("/") + "/tokenize", json={"content": text}, headers=dict(headers),
                               timeout=60)  # fmt: skip
        resp.raise_for_status()
        return len(resp.json()["tokens"])

    return count


# ----------------------------------------------------------------------------------- a stored run's items


def cell_key(cell: Cell) -> str:
    where = f"d{cell.depth:g}" if cell.depth is not None else f"multi{cell.needles}"
    return f"L{cell.length_fraction:g}-{where}"


async def build_items(
    n_ctx: int, max_tokens: int, count: Counter, seed: int = 1234, parallel: int = 1
) -> list[tuple[str, str, str, dict[str, Any]]]:
    """The default grid on this window as run items: (key, category = length fraction, prompt, payload with
    the needles, depth and token counts). Reproducible: the same window, tokenizer and seed give the same
    items (so the same suite version). Cells too short to hold their question (a small window, a tokenizer
    of many tokens per word) are left out; none left is an error."""
    cells = grid(n_ctx, max_tokens)
    sem = asyncio.Semaphore(parallel)

    async def one(i: int, cell: Cell) -> tuple[str, str, str, dict[str, Any]] | None:
        needles = make_needles(cell.needles, seed + i)
        async with sem:
            try:
                prompt, n = await build_prompt(cell.target_tokens, needles,
                                               needle_depths(cell.needles, cell.depth), seed + i, count)  # fmt: skip
            except TooShort:
                return None
        payload = {"n_ctx": n_ctx, "target_tokens": cell.target_tokens, "length_fraction": cell.length_fraction,
                   "depth": cell.depth, "prompt_tokens": n,
                   "needles": [{"colour": x.colour, "thing": x.thing, "code": x.code} for x in needles]}  # fmt: skip
        return cell_key(cell), f"{cell.length_fraction:g}", prompt, payload

    built = [e for e in await asyncio.gather(*(one(i, c) for i, c in enumerate(cells))) if e is not None]
    if not built:
        raise ValueError(f"a {n_ctx}-token window is too small for any needle-in-a-haystack prompt")
    return built


def score_item(answer: str | None, payload: Mapping[str, Any]) -> tuple[int, int]:
    """(codes found, codes asked) of one stored item's answer."""
    needles = [Needle(str(x["colour"]), str(x["thing"]), str(x["code"])) for x in payload["needles"]]
    return found(answer, needles), len(needles)


def metrics_from_details(details: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """`needle_metrics` from stored verdict details (``found``, ``asked``, ``length_fraction``, ``depth``,
    ``target_tokens``)."""
    results = [
        CellResult(Cell(int(d["target_tokens"]), float(d["length_fraction"]),
                        None if d.get("depth") is None else float(d["depth"]), int(d["asked"])),
                   0, None, int(d["asked"]), int(d["found"]), None, None)
        for d in details
    ]  # fmt: skip
    return needle_metrics(results)
