"""A small real HTTP server (Starlette on uvicorn, in a thread) answering ``GET /v1/models`` in a given shape.

It stands in for OpenAI-compatible servers that cannot run here (vLLM needs a GPU, cloud APIs need an
account): the connector reaches it over TCP exactly as it reaches them. ``VLLM_MODELS`` and
``DEEPSEEK_MODELS`` are those servers' documented answers. With ``api_key`` set it answers 401 (OpenAI's
error body) to any other ``Authorization``; every request's path and whether its key matched is counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.threaded_server import serve_in_thread

# vLLM 0.6+ `GET /v1/models` (vllm/entrypoints/openai/protocol.py ModelCard): the base model and a LoRA adapter.
VLLM_MODELS: dict[str, Any] = {
    "object": "list",
    "data": [
        {"id": "Qwen/Qwen2.5-7B-Instruct", "object": "model", "created": 1733000000, "owned_by": "vllm",
         "root": "/models/Qwen2.5-7B-Instruct", "parent": None, "max_model_len": 32768,
         "permission": [{"id": "modelperm-1", "object": "model_permission", "created": 1733000000,
                         "allow_create_engine": False, "allow_sampling": True, "allow_logprobs": True,
                         "allow_search_indices": False, "allow_view": True, "allow_fine_tuning": False,
                         "organization": "*", "group": None, "is_blocking": False}]},
        {"id": "sql-lora", "object": "model", "created": 1733000000, "owned_by": "vllm",
         "root": "/adapters/sql-lora", "parent": "Qwen/Qwen2.5-7B-Instruct", "max_model_len": 32768,
         "permission": []},
    ],
}

# DeepSeek's `GET /models`: no context window at all (the catalog must say NULL, not a guess).
DEEPSEEK_MODELS: dict[str, Any] = {
    "object": "list",
    "data": [
        {"id": "deepseek-chat", "object": "model", "owned_by": "deepseek"},
        {"id": "deepseek-reasoner", "object": "model", "owned_by": "deepseek"},
    ],
}


@dataclass
class Seen:
    requests: list[tuple[str, bool]] = field(default_factory=list)  # (path, key matched)

    def count(self, path: str = "/v1/models") -> int:
        return sum(1 for p, _ in self.requests if p == path)


@dataclass(frozen=True)
class ModelsServer:
    base_url: str
    seen: Seen


@contextmanager
def run_models_server(body: dict[str, Any], api_key: str | None = None) -> Iterator[ModelsServer]:
    seen = Seen()

    async def models(request: Request) -> JSONResponse:
        ok = api_key is None or request.headers.get("authorization") == f"Bearer {api_key}"
        seen.requests.append((request.url.path, ok))
        if not ok:
            return JSONResponse({"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error",
                                           "param": None, "code": "invalid_api_key"}}, status_code=401)
        return JSONResponse(body)

    app = Starlette(routes=[Route("/v1/models", models)])
    with serve_in_thread(app, "the /v1/models test server") as base_url:
        yield ModelsServer(base_url, seen)
