"""Fault injection through the gateway with the official `openai` client: an upstream that dies mid-stream ends the
stream with an explicit error; silence before the first byte, a 5xx, a 429 and a refused connection fall back to
the next candidate (and the failed target cools down); all down is a 503 naming why each was skipped; a
local-only policy never reaches a cloud provider, not even when every local one is down."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import openai
import pytest

from core.providers import Provider, Registry
from tests.gateway.conftest import run_gateway, seed, wait_rows
from tests.gateway.upstream import UpstreamState, run_upstream

MSG = [{"role": "user", "content": "hi"}]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prov(pid: str, base_url: str, **labels: str) -> Provider:
    return Provider(id=pid, label=pid, base_url=base_url, kind="openai", labels=labels)


def test_upstream_dying_mid_stream_ends_the_stream_with_an_explicit_error(gw_db: str, tmp_path: Path) -> None:
    with run_upstream(UpstreamState(models=("m",), mode="die_mid_stream", die_after=3)) as up:
        reg = Registry((prov("p", up.base_url),))
        with run_gateway(gw_db, reg, tmp_path, cooldown_s=0) as gw:
            client = openai.OpenAI(base_url=gw.base_url, api_key="none", max_retries=0)
            seen: list[str] = []
            with pytest.raises(openai.APIError, match="upstream p/m failed mid-reply"):
                for chunk in client.chat.completions.create(model="p/m", messages=MSG, max_tokens=50, stream=True):
                    if chunk.choices and chunk.choices[0].delta.content:
                        seen.append(chunk.choices[0].delta.content)
            assert seen == [" tok"] * 3  # what arrived before the failure was passed on, then the error
            # a raw reader sees the same: the last event is the error, never a [DONE]
            with httpx.stream("POST", gw.base_url + "/chat/completions",
                              json={"model": "p/m", "messages": MSG, "stream": True, "max_tokens": 50}) as r:
                events = [line for line in r.iter_lines() if line.startswith("data: ")]
            assert events[-1].startswith('data: {"error": {"message": "upstream p/m failed mid-reply')
            assert "data: [DONE]" not in events
            got = wait_rows(gw_db, 2)
    assert [(r["status"], r["provider_id"], r["stream"]) for r in got] == [(200, "p", True)] * 2
    assert {r["error"] for r in got} == {
        "upstream p/m failed mid-reply: the connection closed before the reply was complete"}


def test_silence_5xx_429_and_refused_fall_back_to_the_next_candidate_and_cool_down(gw_db: str,
                                                                                  tmp_path: Path) -> None:
    with (run_upstream(UpstreamState(models=("m",), mode="silent")) as silent,
          run_upstream(UpstreamState(models=("m",), mode="status_500")) as broken,
          run_upstream(UpstreamState(models=("m",), mode="status_429")) as busy,
          run_upstream(UpstreamState(models=("m",))) as good):
        provs = [prov("a-silent", silent.base_url), prov("b-broken", broken.base_url), prov("c-busy", busy.base_url),
                 prov("d-refused", f"http://127.0.0.1:{closed_port()}"), prov("e-good", good.base_url)]
        seed(gw_db, provs, [(p.id, "m") for p in provs])
        with run_gateway(gw_db, Registry(tuple(provs)), tmp_path, first_byte_timeout_s=1.0, cooldown_s=300) as gw:
            client = openai.OpenAI(base_url=gw.base_url, api_key="none", max_retries=0)
            first = client.chat.completions.with_raw_response.create(model="auto:fast", messages=MSG, max_tokens=2)
            assert first.headers["X-Boo-Target"] == "e-good/m"
            assert first.parse().choices[0].message.content == " tok tok"
            streamed = client.chat.completions.create(model="auto:fast", messages=MSG, max_tokens=3, stream=True)
            assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == " tok tok tok"
            got = wait_rows(gw_db, 2)
        # each failed target was asked exactly once: the second request skipped them (cooling down)
        assert (silent.state.asked, broken.state.asked, busy.state.asked, good.state.asked) == (
            ["m"], ["m"], ["m"], ["m", "m"])
    assert [(r["policy"], r["provider_id"], r["status"], r["error"]) for r in got] == [
        ("auto:fast", "e-good", 200, None)] * 2
    whys = [(f["target"], f["why"]) for f in got[0]["fallbacks"]]
    assert [t for t, _ in whys] == ["a-silent/m", "b-broken/m", "c-busy/m", "d-refused/m"]
    assert whys[0][1] == "no response within 1 s"
    assert whys[1][1] == 'HTTP 500: {"error":{"message":"upstream exploded"}}'
    assert whys[2][1] == 'HTTP 429: {"error":{"message":"too many requests"}}'
    assert whys[3][1].startswith("connect error: ")
    assert [f["target"] for f in got[1]["fallbacks"]] == []  # cooling targets are left out of the ranking
    assert got[0]["reason"].startswith("auto:fast score ")


def test_all_down_is_a_503_naming_why_each_was_skipped(gw_db: str, tmp_path: Path) -> None:
    with run_upstream(UpstreamState(models=("m",), mode="status_500")) as broken:
        provs = [prov("a", broken.base_url), prov("b", f"http://127.0.0.1:{closed_port()}"), prov("c", broken.base_url)]
        seed(gw_db, provs, [("a", "m"), ("b", "m"), ("c", "m")], offline=["c"])
        with run_gateway(gw_db, Registry(tuple(provs)), tmp_path) as gw:
            client = openai.OpenAI(base_url=gw.base_url, api_key="none", max_retries=0)
            with pytest.raises(openai.InternalServerError) as info:
                client.chat.completions.create(model="auto:fast", messages=MSG)
            again = httpx.post(gw.base_url + "/chat/completions", json={"model": "auto:fast", "messages": MSG})
            got = wait_rows(gw_db, 2)
    assert info.value.status_code == 503
    msg = info.value.message
    assert msg.startswith("Error code: 503")
    err = again.json()["error"]
    assert again.status_code == 503 and again.headers["Retry-After"] == "1"
    assert err["message"].startswith("no upstream could serve 'auto:fast': a/m: cooling down ")
    assert "b/m: cooling down" in err["message"] and "c/m: provider c is offline" in err["message"]
    first = got[0]
    assert first["status"] == 503 and first["provider_id"] is None
    assert [(f["target"], f["why"].split(":")[0]) for f in first["fallbacks"]] == [("a/m", "HTTP 500"),
                                                                                  ("b/m", "connect error")]
    assert "c/m: provider c is offline" in first["error"]


def test_a_local_only_policy_never_reaches_a_cloud_provider(gw_db: str, tmp_path: Path) -> None:
    policies = tmp_path / "policies.yaml"
    policies.write_text("policies:\n  auto:private:\n    description: Only our own hardware\n    local_only: true\n")
    with (run_upstream(UpstreamState(models=("m",))) as cloud,
          run_upstream(UpstreamState(models=("m",), mode="status_500")) as home):
        provs = [prov("cloud", cloud.base_url, location="cloud"), prov("home", home.base_url, location="local")]
        seed(gw_db, provs, [("cloud", "m"), ("home", "m")])
        with run_gateway(gw_db, Registry(tuple(provs)), tmp_path, policies=policies) as gw:
            client = openai.OpenAI(base_url=gw.base_url, api_key="none", max_retries=0)
            with pytest.raises(openai.InternalServerError):
                client.chat.completions.create(model="auto:private", messages=MSG)
            ok = client.chat.completions.create(model="auto:fast", messages=MSG, max_tokens=1)  # not local-only
            got = wait_rows(gw_db, 2)
        assert cloud.state.asked == ["m"] and home.state.asked == ["m"]  # the cloud only for auto:fast
    assert ok.choices[0].message.content == " tok"
    assert got[0]["status"] == 503
    assert "cloud/m: cloud provider, and the policy is local-only" in got[0]["error"]
    assert (got[1]["policy"], got[1]["provider_id"]) == ("auto:fast", "cloud")
