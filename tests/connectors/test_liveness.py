"""A host that answered a poll within the liveness window needs no /wol-health probe (one request in five less per
host); an answer from something in front of it (HTTP 5xx) is no such sign."""

from __future__ import annotations

import asyncio
import time

import httpx

from connectors.llama_swap_api import LlamaSwapAPI, LlamaSwapError
from core.providers import Provider


def test_recently_answered_counts_answers_below_500_only() -> None:
    status = {"/api/version": 200, "/api/performance": 503, "/api/captures/3": 404}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status[request.url.path], json={"version": "v250"})

    async def main() -> list[object]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            api = LlamaSwapAPI(Provider(id="p", label="p", base_url="http://ls"), client)
            seen: list[object] = [api.recently_answered(15)]
            try:
                await api.performance()
            except LlamaSwapError:
                pass
            seen.append(api.recently_answered(15))  # a 503 alone: no sign of life
            before = time.time()
            assert await api.capture(3) is None  # a 404 is the instance answering
            got = api.recently_answered(15)
            seen.append(got is not None and before <= got <= time.time())
            seen.append(api.recently_answered(0))  # outside any window
            await api.version()
            seen.append(api.recently_answered(15) is not None)
            return seen

    assert asyncio.run(main()) == [None, None, True, None, True]
