"""Safe edit over a REAL sshd on loopback, against a real llama-swap (-watch-config) where provided, else the
simulator: applied edits reload and stay; a failed health check rolls back byte for byte; invalid configs and a
held lease are refused before anything is written."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from connectors.host_config import SshCredentials, read_host_config
from engines.config.edit import edit_host_config
from tests.ops_config.hosts import free_port_block, provider_for, responder_yaml, watched_host
from tests.support.targets import target_params
from warehouse import lease


def models_listed(base_url: str) -> list[str]:
    return sorted(m["id"] for m in httpx.get(base_url + "/v1/models", timeout=5).json()["data"])


def backups(cfg: Path) -> list[Path]:
    return sorted(cfg.parent.glob(cfg.name + ".*Z.bak"))


@pytest.mark.parametrize("kind", target_params())
def test_edit_applies_then_failed_health_rolls_back_byte_for_byte(kind, db, sshd, tmp_path):
    start = free_port_block()
    original = responder_yaml(kind, ("alpha", "beta"), start, comment="original — ünïcode kept  ")
    with watched_host(kind, tmp_path, original) as host:
        provider = provider_for(host, sshd)
        creds = SshCredentials(sshd.secrets_dir)
        cfg = host.config_path
        assert models_listed(host.base_url) == ["alpha", "beta"]

        # 1. a good edit: a third model; reload seen, healthy, kept
        edited = responder_yaml(kind, ("alpha", "beta", "gamma"), start, comment="edited")
        res = asyncio.run(edit_host_config(db, provider, edited, creds, requested_by="test", probe_models=("gamma",),
                                           health_timeout_s=30))
        assert res.status == "succeeded", res
        assert cfg.read_bytes() == edited.encode()
        assert models_listed(host.base_url) == ["alpha", "beta", "gamma"]
        [backup1] = backups(cfg)
        assert backup1.read_bytes() == original.encode()
        assert res.backup_path == str(backup1)

        # 2. a forced failed health check: rolled back to the edited bytes, exactly
        broken = responder_yaml(kind, ("alpha",), start, comment="would drop two models")

        async def failing(api):
            return "forced failure (test)"

        res2 = asyncio.run(edit_host_config(db, provider, broken, creds, requested_by="test", health_check=failing,
                                            health_timeout_s=30))
        assert (res2.status, res2.rolled_back) == ("failed", True), res2
        assert res2.detail.startswith("forced failure (test); rolled back to ")
        assert cfg.read_bytes() == edited.encode()  # byte for byte
        assert [b.read_bytes() for b in backups(cfg)] == [original.encode(), edited.encode()]
        deadline_models = None
        for _ in range(80):  # the rollback reloaded llama-swap on the edited config
            deadline_models = models_listed(host.base_url)
            if deadline_models == ["alpha", "beta", "gamma"]:
                break
            asyncio.run(asyncio.sleep(0.25))
        assert deadline_models == ["alpha", "beta", "gamma"]

    with db.connect() as conn:
        rows = conn.execute(text("SELECT id, action, status, result->>'rolled_back', error FROM actions ORDER BY id"))
        audit = [tuple(r) for r in rows]
        changes = [tuple(r) for r in conn.execute(text(
            "SELECT source, cause FROM host_config_changes WHERE provider_id = 'cfg-host' ORDER BY id"))]
    assert [(a[1], a[2], a[3]) for a in audit] == [("edit_config", "succeeded", "false"),
                                                   ("edit_config", "failed", "true")]
    assert audit[1][4].startswith("forced failure (test); rolled back to ")
    e1, e2 = audit[0][0], audit[1][0]
    assert changes == [("ssh", f"before edit #{e1}"), ("ssh", f"edit #{e1}"), ("ssh", f"edit #{e2}"),
                       ("ssh", f"rollback of edit #{e2}")]
    assert "original" not in "".join(str(a) for a in audit)  # no config text in the audit trail


def test_invalid_config_and_held_lease_are_refused_before_writing(db, sshd, tmp_path, db_url):
    start = free_port_block()
    original = responder_yaml("sim", ("alpha",), start)
    with watched_host("sim", tmp_path, original) as host:
        provider = provider_for(host, sshd)
        creds = SshCredentials(sshd.secrets_dir)
        bad = original + "  beta:\n    ttl: -5\ngroups:\n  g:\n    members: [nope]\n"
        res = asyncio.run(edit_host_config(db, provider, bad, creds))
        assert res.status == "refused"
        assert res.problems == (
            "schema: models.beta: 'cmd' is a required property",
            "schema: models.beta.ttl: -5 is less than the minimum of -1",
            "models.beta.cmd: required (the command that starts the model's server)",
            "groups.g.members: 'nope' is not a model id",
        )  # the simulator offers MCP: its schema checks first, then BooControl's own
        assert host.config_path.read_bytes() == original.encode() and backups(host.config_path) == []

        with lease.hold(db_url, provider.id, lease.SCOPE_HOST, "bench run #7 (qwen)", holder="bench@box:1:abc"):
            res2 = asyncio.run(edit_host_config(db, provider, original.replace("alpha", "alpha2"), creds))
        assert res2.status == "refused"
        assert "held by bench@box:1:abc for bench run #7 (qwen)" in res2.detail
        assert host.config_path.read_bytes() == original.encode() and backups(host.config_path) == []


@pytest.mark.real_llamaswap
def test_read_over_ssh_from_real_binary(sshd, tmp_path):
    """The buildable llama-swap has no MCP (404): the reader falls back to the file over SSH, byte-exact."""
    text_ = responder_yaml("real", ("alpha",), free_port_block(), comment="real")
    with watched_host("real", tmp_path, text_) as host:
        provider = provider_for(host, sshd)

        async def read():
            async with httpx.AsyncClient() as client:
                return await read_host_config(provider, client, SshCredentials(sshd.secrets_dir))

        got = asyncio.run(read())
    assert (got.source, got.text) == ("ssh", text_)


SECRETS = ("sk-live-abcdef123456", "peer-secret-xyz9", "hf_abcdefghijkl", "tok-99887766")


def test_secrets_of_a_file_read_over_ssh_never_reach_the_database(db, sshd, tmp_path, monkeypatch):
    monkeypatch.setenv("OPS_CONFIG_TEST_KEY", SECRETS[0])
    start = free_port_block()
    original = (responder_yaml("sim", ("alpha",), start)
                + "    env: [\"HF_TOKEN=hf_abcdefghijkl\", \"CUDA_VISIBLE_DEVICES=0\"]\n"
                + "apiKeys: [\"sk-live-abcdef123456\"]\nmacros:\n  hub_token: tok-99887766\n"
                + "peers:\n  other:\n    proxy: http://10.9.9.9:8080\n    apiKey: peer-secret-xyz9\n    models: [x]\n")
    with watched_host("sim", tmp_path, original) as host:
        provider = provider_for(host, sshd)
        provider = type(provider)(**{**provider.__dict__, "api_key_env": "OPS_CONFIG_TEST_KEY"})
        creds = SshCredentials(sshd.secrets_dir)

        async def read():
            async with httpx.AsyncClient() as client:
                return await read_host_config(provider, client, creds, prefer="ssh")

        got = asyncio.run(read())
        assert got.source == "ssh" and not any(s in got.text for s in SECRETS)
        assert got.text.count("[REDACTED]") == 4 and "# managed by tests" in got.text  # layout kept
        res = asyncio.run(edit_host_config(db, provider, original.replace("alpha", "alpha2"), creds,
                                           health_timeout_s=30))
        assert res.status == "succeeded", res
    with db.connect() as conn:
        stored = " ".join(str(r) for r in conn.execute(text("SELECT * FROM host_config_versions")))
        stored += " ".join(str(r) for r in conn.execute(text("SELECT * FROM actions")))
    assert "alpha2" in stored and not any(s in stored for s in SECRETS)


@pytest.mark.parametrize("kind", target_params())
def test_without_watch_config_the_reload_command_reloads_else_rollback(kind, db, sshd, tmp_path):
    import dataclasses

    start = free_port_block()
    original = responder_yaml(kind, ("alpha",), start)
    with watched_host(kind, tmp_path, original, watch=False) as host:
        provider = provider_for(host, sshd)
        creds = SshCredentials(sshd.secrets_dir)
        two = responder_yaml(kind, ("alpha", "beta"), start)
        res = asyncio.run(edit_host_config(db, provider, two, creds, reload_timeout_s=3, health_timeout_s=20))
        assert (res.status, res.rolled_back) == ("failed", True)
        assert res.detail.startswith("llama-swap did not reload within 3 s (run it with -watch-config, or set "
                                     "ssh.reload_command in the registry); rolled back to ")
        assert host.config_path.read_bytes() == original.encode()
        assert host.proc is not None
        ssh = dataclasses.replace(provider.ssh, reload_command=f"kill -HUP {host.proc.pid}")
        res2 = asyncio.run(edit_host_config(db, dataclasses.replace(provider, ssh=ssh), two, creds,
                                            health_timeout_s=30))
        assert res2.status == "succeeded", res2
        assert "reload_command ran" in res2.steps and models_listed(host.base_url) == ["alpha", "beta"]


@pytest.mark.parametrize("kind", target_params())
def test_the_following_connector_records_the_reload(kind, db, db_url, sshd, tmp_path):
    from tests.support.connector import ConnectorThread, query, registry_for, wait_until

    start = free_port_block()
    original = responder_yaml(kind, ("alpha",), start)
    with watched_host(kind, tmp_path, original) as host:
        provider = provider_for(host, sshd)
        with ConnectorThread(registry_for(provider), db_url, tmp_path / "spool"):
            wait_until(lambda: query(db_url, "SELECT 1 FROM connector_health WHERE provider_id = %s AND "
                                             "status = 'connected'", (provider.id,)), what="connected")
            res = asyncio.run(edit_host_config(db, provider, responder_yaml(kind, ("alpha", "beta"), start),
                                               SshCredentials(sshd.secrets_dir), health_timeout_s=30))
        assert res.status == "succeeded", res
        assert res.steps[-1] == "the connector recorded the reload"
        assert len(query(db_url, "SELECT 1 FROM config_reloads WHERE provider_id = %s", (provider.id,))) == 1


@pytest.mark.parametrize("kind", target_params())
def test_aliases_listed_by_the_host_are_healthy(kind, db, sshd, tmp_path):
    start = free_port_block()
    original = responder_yaml(kind, ("alpha",), start)
    with watched_host(kind, tmp_path, original) as host:
        provider = provider_for(host, sshd)
        new = "includeAliasesInList: true\n" + responder_yaml(kind, ("alpha", "beta"), start).replace(
            "  beta:\n", "  beta:\n    aliases: [b-latest]\n")
        res = asyncio.run(edit_host_config(db, provider, new, SshCredentials(sshd.secrets_dir), health_timeout_s=30))
        assert res.status == "succeeded", res
        listed = models_listed(host.base_url)
    assert listed == {"real": ["alpha", "b-latest", "beta"], "sim": ["alpha", "beta"]}[kind]  # sim: no alias rows


def test_an_edit_left_running_by_a_dead_process_is_marked_interrupted(db, sshd, tmp_path):
    from warehouse.queries.actions import insert_action

    original = responder_yaml("sim", ("alpha",), free_port_block())
    with watched_host("sim", tmp_path, original) as host:
        provider = provider_for(host, sshd)
        with db.begin() as conn:
            dead = insert_action(conn, provider.id, "edit_config", "/x", {}, "killed", status="running")
            other = insert_action(conn, "another-host", "edit_config", "/x", {}, "elsewhere", status="running")
        res = asyncio.run(edit_host_config(db, provider, "models: {}\n", SshCredentials(sshd.secrets_dir)))
    assert res.status == "refused" and res.steps[0] == ("1 earlier edit(s) left running by a stopped process "
                                                        "marked interrupted")
    with db.connect() as conn:
        rows = dict(conn.execute(text("SELECT id, status FROM actions")).fetchall())
    assert rows == {dead: "failed", other: "running", res.action_id: "refused"}


def test_a_lease_broken_mid_edit_stops_it_before_the_write(db, sshd, tmp_path, db_url):
    """An operator breaks the host lease while the edit validates (the MCP schema request): the edit notices before
    writing (a heartbeat right then, not the next scheduled one): refused, the file untouched, audited."""
    import psycopg

    start = free_port_block()
    original = responder_yaml("sim", ("alpha",), start)
    with watched_host("sim", tmp_path, original) as host:
        provider = provider_for(host, sshd)
        creds = SshCredentials(sshd.secrets_dir)
        broken: list[str] = []

        async def break_on_mcp(request: httpx.Request) -> None:
            if request.url.path == "/api/mcp" and not broken:
                with psycopg.connect(db_url.replace("+psycopg", ""), autocommit=True) as conn:
                    gone = lease.break_lease(conn, provider.id, lease.SCOPE_HOST, by="operator (test)")
                broken.append(gone.holder if gone else "")

        async def run() -> object:
            async with httpx.AsyncClient(timeout=30, event_hooks={"request": [break_on_mcp]}) as client:
                return await edit_host_config(db, provider, original.replace("alpha", "alpha2"), creds,
                                              client=client)

        res = asyncio.run(run())
        assert broken and broken[0].startswith("config-edit")
        assert res.status == "refused", res
        assert "the host lease was lost before the write" in res.detail
        assert host.config_path.read_bytes() == original.encode()
        assert models_listed(host.base_url) == ["alpha"]
        with db.connect() as c:
            status, error = c.execute(text("SELECT status, error FROM actions WHERE id = :i"),
                                      {"i": res.action_id}).one()
        assert status == "refused" and "lease was lost" in error
