"""The simulator's MCP endpoint as llama-swap documents it (§16), read by BooControl's MCP client, and every
version seen stored so that changes show in history."""

from __future__ import annotations

import asyncio
import json
import os
import time

import httpx
import pytest
import yaml

from connectors.host_config import McpClient, McpToolError, McpUnavailable, read_host_config
from core.providers import Provider
from tests.ops_config.hosts import watched_host
from warehouse.config_store import config_history, current_configs, record_config

CONFIG = """\
startPort: 23400
apiKeys: ["sk-test-key-0001"]
macros:
  srv: "llama-server --port ${PORT}"
  dir: /srv/models
models:
  qwen:
    cmd: ${srv} -m ${dir}/qwen.Q4_K_M.gguf -c 8192 --api-key sk-abcdefgh12345 -ngl 99
    ttl: 300
    env: ["HF_TOKEN=hf_abcdefghijk", "CUDA_VISIBLE_DEVICES=0"]
  alpha:
    cmd: ${srv} -m ${dir}/alpha.gguf
    proxy: http://127.0.0.1:${PORT}
peers:
  box2:
    proxy: http://10.0.0.2:8080
    apiKey: sk-peer-secret-99
    models: [gemma]
"""
H = {"Mcp-Protocol-Version": "2026-07-28", "Authorization": "Bearer sk-test-key-0001"}


def rpc(base, method, params=None, headers=None, **kw):
    hdr = H | {"Mcp-Method": method} | (headers or {})
    if method == "tools/call":
        hdr.setdefault("Mcp-Name", (params or {}).get("name", ""))
    return httpx.post(base + "/api/mcp", json={"jsonrpc": "2.0", "id": 7, "method": method, "params": params or {}},
                      headers=hdr, timeout=10, **kw)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    os.environ["OPS_CONFIG_TEST_KEY"] = "sk-test-key-0001"
    with watched_host("sim", tmp_path_factory.mktemp("mcp"), CONFIG) as host:
        yield host


def provider(host) -> Provider:
    return Provider(id="mcp-host", label="mcp", base_url=host.base_url, api_key_env="OPS_CONFIG_TEST_KEY")


def test_protocol_as_documented(sim):
    base = sim.base_url
    init = rpc(base, "initialize", {"protocolVersion": "2026-07-28"}).json()
    assert init["result"]["protocolVersion"] == "2026-07-28"
    old = rpc(base, "initialize", headers={"Mcp-Protocol-Version": "2025-06-18"})
    assert old.status_code == 400
    assert old.json()["error"]["code"] == -32022 and old.json()["error"]["data"]["supported"] == ["2026-07-28"]
    assert rpc(base, "tools/list", headers={"Mcp-Method": "initialize"}).json()["error"]["code"] == -32600
    assert httpx.get(base + "/api/mcp", headers=H).status_code == 405
    assert httpx.delete(base + "/api/mcp", headers=H).status_code == 405
    assert httpx.post(base + "/api/mcp", json={}, headers={"Mcp-Protocol-Version": "2026-07-28"}).status_code == 401
    batch = httpx.post(base + "/api/mcp", json=[{"jsonrpc": "2.0", "id": 1, "method": "ping"}],
                       headers=H | {"Mcp-Method": "ping"})
    assert batch.json()["error"]["message"] == "batching is not supported"
    page1 = rpc(base, "tools/list").json()["result"]
    page2 = rpc(base, "tools/list", {"cursor": page1["nextCursor"]}).json()["result"]
    assert [t["name"] for t in page1["tools"] + page2["tools"]] == [
        "docs__list_docs", "docs__get_doc", "docs__search_docs", "docs__get_config_schema", "config__get_config",
        "sys__now"]
    assert "nextCursor" not in page2
    wrong_name = rpc(base, "tools/call", {"name": "sys__now"}, headers={"Mcp-Name": "config__get_config"})
    assert wrong_name.status_code == 400
    tool_err = rpc(base, "tools/call", {"name": "docs__get_config_schema", "arguments": {"key": "models.nope"}})
    assert tool_err.json()["result"]["isError"] is True  # the tool ran: a result, not a protocol error
    assert rpc(base, "tools/call", {"name": "no_such_tool"}).json()["error"]["code"] == -32602
    no_version = httpx.post(base + "/api/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                                     "params": {"protocolVersion": "2026-07-28"}},
                            headers={"Mcp-Method": "initialize", "Authorization": H["Authorization"]})
    assert (no_version.status_code, no_version.json()["error"]["code"]) == (400, -32022)  # the header is required
    root = json.loads(rpc(base, "tools/call", {"name": "docs__get_config_schema"}).json()["result"]["content"][0]["text"])
    assert root["type"] == "object" and {"models", "groups", "peers", "apiKeys", "startPort"} <= set(root["children"])
    models = json.loads(rpc(base, "tools/call", {"name": "docs__get_config_schema", "arguments": {"key": "models"}})
                        .json()["result"]["content"][0]["text"])
    assert {"cmd", "ttl", "proxy", "aliases"} <= set(models["children"])


