"""The host-configs flow on a registry with a simulated host (MCP) and an unreachable one."""

from __future__ import annotations

from core.settings import get_settings
from tests.ops_config.hosts import responder_yaml, watched_host
from tests.support.llamaswap import free_port
from warehouse.config_store import current_configs


def test_host_configs_flow(db, db_url, tmp_path, monkeypatch, prefect_harness):
    with watched_host("sim", tmp_path, responder_yaml("sim", ("alpha",), 27000)) as host:
        fleet = tmp_path / "fleet.yaml"
        fleet.write_text(f"providers:\n  - {{id: sim1, base_url: '{host.base_url}'}}\n"
                         f"  - {{id: dead, base_url: 'http://127.0.0.1:{free_port()}'}}\n"
                         "  - {id: cloud, base_url: 'https://api.example.test', kind: openai}\n")
        monkeypatch.setenv("BOOCONTROL_DATABASE_URL", db_url)
        monkeypatch.setenv("BOOCONTROL_FLEET_FILE", str(fleet))
        monkeypatch.setenv("BOOCONTROL_DATA_DIR", str(tmp_path / "data"))
        get_settings.cache_clear()
        from flows.host_configs import host_configs

        try:
            out = host_configs(concurrency=4)
            again = host_configs(concurrency=4)
        finally:
            get_settings.cache_clear()
    assert out == {"read": 1, "changed": ["sim1"], "failed": {"dead": "provider dead: MCP request failed: ConnectError"}}
    assert again["changed"] == [] and again["read"] == 1  # the same text: no new version
    cur = current_configs(db)
    assert cur.select("provider_id", "source", "seen_count").rows() == [("sim1", "mcp", 2)]
