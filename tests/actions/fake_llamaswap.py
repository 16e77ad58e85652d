"""An in-process fake of the llama-swap endpoints actions use, for httpx.MockTransport."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class FakeLlamaSwap:
    models: dict[str, str] = field(default_factory=lambda: {"qwen": "stopped", "llama": "stopped"})
    load_s: float = 0.0
    unload_s: float = 0.0
    inflight: set[str] = field(default_factory=set)
    captures: dict[int, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str, float, float]] = field(default_factory=list)  # (method, path, start, end)
    seen_auth: list[str | None] = field(default_factory=list)
    error_text: str | None = None  # when set, mutating calls fail with this 500 message

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        t0 = time.monotonic()
        self.seen_auth.append(request.headers.get("authorization"))
        resp = await self._route(request)
        self.calls.append((request.method, request.url.path, t0, time.monotonic()))
        return resp

    def _err(self, status: int, msg: str) -> httpx.Response:
        return httpx.Response(status, json={"src": "llama-swap", "error": {"message": msg}})

    async def _route(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if path == "/wol-health":
            return httpx.Response(200, text="OK")
        if path == "/running":
            running = [
                {"model": m, "state": s, "cmd": "llama-server --api-key sk-secret-cmdline"}
                for m, s in sorted(self.models.items())
                if s != "stopped"
            ]
            return httpx.Response(200, json={"running": running})
        if self.error_text and method == "POST":
            return self._err(500, self.error_text)
        if path.startswith("/upstream/") and method == "GET":
            model = path[len("/upstream/") :].rstrip("/")
            if model not in self.models:
                return self._err(404, "model not found")
            if self.models[model] != "ready":
                for other in self.models:  # one model at a time, like llama-swap's default group
                    self.models[other] = "stopped"
                self.models[model] = "starting"
                await asyncio.sleep(self.load_s)
                self.models[model] = "ready"
            return httpx.Response(200, text="<html>llama-server</html>")
        if path == "/api/models/unload" and method == "POST":
            await asyncio.sleep(self.unload_s)
            for m in self.models:
                self.models[m] = "stopped"
            return httpx.Response(200, json={"msg": "ok"})
        if path.startswith("/api/models/unload/") and method == "POST":
            model = path[len("/api/models/unload/") :]
            if model not in self.models:
                return self._err(404, "model not found")
            await asyncio.sleep(self.unload_s)
            self.models[model] = "stopped"
            return httpx.Response(200, text="OK")
        if path.startswith("/api/inflight/") and path.endswith("/cancel"):
            rid = path.split("/")[3]
            if rid not in self.inflight:
                return self._err(404, "request not found")
            self.inflight.discard(rid)
            return httpx.Response(200, json={"msg": "ok"})
        if path.startswith("/api/captures/"):
            cid = int(path.rsplit("/", 1)[1])
            if cid not in self.captures:
                return self._err(404, "capture not found")
            return httpx.Response(
                200,
                content=json.dumps(self.captures[cid]).encode(),
                headers={"content-type": "application/json"},
            )
        return self._err(404, f"no route {path}")


def capture_payload(cid: int, answer: str) -> dict[str, Any]:
    chunks = "".join(
        f"data: {json.dumps({'choices': [{'index': 0, 'delta': {'content': w}}]})}\n\n"
        for w in answer.split(" ")
    )
    return {
        "id": cid,
        "req_path": "/v1/chat/completions",
        "req_headers": {"Content-Type": "application/json", "Authorization": "Bearer sk-should-not-persist"},
        "req_body": base64.b64encode(b'{"model":"qwen","stream":true}').decode(),
        "resp_headers": {"Content-Type": "text/event-stream"},
        "resp_body": base64.b64encode(chunks.encode() + b"data: [DONE]\n\n").decode(),
    }
