"""One chat completion on an OpenAI-compatible server: the single HTTP call of the eval engine.

Every suite (the runner's items, the agentic turns, the needle cells, the utility calls), the judge, pairwise
comparison and calibration ask a model through `ask` (a transport or HTTP error comes back in
``Answer.error``, never raised); `ModelClient` is that call bound to one model, its endpoint and its sampling,
for the engines that take a callable (`engines.evals.agentic.Chat`, `engines.evals.needle.Ask`,
`engines.evals.utility.Ask`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class Answer:
    text: str | None
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: float
    timings: dict[str, Any] | None
    error: str | None


async def ask(
    client: httpx.AsyncClient,
    url: str,
    headers: Mapping[str, str],
    model_id: str,
    prompt: str | Sequence[Mapping[str, str]],
    sampling: Mapping[str, Any],
    seed: int,
    timeout_s: float,
) -> Answer:
    """One non-streaming chat completion of a user prompt (or of a whole conversation, a list of messages); a
    transport or HTTP error is returned in ``error``, never raised."""
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]
    body = {
        "model": model_id,
        "messages": messages,
        "temperature": sampling["temperature"],
        "top_p": sampling["top_p"],
        "seed": seed,
        "max_tokens": sampling["max_tokens"],
        "stream": False,
    }
    t0 = time.perf_counter()
    try:
        try:
            resp = await client.post(url, json=body, headers=dict(headers), timeout=timeout_s)
        except (httpx.RemoteProtocolError, httpx.ReadError):
            # a kept-alive connection the server closed or reset meanwhile (uvicorn does after an error response on
            # it): the same request (fixed seed, so the same answer) is sent once more, on a fresh connection
            resp = await client.post(url, json=body, headers=dict(headers), timeout=timeout_s)
    except httpx.HTTPError as exc:
        return Answer(None, None, None, None, (time.perf_counter() - t0) * 1000, None,
                      f"{type(exc).__name__}: {exc}")  # fmt: skip
    ms = (time.perf_counter() - t0) * 1000
    if resp.status_code != 200:
        return Answer(None, None, None, None, ms, None, f"HTTP {resp.status_code}: {resp.text[:300]}")
    try:
        data = resp.json()
        choice = data["choices"][0]
        text = choice["message"].get("content") or ""
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        return Answer(None, None, None, None, ms, None, f"unreadable completion: {exc!r}")
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    timings = data.get("timings") if isinstance(data.get("timings"), dict) else None
    return Answer(str(text), choice.get("finish_reason"), usage.get("prompt_tokens"),
                  usage.get("completion_tokens"), ms, timings, None)  # fmt: skip


@dataclass(frozen=True)
class ModelClient:
    """`ask` bound to one model: call it with a user prompt or a list of messages."""

    http: httpx.AsyncClient
    url: str  # the model's chat-completions URL
    model_id: str
    sampling: Mapping[str, Any]
    seed: int
    timeout_s: float
    headers: Mapping[str, str] = field(default_factory=dict)

    async def __call__(self, prompt: str | Sequence[Mapping[str, str]]) -> Answer:
        return await ask(self.http, self.url, self.headers, self.model_id, prompt, self.sampling, self.seed,
                         self.timeout_s)  # fmt: skip
