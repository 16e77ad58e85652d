"""Keys, per-key limits and attribution: exact counts per consumer, keys never in logs or rows."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import httpx
import openai
import pytest

from core.providers import Provider, Registry
from gateway.attribution import (
    KeyBook,
    KeysError,
    client_name,
    key_digest,
    load_keys,
    parse_keys_env,
    parse_keys_file,
)
from gateway.limits import Cooldowns, KeyLimits
from tests.gateway.conftest import run_gateway, wait_rows
from tests.gateway.upstream import UpstreamState, run_upstream

MSG = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(("ua", "name"), [
    ("OpenAI/Python 1.40.0", "openai-python"),
    ("OpenAI/JS 4.52.0", "openai-js"),
    ("curl/8.5.0", "curl"),
    ("Mozilla/5.0 (X11; Linux x86_64) Firefox/120", "mozilla"),
    ("python-httpx/0.28.1", "python-httpx"),
    ("", "unknown"),
    (None, "unknown"),
])
def test_client_name_from_the_user_agent(ua: str | None, name: str) -> None:
    assert client_name(ua) == name


def test_keys_from_env_and_file_are_kept_hashed_and_errors_never_show_a_key(tmp_path: Path) -> None:
    f = tmp_path / "keys.yaml"
    f.write_text(f"keys:\n  - owner: carol\n    sha256: {key_digest('sk-carol')}\n    concurrency: 2\n"
                 "    rate_per_minute: 30\n")
    book = load_keys("alice=sk-alice, bob=sk-bob", f)
    assert len(book) == 3 and "sk-alice" not in repr(book) and "sk-carol" not in f.read_text()
    assert book.owner_of("sk-alice").owner == "alice"  # type: ignore[union-attr]
    carol = book.owner_of("sk-carol")
    assert carol is not None and (carol.owner, carol.concurrency, carol.rate_per_minute) == ("carol", 2, 30.0)
    assert book.owner_of("sk-nobody") is None
    with pytest.raises(KeysError) as e:
        parse_keys_env("alice=sk-secret,sk-orphan")
    assert str(e.value) == "BOOCONTROL_GATEWAY_KEYS: pair 2: expected owner=key" and "sk-" not in str(e.value)
    with pytest.raises(KeysError, match=r"keys\[1\]: unknown field\(s\) key"):
        parse_keys_file("keys:\n  - owner: x\n    key: sk-plain\n", "k.yaml")
    with pytest.raises(KeysError, match=r"keys\[1\]: sha256: expected 64 hex digits"):
        parse_keys_file("keys:\n  - owner: x\n    sha256: abc\n", "k.yaml")


def test_key_limits_concurrency_and_rate_with_retry_after() -> None:
    now = [0.0]
    lim = KeyLimits(default_concurrency=2, default_rate_per_minute=0, clock=lambda: now[0])
    assert lim.acquire("a")[0] and lim.acquire("a")[0]
    assert lim.acquire("a") == (False, 1, "2 requests in flight, the key's limit is 2")
    lim.release("a")
    assert lim.acquire("a")[0]
    rate = KeyLimits(default_concurrency=0, default_rate_per_minute=0, clock=lambda: now[0])
    assert rate.acquire("b", rate_per_minute=2)[0] and rate.acquire("b", rate_per_minute=2)[0]
    assert rate.acquire("b", rate_per_minute=2) == (False, 30, "over the key's rate of 2 requests per minute")
    now[0] = 30.0  # half a minute refills one request
    assert rate.acquire("b", rate_per_minute=2)[0]
    cd = Cooldowns(10.0, clock=lambda: now[0])
    cd.fail("p/m", "HTTP 500")
    cd.fail("q/m", "HTTP 429", for_s=2)  # busy: only its Retry-After
    assert cd.cooling("p/m") == "cooling down 10 s more after: HTTP 500" and cd.active() == {"p/m", "q/m"}
    now[0] = 33.0
    assert cd.cooling("q/m") is None and cd.active() == {"p/m"}
    now[0] = 50.0
    assert cd.cooling("p/m") is None and cd.active() == set()


def test_required_keys_limits_and_exact_attribution(gw_db: str, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    keys = KeyBook({**parse_keys_env("alice=sk-alice-secret"),
                    **parse_keys_file(f"keys:\n  - owner: slowpoke\n    sha256: {key_digest('sk-slow')}\n"
                                      "    concurrency: 1\n  - owner: ratey\n"
                                      f"    sha256: {key_digest('sk-rate')}\n    rate_per_minute: 2\n", "k")})
    with run_upstream(UpstreamState(models=("m",), itl_s=0.05)) as up:
        reg = Registry((Provider(id="p", label="p", base_url=up.base_url, kind="openai"),))
        with run_gateway(gw_db, reg, tmp_path, keys=keys, require_key=True) as gw:
            url = gw.base_url + "/chat/completions"
            body = {"model": "p/m", "messages": MSG, "max_tokens": 1}
            assert httpx.post(url, json=body).status_code == 401
            bad = httpx.post(url, json=body, headers={"Authorization": "Bearer sk-wrong"})
            assert bad.status_code == 401 and bad.json()["error"]["message"] == "unknown API key"
            alice = openai.OpenAI(base_url=gw.base_url, api_key="sk-alice-secret", max_retries=0)
            for _ in range(3):
                assert alice.chat.completions.create(model="p/m", messages=MSG, max_tokens=2).usage.completion_tokens == 2  # type: ignore[union-attr]
            # concurrency 1: a second request while the first streams is refused with Retry-After
            first_chunk = threading.Event()
            done = threading.Event()

            def long_stream() -> None:
                with httpx.stream("POST", url, json={**body, "max_tokens": 40, "stream": True},
                                  headers={"Authorization": "Bearer sk-slow"}, timeout=30) as r:
                    for _ in r.iter_bytes():
                        first_chunk.set()
                done.set()

            th = threading.Thread(target=long_stream)
            th.start()
            assert first_chunk.wait(10)
            refused = httpx.post(url, json=body, headers={"Authorization": "Bearer sk-slow"})
            th.join(30)
            assert done.is_set()
            assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
            assert refused.json()["error"]["message"] == "slowpoke: 1 requests in flight, the key's limit is 1"
            assert httpx.post(url, json=body, headers={"Authorization": "Bearer sk-slow"}).status_code == 200
            # rate 2 per minute: the third is refused, told to come back in 30 s
            rated = [httpx.post(url, json=body, headers={"Authorization": "Bearer sk-rate"}) for _ in range(3)]
            assert [r.status_code for r in rated] == [200, 200, 429] and rated[2].headers["Retry-After"] == "30"
            got = wait_rows(gw_db, 12)
    counts: dict[tuple[str, str, int], int] = {}
    for r in got:
        k = (r["consumer"], r["consumer_source"], r["status"])
        counts[k] = counts.get(k, 0) + 1
    assert counts == {("python-httpx", "user-agent", 401): 2, ("alice", "key", 200): 3, ("slowpoke", "key", 200): 2,
                      ("slowpoke", "key", 429): 1, ("ratey", "key", 200): 2, ("ratey", "key", 429): 1}
    assert sum(r["completion_tokens"] or 0 for r in got if r["consumer"] == "alice") == 6
    text = caplog.text + repr(got)
    assert "sk-alice-secret" not in text and "sk-slow" not in text and "sk-rate" not in text


def test_without_keys_consumers_come_from_the_header_then_the_user_agent(gw_db: str, tmp_path: Path) -> None:
    with run_upstream(UpstreamState(models=("m",))) as up:
        reg = Registry((Provider(id="p", label="p", base_url=up.base_url, kind="openai"),))
        with run_gateway(gw_db, reg, tmp_path) as gw:
            url = gw.base_url + "/chat/completions"
            body = {"model": "p/m", "messages": MSG, "max_tokens": 1}
            for _ in range(4):
                httpx.post(url, json=body, headers={"X-Boo-Source": "nightly-job", "Authorization": "Bearer x"})
            for _ in range(2):
                httpx.post(url, json=body, headers={"User-Agent": "curl/8.5.0"})
            client = openai.OpenAI(base_url=gw.base_url, api_key="whatever", max_retries=0)
            client.embeddings.create(model="p/m", input="x")
            got = wait_rows(gw_db, 7)
    counts: dict[tuple[str, str], int] = {}
    for r in got:
        counts[(r["consumer"], r["consumer_source"])] = counts.get((r["consumer"], r["consumer_source"]), 0) + 1
    assert counts == {("nightly-job", "header"): 4, ("curl", "user-agent"): 2, ("openai-python", "user-agent"): 1}
