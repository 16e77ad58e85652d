"""Workloads: which requests a sweep point sends, and when.

* **Synthetic**: prompt and output lengths drawn from clamped normal distributions
  (`LengthDist`: mean, stdev, min, max). Prompts are random words drawn from a per-run seed and start
  with a unique prefix per request, so llama.cpp's per-slot prompt cache (and any prefix cache) can
  only reuse the chat-template tokens that precede the user text.
* **Production-shaped** (`ReplayWorkload`): (input, output) length pairs sampled jointly, with
  replacement, from a provider's stored activity for that model.
* **Arrivals**: closed loop (N workers, each sends its next request when the previous one ends) or
  open loop at a rate, constant or Poisson. Poisson inter-arrivals are rescaled so the whole schedule
  lasts exactly N / rate (vLLM's trick that removes seed noise from the offered rate).

* **Shared prefix** (`SharedPrefixWorkload`): every request of a point starts with the same long system
  prompt (byte for byte), then its own unique user text: the first request pays the prefill of the prefix,
  the rest can reuse the server's prompt cache. A point reports TTFT of the first request against the
  rest (`engines.bench.metrics.PointSummary.ttft_first_ms` / ``ttft_rest_p50_ms``).
* **Multi-turn** (`MultiTurnWorkload`): conversations of ``turns`` requests; turn k sends turns 1..k−1
  (user text and the previous answers, generated text of the output length) and then its own user text.
  The answers in the history are generated from the seed, not the server's actual answers, so request
  bodies are fixed by the seed; a prefix cache can reuse each conversation up to its last user message.
* **Text**: ``words`` (random common words) or ``corpus``: readable English-like sentences from a small
  grammar the project owns (`corpus_text`), deterministic for a seed; no outside text.

Lengths are in tokens. Prompt text is built from words; `TokenCalibration` maps a target token
count to a word count (fitted per run from two warm-up requests, see `fit_calibration`). The server's
``usage`` is what is recorded, so calibration error changes the workload a little, never the metrics.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

# Short, common words: real tokenizers map most of them to one token (with a leading space).
WORDS: tuple[str, ...] = tuple(
    (
        "the be to of and a in that have it for not on with he as you do at this but his by from they we "
        "say her she or an will my one all would there their what so up out if about who get which go me "
        "when make can like time no just him know take people into year your good some could them see "
        "other than then now look only come its over think also back after use two how our work first "
        "well way even new want because any these give day most us is are was were hello world model "
        "token test llama swap server request response fleet cockpit assistant user system water light "
        "river stone green paper music table window garden number story city night house field cloud "
        "letter morning winter summer road market school family friend question answer power color"
    ).split()
)


TextStyle = Literal["words", "corpus"]

# The corpus grammar: plain vocabulary written for this project.
_DET = ("the", "a", "every", "this", "that", "one", "each", "our", "their", "some")
_ADJ = (
    "quiet", "bright", "old", "narrow", "green", "small", "heavy", "early", "late", "warm", "cold", "busy",
    "careful", "simple", "open", "distant", "gentle", "clear", "steady", "curious",
)  # fmt: skip
_NOUN = (
    "river", "garden", "engineer", "letter", "window", "market", "server", "village", "teacher", "bridge",
    "machine", "story", "harbor", "student", "road", "library", "kitchen", "farmer", "cloud", "report",
    "model", "train", "forest", "question", "morning", "tower", "painter", "signal", "island", "table",
)  # fmt: skip
_VERB = (
    "watches", "carries", "finds", "builds", "follows", "opens", "answers", "measures", "remembers",
    "crosses", "writes", "repairs", "visits", "describes", "keeps", "reaches", "counts", "paints",
)  # fmt: skip
_PREP = ("near", "under", "behind", "beside", "across", "over", "after", "before", "inside", "around")
_ADV = ("slowly", "again", "often", "today", "carefully", "at last", "once more", "without a word")
_CONJ = ("and", "but", "while", "because", "so")


def _phrase(rng: random.Random) -> list[str]:
    words = [rng.choice(_DET)]
    if rng.random() < 0.6:
        words.append(rng.choice(_ADJ))
    words.append(rng.choice(_NOUN))
    return words


def _clause(rng: random.Random) -> list[str]:
    words = [*_phrase(rng), rng.choice(_VERB), *_phrase(rng)]
    if rng.random() < 0.5:
        words += [rng.choice(_PREP), *_phrase(rng)]
    if rng.random() < 0.3:
        words += rng.choice(_ADV).split()
    return words


def corpus_text(rng: random.Random, words: int) -> str:
    """About ``words`` words (exactly, counting whitespace-separated pieces) of readable English-like
    sentences: capitalised, with commas and full stops, drawn from the seed of ``rng``."""
    out: list[str] = []
    while len(out) < words:
        sentence = _clause(rng)
        if rng.random() < 0.4:
            sentence[-1] += ","
            sentence += [rng.choice(_CONJ), *_clause(rng)]
        sentence[0] = sentence[0].capitalize()
        sentence[-1] += "."
        out += sentence
    out = out[:words]
    if out and not out[-1].endswith("."):
        out[-1] = out[-1].rstrip(",") + "."
    return " ".join(out)


@dataclass(frozen=True)
class LengthDist:
    """A clamped, rounded normal distribution of token counts (stdev 0 = fixed length)."""

    mean: float
    stdev: float = 0.0
    min: int = 1
    max: int | None = None

    def __post_init__(self) -> None:
        if self.mean < 1 or self.stdev < 0 or self.min < 1:
            raise ValueError(f"invalid length distribution {self}")
        if self.max is not None and self.max < self.min:
            raise ValueError(f"max {self.max} < min {self.min}")

    def sample(self, rng: random.Random) -> int:
        x = rng.gauss(self.mean, self.stdev) if self.stdev > 0 else self.mean
        n = max(self.min, int(round(x)))
        return min(n, self.max) if self.max is not None else n


def _sample_lengths(prompt: LengthDist, output: LengthDist, n: int, rng: random.Random) -> list[tuple[int, int]]:
    """``n`` (prompt, output) token counts, each pair drawn prompt first (the order fixes the seeded stream)."""
    return [(prompt.sample(rng), output.sample(rng)) for _ in range(n)]


def _describe_lengths(kind: str, prompt: LengthDist, output: LengthDist, **extra: object) -> dict[str, object]:
    """The description of a workload of sampled lengths: kind, both distributions, then ``extra`` in order."""
    return {"kind": kind, "prompt": prompt.__dict__, "output": output.__dict__, **extra}


@dataclass(frozen=True)
class SyntheticWorkload:
    prompt: LengthDist
    output: LengthDist
    kind: Literal["synthetic"] = "synthetic"
    text: TextStyle = "words"

    def lengths(self, n: int, rng: random.Random) -> list[tuple[int, int]]:
        return _sample_lengths(self.prompt, self.output, n, rng)

    def describe(self) -> dict[str, object]:
        d = _describe_lengths(self.kind, self.prompt, self.output)
        if self.text != "words":  # absent for the default, so earlier runs keep their workload key
            d["text"] = self.text
        return d


@dataclass(frozen=True)
class SharedPrefixWorkload:
    """Every request of a point: the same system prompt of ``prefix_tokens`` (estimated), then its own user
    text of ``prompt`` tokens."""

    prompt: LengthDist
    output: LengthDist
    prefix_tokens: int = 1024
    kind: Literal["shared-prefix"] = "shared-prefix"
    text: TextStyle = "words"

    def __post_init__(self) -> None:
        if self.prefix_tokens < 1:
            raise ValueError(f"shared prefix must be at least 1 token, got {self.prefix_tokens}")

    def lengths(self, n: int, rng: random.Random) -> list[tuple[int, int]]:
        return _sample_lengths(self.prompt, self.output, n, rng)

    def describe(self) -> dict[str, object]:
        return _describe_lengths(self.kind, self.prompt, self.output, prefix_tokens=self.prefix_tokens, text=self.text)


@dataclass(frozen=True)
class MultiTurnWorkload:
    """Conversations of ``turns`` requests; request i is turn i % turns of conversation i // turns, and
    carries every earlier turn of its conversation (user text and answer) before its own user text."""

    prompt: LengthDist
    output: LengthDist
    turns: int = 4
    kind: Literal["multi-turn"] = "multi-turn"
    text: TextStyle = "words"

    def __post_init__(self) -> None:
        if self.turns < 1:
            raise ValueError(f"a conversation needs at least 1 turn, got {self.turns}")

    def lengths(self, n: int, rng: random.Random) -> list[tuple[int, int]]:
        return _sample_lengths(self.prompt, self.output, n, rng)

    def describe(self) -> dict[str, object]:
        return _describe_lengths(self.kind, self.prompt, self.output, turns=self.turns, text=self.text)


@dataclass(frozen=True)
class ReplayWorkload:
    """(input_tokens, output_tokens) pairs observed in production, sampled jointly with replacement."""

    pairs: tuple[tuple[int, int], ...]
    source: str = "activity"
    max_prompt: int | None = None
    max_output: int | None = None
    kind: Literal["replay"] = "replay"
    text: TextStyle = "words"

    def __post_init__(self) -> None:
        if not self.pairs:
            raise ValueError("a production-shaped workload needs at least one stored (input, output) pair")

    def lengths(self, n: int, rng: random.Random) -> list[tuple[int, int]]:
        out = []
        for _ in range(n):
            p, o = self.pairs[rng.randrange(len(self.pairs))]
            p, o = max(1, p), max(1, o)
            if self.max_prompt is not None:
                p = min(p, self.max_prompt)
            if self.max_output is not None:
                o = min(o, self.max_output)
            out.append((p, o))
        return out

    def describe(self) -> dict[str, object]:
        ps = sorted(p for p, _ in self.pairs)
        os_ = sorted(o for _, o in self.pairs)
        return {
            "kind": self.kind,
            "source": self.source,
            "pairs": len(self.pairs),
            "prompt_median": ps[len(ps) // 2],
            "output_median": os_[len(os_) // 2],
            "max_prompt": self.max_prompt,
            "max_output": self.max_output,
        } | ({"text": self.text} if self.text != "words" else {})


Workload = SyntheticWorkload | ReplayWorkload | SharedPrefixWorkload | MultiTurnWorkload


@dataclass(frozen=True)
class TokenCalibration:
    """prompt_tokens ≈ overhead + per_word · words (chat template + tokenizer of the model under test)."""

    overhead: float = 10.0
    per_word: float = 1.3

    def words_for(self, tokens: int) -> int:
        return max(1, int(round((tokens - self.overhead) / self.per_word)))


def fit_calibration(w1: int, t1: int, w2: int, t2: int) -> TokenCalibration:
    """Fit the linear map from two (words, prompt_tokens) observations; falls back to the default."""
    if w2 == w1 or t2 <= t1:
        return TokenCalibration()
    per_word = (t2 - t1) / (w2 - w1)
    return TokenCalibration(overhead=max(0.0, t1 - per_word * w1), per_word=per_word)


@dataclass(frozen=True)
class RequestSpec:
    index: int
    prompt: str  # the last user message
    input_tokens: int  # target (of the whole prompt, system and history included)
    output_tokens: int  # target (max_tokens)
    system: str | None = None  # a system message before everything (shared-prefix workload)
    history: tuple[tuple[str, str], ...] = ()  # earlier (user, assistant) turns (multi-turn workload)

    def messages(self) -> list[dict[str, str]]:
        """The chat messages of the request, in order."""
        out = [{"role": "system", "content": self.system}] if self.system is not None else []
        for user, answer in self.history:
            out += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
        out.append({"role": "user", "content": self.prompt})
        return out


def prompt_text(rng: random.Random, words: int, prefix: str, text: TextStyle = "words") -> str:
    n = max(0, words - 1)
    body = corpus_text(rng, n) if text == "corpus" else " ".join(rng.choice(WORDS) for _ in range(n))
    return f"{prefix} {body}".rstrip()


def build_requests(
    workload: Workload,
    n: int,
    seed: int,
    tag: str,
    calibration: TokenCalibration | None = None,
) -> list[RequestSpec]:
    """``n`` requests for one point. ``tag`` (run uid + point) makes every prefix unique across runs."""
    cal = calibration or TokenCalibration()
    rng = random.Random(seed)
    style: TextStyle = getattr(workload, "text", "words")
    system = None
    if isinstance(workload, SharedPrefixWorkload):  # drawn first: one text for the whole point
        system = prompt_text(rng, cal.words_for(workload.prefix_tokens), f"{tag}-system:", style)
    specs: list[RequestSpec] = []
    for i, (p, o) in enumerate(workload.lengths(n, rng)):
        # Random bits first: a prefix shared by the requests of a run would be a cache hit.
        prefix = f"{rng.getrandbits(32):08x}-{tag}-{i:05d}:"
        text = prompt_text(rng, cal.words_for(p), prefix, style)
        if isinstance(workload, SharedPrefixWorkload):
            specs.append(RequestSpec(i, text, workload.prefix_tokens + p, o, system=system))
        elif isinstance(workload, MultiTurnWorkload):
            history: tuple[tuple[str, str], ...] = ()
            earlier = 0
            if i % workload.turns:  # extends the conversation's previous turn with that turn's answer
                last = specs[i - 1]
                answer = prompt_text(rng, 1 + max(1, int(last.output_tokens / cal.per_word)), "", style).strip()
                history = (*last.history, (last.prompt, answer))
                earlier = last.input_tokens + last.output_tokens
            specs.append(RequestSpec(i, text, earlier + p, o, history=history))
        else:
            specs.append(RequestSpec(i, text, p, o))
    return specs


Arrival = Literal["constant", "poisson"]


def arrival_offsets(n: int, rate: float, arrival: Arrival, seed: int, rescale: bool = True,
                    burstiness: float = 1.0) -> list[float]:
    """Send offsets (seconds from the point's start) of ``n`` open-loop requests at ``rate`` req/s.

    ``constant``: i / rate. ``poisson``: cumulative random gaps (seeded), gamma-distributed with shape
    ``burstiness`` and mean 1 / rate — vLLM bench's burstiness factor: 1 is a Poisson process (exponential gaps,
    the same draws as before the factor existed), below 1 burstier (coefficient of variation of the gaps
    1/√burstiness: clusters and long pauses), above 1 more regular. With ``rescale`` the gaps are scaled so
    the schedule spans exactly n / rate like the constant one (the offered rate is exact, whatever the draws).
    """
    if n <= 0:
        return []
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"rate must be a positive finite number, got {rate}")
    if not (burstiness > 0 and math.isfinite(burstiness)):
        raise ValueError(f"burstiness must be a positive finite number, got {burstiness}")
    if arrival == "constant":
        return [i / rate for i in range(n)]
    if arrival != "poisson":
        raise ValueError(f"unknown arrival process {arrival!r}")
    rng = random.Random(seed)
    if burstiness == 1.0:
        gaps = [rng.expovariate(rate) for _ in range(n)]
    else:
        gaps = [rng.gammavariate(burstiness, 1.0 / (rate * burstiness)) for _ in range(n)]
    if rescale:
        total = sum(gaps)
        gaps = [g * (n / rate) / total for g in gaps]
    # The first request goes out at t = 0; gap i separates request i from request i + 1.
    offsets = [0.0]
    for g in gaps[:-1]:
        offsets.append(offsets[-1] + g)
    return offsets


def parse_levels(text: str | Sequence[float]) -> list[float]:
    """``"1,2,4"`` or ``[1, 2, 4]`` → sorted unique positive numbers."""
    items: Sequence[float | str] = text.split(",") if isinstance(text, str) else text
    vals = sorted({float(x) for x in items if str(x).strip()})
    if not vals or any(v <= 0 for v in vals):
        raise ValueError(f"levels must be positive numbers, got {text!r}")
    return vals
