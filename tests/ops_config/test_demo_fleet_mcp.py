"""A demo fleet host has no config file: its MCP effective config is derived from its model specs, so the
Config page, diff and lint work on the demo too."""

from __future__ import annotations

import asyncio

import httpx
import yaml

from connectors.host_config import McpClient
from core.providers import Provider
from demo.fleet import build_demo_instance, demo_fleet_in_thread
from demo.mcp import derived_config, effective_config
from engines.config.hostcfg import parse_host_config


def test_demo_host_effective_config_matches_its_specs():
    sim = build_demo_instance(3, seed=7)
    eff = effective_config(derived_config(sim))
    assert sorted(eff["models"]) == sorted(sim.models)
    for mid, m in sim.models.items():
        cmd = eff["models"][mid]["cmd"]
        assert cmd.startswith(f"llama-server --port {m.port} -m /models/")  # ${PORT} = the model's port
        assert eff["models"][mid]["ttl"] == m.spec.ttl
        parsed = parse_host_config("d", "http://x", yaml.safe_dump(eff)).models[mid]
        assert parsed.ctx_size == m.spec.context_length and parsed.quantization in ("Q4_K_M", "Q5_K_M", "Q8_0")


def test_demo_fleet_serves_mcp():
    with demo_fleet_in_thread(2) as fleet:
        async def go():
            async with httpx.AsyncClient() as client:
                return [await McpClient(Provider(id=f"d{i}", label="d", base_url=url), client).effective_config()
                        for i, url in enumerate(fleet.base_urls)]

        texts = asyncio.run(go())
    assert all(yaml.safe_load(t)["models"] for t in texts)