def test_effective_config_defaults_macros_redaction(sim):
    async def go():
        async with httpx.AsyncClient() as client:
            mcp = McpClient(provider(sim), client)
            return (await mcp.tool_names(), await mcp.effective_config(), await mcp.get_config(".models[] | .ttl"),
                    await mcp.config_schema("models.ttl"))

    names, text, ttls, schema = asyncio.run(go())
    assert "config__get_config" in names and "docs__get_config_schema" in names
    eff = yaml.safe_load(text)
    assert eff["models"]["qwen"]["cmd"] == ("llama-server --port 23401 -m /srv/models/qwen.Q4_K_M.gguf -c 8192 "
                                           "--api-key [REDACTED] -ngl 99")  # ports in sorted id order: alpha 23400
    assert eff["models"]["alpha"]["proxy"] == "http://127.0.0.1:23400"
    assert eff["models"]["qwen"]["proxy"] == "http://localhost:23401"  # the default, expanded
    assert eff["models"]["qwen"]["env"] == ["HF_TOKEN=[REDACTED]", "CUDA_VISIBLE_DEVICES=0"]
    assert eff["apiKeys"] == ["[REDACTED]"] and eff["peers"]["box2"]["apiKey"] == "[REDACTED]"
    assert (eff["healthCheckTimeout"], eff["models"]["alpha"]["ttl"], eff["store"]["path"]) == (120, -1, None)
    assert "sk-" not in text and "hf_abc" not in text
    assert ttls == "300\n---\n-1\n"  # several results: YAML documents separated by ---
    assert schema == {"type": "integer", "default": -1, "minimum": -1,
                      "description": "seconds idle before unload; -1 = globalTTL, 0 = never"}


def test_versions_stored_and_changes_in_history(sim, db):
    def read():
        async def go():
            async with httpx.AsyncClient() as client:
                return await read_host_config(provider(sim), client, None)
        got = asyncio.run(go())
        with db.begin() as conn:
            return got, record_config(conn, "mcp-host", got.source, got.text)

    first, r1 = read()
    _, r2 = read()
    assert first.source == "mcp" and (r1.changed, r2.changed, r2.sha256) == (True, False, r1.sha256)
    sim.config_path.write_text(CONFIG.replace("ttl: 300", "ttl: 900"))  # -watch-config reloads within ~2 s
    async def ttl() -> str:
        async with httpx.AsyncClient() as client:
            return await McpClient(provider(sim), client).get_config(".models.qwen.ttl")

    deadline = time.monotonic() + 15
    while asyncio.run(ttl()) != "900\n" and time.monotonic() < deadline:  # not stored: only waits for the reload
        time.sleep(0.25)
    now, r3 = read()
    assert r3.changed and r3.previous_sha256 == r1.sha256
    assert yaml.safe_load(now.text)["models"]["qwen"]["ttl"] == 900
    hist = config_history(db, "mcp-host")
    assert hist["sha256"].to_list() == [r3.sha256, r1.sha256]
    assert hist["previous_sha256"].to_list() == [r1.sha256, None]
    cur = current_configs(db)
    assert cur.select("provider_id", "source", "sha256", "seen_count").rows() == [("mcp-host", "mcp", r3.sha256, 1)]
    with db.connect() as conn:
        from sqlalchemy import text
        counts = conn.execute(text("SELECT seen_count FROM host_config_versions ORDER BY id")).scalars().all()
    assert counts == [2, 1]


def test_too_large_config_is_read_piecewise(tmp_path):
    models = "".join(f"  m{i:03d}:\n    cmd: llama-server --port ${{PORT}} -m /m/{'x' * 200}{i}.gguf\n"
                     for i in range(120))
    with watched_host("sim", tmp_path, "startPort: 24000\nmodels:\n" + models) as host:
        async def go():
            async with httpx.AsyncClient() as client:
                mcp = McpClient(Provider(id="big", label="big", base_url=host.base_url), client)
                with pytest.raises(McpToolError, match="over the 32768 byte limit"):
                    await mcp.get_config()
                return await mcp.effective_config()

        eff = yaml.safe_load(asyncio.run(go()))
    assert len(eff["models"]) == 120 and eff["models"]["m119"]["cmd"].startswith("llama-server --port 24119 ")


@pytest.mark.real_llamaswap
def test_real_binary_has_no_mcp(tmp_path):
    from tests.ops_config.hosts import responder_yaml

    with watched_host("real", tmp_path, responder_yaml("real", ("alpha",), 24500)) as host:
        async def go():
            async with httpx.AsyncClient() as client:
                await McpClient(Provider(id="r", label="r", base_url=host.base_url), client).initialize()

        with pytest.raises(McpUnavailable, match="has no MCP endpoint"):
            asyncio.run(go())
