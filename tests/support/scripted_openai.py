"""A small real HTTP server (Starlette on uvicorn, in a thread) answering chat completions from a script.

It stands in for a model whose answers are known, so eval scores can be asserted exactly. It speaks what the
eval engine uses of a bare llama-server: ``POST /v1/chat/completions`` (non-streaming, with ``usage``),
``GET /v1/models``, ``GET /props`` (``model_path``, ``total_slots``, ``build_info``: change
``server.state.model_path`` to simulate a swapped model file; ``n_ctx`` when ``state.n_ctx`` is set),
``POST /tokenize`` (one token per whitespace word, as its ``usage`` counts) and ``GET /slots`` (the idle gate). Every
completion request is recorded (its user message and seed), so tests count what was asked.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.threaded_server import serve_in_thread

Script = Callable[[str, int], str]  # (user message, seed) -> answer text


@dataclass
class ScriptState:
    model_path: str = "/models/scripted-q4.gguf"
    total_slots: int = 2
    build_info: str = "b9999-scripted"
    delay_s: float = 0.0  # per completion (lets a test stop a run mid-suite)
    n_ctx: int | None = None  # when set: /props default_generation_settings.n_ctx (one slot's window)
    asked: list[tuple[str, int]] = field(default_factory=list)  # (user message, seed) per completion
    in_flight: int = 0
    peak_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, needle: str) -> int:
        return sum(1 for m, _ in self.asked if needle in m)


@dataclass(frozen=True)
class ScriptedServer:
    base_url: str
    state: ScriptState


@contextmanager
def run_scripted_server(script: Script, state: ScriptState | None = None) -> Iterator[ScriptedServer]:
    st = state or ScriptState()

    async def completions(request: Request) -> JSONResponse:
        body: dict[str, Any] = await request.json()
        msg = str(body["messages"][-1]["content"])
        seed = int(body.get("seed") or 0)
        with st.lock:
            st.asked.append((msg, seed))
            st.in_flight += 1
            st.peak_in_flight = max(st.peak_in_flight, st.in_flight)
        try:
            if st.delay_s:
                await asyncio.sleep(st.delay_s)
            text = script(msg, seed)
        finally:
            with st.lock:
                st.in_flight -= 1
        return JSONResponse({
            "id": "chatcmpl-scripted", "object": "chat.completion", "model": body.get("model"),
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": len(msg.split()), "completion_tokens": len(text.split()),
                      "total_tokens": len(msg.split()) + len(text.split())},
        })  # fmt: skip

    async def models(request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": "scripted", "object": "model"}]})

    async def props(request: Request) -> JSONResponse:
        body = {"model_path": st.model_path, "total_slots": st.total_slots, "build_info": st.build_info}
        if st.n_ctx is not None:
            body["default_generation_settings"] = {"n_ctx": st.n_ctx}
        return JSONResponse(body)

    async def tokenize(request: Request) -> JSONResponse:  # one token per whitespace word, like usage above
        content = str((await request.json()).get("content", ""))
        return JSONResponse({"tokens": list(range(len(content.split())))})

    async def slots(request: Request) -> JSONResponse:
        return JSONResponse([{"id": i, "is_processing": False} for i in range(st.total_slots)])

    app = Starlette(routes=[
        Route("/v1/chat/completions", completions, methods=["POST"]),
        Route("/v1/models", models), Route("/props", props), Route("/slots", slots),
        Route("/tokenize", tokenize, methods=["POST"]),
    ])  # fmt: skip
    with serve_in_thread(app, "the scripted OpenAI-compatible server") as base_url:
        yield ScriptedServer(base_url, st)
