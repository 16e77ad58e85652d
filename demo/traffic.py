"""Seeded synthetic clients for one simulated instance.

Each request is an ``InferenceCall`` handed to ``SimulatedInstance.infer`` — the same code path an HTTP request
takes — so activity rows, in-flight entries, captures, swaps and log lines all come from the simulator.
Arrivals are a Poisson process at ``requests_per_minute``; models are picked with Zipf-like popularity (so
swaps happen), prompts and outputs vary in length, some conversations continue (prompt-cache hits), a few
requests go to a model the host does not have, and a small share carries a fault (upstream error, crash,
failed start).

A benchmark takes the host over: `Takeover` is the instance's own view of that, fed by its HTTP front
(`demo.fleet`): every request carrying ``X-BooControl-Bench`` (the header BooControl's benchmark engine puts on
each connection it makes, its ``/api/events`` watch included) marks the host taken over while it is open and for
``grace_s`` after. While taken over the generator starts no new request, so the outstanding ones drain, the
host goes idle and the benchmark measures the host alone - like a real fleet whose clients were asked to pause.
The simulator reads nothing of the product: only the header on its own API.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from demo.simulator import WORDS, InferenceCall, SimulatedInstance

AGENTS = ("python-httpx/0.28.1", "OpenAI/Python 1.99.1", "curl/8.5.0", "open-webui/0.6.18",
          "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/140.0 Safari/537.36")
SYSTEM_PROMPTS = ("You are a helpful assistant.", "You are a senior Python reviewer. Answer tersely.",
                  "Reply in French.")


@dataclass(frozen=True)
class TrafficProfile:
    requests_per_minute: float = 6.0
    stream_ratio: float = 0.7
    completions_ratio: float = 0.1
    continue_ratio: float = 0.4
    unknown_model_ratio: float = 0.01
    error_rate: float = 0.02
    crash_rate: float = 0.005
    start_fail_rate: float = 0.01  # only bites when the request has to load its model
    max_outstanding: int = 8


BENCH_HEADER = "x-boocontrol-bench"


class Takeover:
    """Whether a benchmark holds this simulated host: a bench-tagged connection is open, or one ended less
    than ``grace_s`` ago."""

    def __init__(self, grace_s: float = 15.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.grace_s, self.clock = grace_s, clock
        self.open = 0
        self.until = float("-inf")
        self.paused_calls = 0  # demo requests not started because of a takeover

    def enter(self) -> None:
        self.open += 1
        self.until = max(self.until, self.clock() + self.grace_s)

    def leave(self) -> None:
        self.open -= 1
        self.until = max(self.until, self.clock() + self.grace_s)

    @property
    def active(self) -> bool:
        return self.open > 0 or self.clock() < self.until


@dataclass
class _Conversation:
    session: str
    model: str
    messages: list[dict[str, str]]


class TrafficGenerator:
    def __init__(self, sim: SimulatedInstance, seed: int, profile: TrafficProfile | None = None,
                 takeover: Takeover | None = None) -> None:
        self.sim, self.rng, self.profile = sim, random.Random(seed), profile or TrafficProfile()
        self.takeover = takeover
        names = sorted(sim.models)
        self.rng.shuffle(names)
        self.names = names
        self.weights = [1 / (rank + 1) ** 1.3 for rank in range(len(names))]
        self.clients = [f"10.{self.rng.randrange(256)}.{self.rng.randrange(256)}.{self.rng.randrange(2, 250)}"
                        for _ in range(4)]
        self.conversations: list[_Conversation] = []
        self.outstanding = 0

    def _text(self, mean_words: float) -> str:
        count = max(1, min(4000, int(self.rng.lognormvariate(0, 0.9) * mean_words)))
        return " ".join(self.rng.choices(WORDS, k=count))

    def next_call(self) -> InferenceCall:
        rng, p = self.rng, self.profile
        if self.conversations and rng.random() < p.continue_ratio:
            conv = rng.choice(self.conversations)
            conv.messages += [{"role": "assistant", "content": self._text(60)}, {"role": "user", "content": self._text(25)}]
        else:
            model = rng.choices(self.names, self.weights)[0] if self.names else "none"
            aliases = self.sim.models[model].spec.aliases if model in self.sim.models else ()
            if aliases and rng.random() < 0.3:
                model = rng.choice(aliases)
            if rng.random() < p.unknown_model_ratio:
                model = rng.choice(("gpt-4o", "llama3:8b", "qwen-7b-typo"))
            messages = [{"role": "system", "content": rng.choice(SYSTEM_PROMPTS)}] if rng.random() < 0.6 else []
            conv = _Conversation(f"sess-{rng.randrange(16**8):08x}", model,
                                 [*messages, {"role": "user", "content": self._text(40)}])
            self.conversations = [*self.conversations[-5:], conv]
        body: dict[str, Any] = {"model": conv.model}
        path = "/v1/chat/completions"
        if rng.random() < p.completions_ratio:
            path, body["prompt"] = "/v1/completions", conv.messages[-1]["content"]
        else:
            body["messages"] = conv.messages
        if rng.random() < 0.6:
            body["max_tokens"] = rng.choice((16, 64, 128, 256, 512))
        if rng.random() < p.stream_ratio:
            body["stream"] = True
            if rng.random() < 0.5:
                body["stream_options"] = {"include_usage": True}
        headers = {"Content-Type": "application/json", "User-Agent": rng.choice(AGENTS), "Accept": "*/*"}
        if rng.random() < 0.5:
            headers["X-Session-Id"] = conv.session
        if self.sim.api_keys:
            headers["Authorization"] = f"Bearer {self.sim.api_keys[0]}"
        roll, fault = rng.random(), None
        for name, rate in (("error", p.error_rate), ("crash", p.crash_rate), ("start-fail", p.start_fail_rate)):
            if roll < rate:
                fault = name
                break
            roll -= rate
        return InferenceCall(path, json.dumps(body).encode(), headers, rng.choice(self.clients), fault=fault)

    async def send(self, call: InferenceCall) -> int:
        """Run one call to completion like a client reading the whole response; returns the status."""
        started, size, status = time.monotonic(), 0, 0
        self.outstanding += 1
        try:
            reply = await self.sim.infer(call)
            status = reply.status
            async for chunk in reply.body:
                size += len(chunk)
            return status
        finally:
            self.outstanding -= 1
            self.sim.log_request(call.remote_ip, call.method, call.path, status, size,
                                 call.headers["User-Agent"], time.monotonic() - started)

    async def run(self) -> None:
        rate = self.profile.requests_per_minute / 60
        if rate <= 0:
            return
        while True:
            await asyncio.sleep(self.rng.expovariate(rate))
            if self.takeover is not None and self.takeover.active:
                self.takeover.paused_calls += 1
                continue
            if self.outstanding < self.profile.max_outstanding:
                self.sim.spawn(self.send(self.next_call()))
