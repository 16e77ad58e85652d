"""Exact-length prompts: built with the host's own tokenizer, verified against ``usage``.

llama-server exposes its tokenizer (``POST /tokenize {"content"} → {"tokens"}``, ``POST /detokenize
{"tokens"} → {"content"}``); through llama-swap the same endpoints sit under ``/upstream/<model>/``
(docs/llama-swap-api.md). A prompt of exactly N tokens as the server counts them (``usage.prompt_tokens``):

1. **The frame**: ``POST /apply-template`` with a marker as the user message gives the chat template's
   text before and after the content (``head``, ``tail``). A prompt is counted the way the server counts
   it: ``len(tokenize(head + content + tail, add_special=true))`` — the tokens at the content's edges are
   merged exactly as in the real request (counting the content alone is off by one token for some first
   characters with SentencePiece vocabularies).
2. **Content**: random words (with the request's unique prefix) comfortably longer than needed are
   tokenized, cut to the first k tokens and detokenized (a leading space the detokenizer adds, as
   SentencePiece's word-start marker, is removed); the framed count of that text decides: the cut moves by
   the difference until the count is exactly N (at most ``MAX_TRIES`` tries, else `ExactLengthError`).

The request's ``usage.prompt_tokens`` is stored beside its target (``bench_requests``), and the point
counts the requests where they differ (``PointSummary.length_mismatches``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from engines.bench.workload import RequestSpec, prompt_text

MAX_TRIES = 8
MARKER = "\u2063BOOCONTROL-CONTENT\u2063"


class ExactLengthError(RuntimeError):
    """The tokenizer could not produce the exact count (reported, never silently approximated)."""


class Tokenizer(Protocol):
    async def tokenize(self, text: str, add_special: bool = False) -> list[int]: ...
    async def detokenize(self, tokens: Sequence[int]) -> str: ...
    async def frame(self, before: Sequence[Mapping[str, str]] = ()) -> tuple[str, str]: ...


@dataclass
class ServerTokenizer:
    """llama-server's tokenizer at ``base`` (``…/upstream/<model>`` through llama-swap, or the server itself)."""

    client: httpx.AsyncClient
    base: str
    headers: Mapping[str, str]
    timeout_s: float = 30.0

    async def _post(self, path: str, body: Mapping[str, Any]) -> Any:
        for attempt in range(3):
            try:
                resp = await self.client.post(
                    self.base.rstrip("/") + path, json=dict(body), headers=dict(self.headers), timeout=self.timeout_s
                )
                break
            except (httpx.RemoteProtocolError, httpx.ConnectError):
                # a kept-alive connection the server closed after a streamed answer: tokenizing is idempotent
                if attempt == 2:
                    raise
        resp.raise_for_status()
        return resp.json()

    async def tokenize(self, text: str, add_special: bool = False) -> list[int]:
        data = await self._post("/tokenize", {"content": text, "add_special": add_special})
        return [int(t) for t in data["tokens"]]

    async def detokenize(self, tokens: Sequence[int]) -> str:
        return str((await self._post("/detokenize", {"tokens": list(tokens)}))["content"])

    async def frame(self, before: Sequence[Mapping[str, str]] = ()) -> tuple[str, str]:
        """The template's text around the last user message, after the messages ``before`` it (a system
        prompt, earlier turns)."""
        messages = [*(dict(m) for m in before), {"role": "user", "content": MARKER}]
        data = await self._post("/apply-template", {"messages": messages})
        prompt = str(data["prompt"])
        if prompt.count(MARKER) != 1:
            raise ExactLengthError("the chat template does not place the user message verbatim")
        head, tail = prompt.split(MARKER)
        return head, tail


async def probe(tok: Tokenizer) -> tuple[str, str] | None:
    """The template frame when the host has a llama-server tokenizer; None otherwise (no exact lengths)."""
    try:
        head, tail = await tok.frame()
        await tok.tokenize("probe")
    except (httpx.HTTPError, ValueError, KeyError, TypeError, ExactLengthError):
        return None
    return head, tail


async def prompt_tokens(tok: Tokenizer, frame: tuple[str, str], content: str) -> int:
    """``usage.prompt_tokens`` the server will report for ``content`` as the only user message."""
    return len(await tok.tokenize(frame[0] + content + frame[1], add_special=True))


async def exact_text(
    tok: Tokenizer, frame: tuple[str, str], rng: random.Random, n_tokens: int, prefix: str
) -> str:
    """User-message text for which the server reports exactly ``n_tokens`` prompt tokens."""
    overhead = await prompt_tokens(tok, frame, "")
    if n_tokens <= overhead:
        raise ExactLengthError(f"{n_tokens} prompt tokens is not more than the chat template's {overhead}")
    want = n_tokens - overhead
    text = prompt_text(rng, want + 16, prefix)  # every word is at least one token
    tokens = await tok.tokenize(text)
    while len(tokens) < want + 8:  # a tokenizer that merges words: add more text
        text += " " + prompt_text(rng, want, "").strip()
        tokens = await tok.tokenize(text)
    k = want
    got: int | None = None
    for _ in range(MAX_TRIES):
        k = max(1, min(k, len(tokens)))
        cand = await tok.detokenize(tokens[:k])
        if cand.startswith(" ") and not text.startswith(" "):
            cand = cand[1:]
        got = await prompt_tokens(tok, frame, cand)
        if got == n_tokens:
            return cand
        k += n_tokens - got
    raise ExactLengthError(f"could not build a prompt of exactly {n_tokens} tokens (last try: {got})")


async def exact_requests(
    specs: Sequence[RequestSpec], tok: Tokenizer, frame: tuple[str, str], seed: int
) -> list[RequestSpec]:
    """The same requests with prompts of exactly ``input_tokens`` as the server counts them, each keeping
    its unique prefix (so no two requests share a cacheable start).

    A request with messages before its last user message (the shared-prefix workload's system prompt, the
    earlier turns of a multi-turn conversation) is counted in its own frame, the template applied to those
    messages: its user text is cut so that the whole prompt — system, history and all — is exactly
    ``input_tokens``. Conversations are built in order: a later turn carries the exact texts its earlier turns
    were sent with. A target not above what the messages before already take is raised to that + 1 token."""
    rng = random.Random(seed)
    frames: dict[tuple[object, ...], tuple[str, str]] = {(): frame}
    sent_as: dict[str, str] = {}  # a user text as built -> as sent (earlier turns of a conversation)
    out = []
    for s in specs:
        history = tuple((sent_as.get(user, user), answer) for user, answer in s.history)
        key: tuple[object, ...] = () if s.system is None and not history else (s.system, history)
        if key not in frames:
            before = RequestSpec(s.index, "", 0, 0, system=s.system, history=history).messages()[:-1]
            frames[key] = await tok.frame(before)
        fr = frames[key]
        prefix = s.prompt.split(" ", 1)[0]
        n = max(await prompt_tokens(tok, fr, "") + 1, s.input_tokens)
        text = await exact_text(tok, fr, rng, n, prefix)
        sent_as[s.prompt] = text
        out.append(RequestSpec(s.index, text, n, s.output_tokens, system=s.system, history=history))
    return out
