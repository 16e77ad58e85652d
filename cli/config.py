"""`boocontrol config show|history|diff|lint|edit`: each llama-swap host's effective config, its history, the
fleet diff, lint, and the safe edit over SSH. Thin: the work is `engines.config` and `warehouse.config_store`."""

from __future__ import annotations

import asyncio
import getpass
import socket
from pathlib import Path
from typing import Any

import click

from core.settings import Settings


def _context(settings: Settings) -> tuple[Any, Any]:
    from cli.main import load_registry_or_exit, require_schema
    from warehouse.db import make_engine

    url = settings.resolved_database_url()
    require_schema(url)
    return load_registry_or_exit(settings, starting=False, need_providers=True), make_engine(url)


def _provider(registry: Any, provider_id: str) -> Any:
    from cli.errors import fail

    try:
        p = registry.get(provider_id)
    except KeyError as exc:
        fail(str(exc.args[0]))
    if not p.spec.host_operations:
        fail(f"provider {p.id} is of kind {p.kind}: it has no llama-swap config to read")
    return p


def _refresh(settings: Settings, engine: Any, providers: list[Any]) -> None:
    from connectors.host_config import SshCredentials
    from engines.config.poll import poll_configs

    for o in asyncio.run(poll_configs(engine, providers, SshCredentials(settings.secrets_dir))):
        if o.error:
            click.echo(f"{o.provider_id}: not read: {o.error}", err=True)
        elif o.recorded is not None:
            state = "changed" if o.recorded.changed else "unchanged"
            click.echo(f"{o.provider_id}: read via {o.source}, {o.recorded.sha256[:12]} ({state})", err=True)


def _current_hosts(registry: Any, engine: Any) -> list[Any]:
    from engines.config.hostcfg import hosts_from_texts
    from warehouse.config_store import current_configs

    df = current_configs(engine)
    hosts, problems = hosts_from_texts(df.select("provider_id", "source", "content").rows(),
                                       {p.id: p.base_url for p in registry.providers})
    for line in problems:
        click.echo(line, err=True)
    return hosts


@click.group()
def config() -> None:
    """llama-swap configs across the fleet: show, history, diff, lint, safe edit over SSH."""


@config.command("show")
@click.argument("provider")
@click.option("--stored", is_flag=True, help="Print the last stored version instead of reading the host now")
@click.option("--version", "version", default=None, help="Print a stored version by its sha256 (prefix)")
@click.pass_obj
def config_show(settings: Settings, provider: str, stored: bool, version: str | None) -> None:
    """PROVIDER's effective config (MCP where offered, else the file over SSH); the read is stored."""
    from cli.errors import fail
    from warehouse.config_store import config_version, current_configs

    registry, engine = _context(settings)
    p = _provider(registry, provider)
    if version:
        found = config_version(engine, p.id, version)
        if found is None:
            fail(f"no stored config version {version!r} for {p.id} (see `boocontrol config history {p.id}`)")
        click.echo(f"# {p.id}: {found[0]} version {version}, first seen {found[2]:%Y-%m-%d %H:%M:%S} UTC", err=True)
        click.echo(found[1], nl=False)
        return
    if not stored:
        _refresh(settings, engine, [p])
    df = current_configs(engine, (p.id,))
    if df.height == 0:
        fail(f"no config of {p.id} is stored yet (it could not be read; see the line above)")
    row = df.sort("source").row(0, named=True)
    click.echo(f"# {p.id}: via {row['source']}, sha256 {row['sha256'][:12]}, last read "
               f"{row['last_seen_at']:%Y-%m-%d %H:%M:%S} UTC", err=True)
    click.echo(row["content"], nl=False)


@config.command("history")
@click.argument("provider")
@click.pass_obj
def config_history_cmd(settings: Settings, provider: str) -> None:
    """PROVIDER's config changes, newest first."""
    from warehouse.config_store import config_history

    registry, engine = _context(settings)
    p = _provider(registry, provider)
    df = config_history(engine, p.id)
    if df.height == 0:
        click.echo(f"no config of {p.id} stored yet")
    for r in df.rows(named=True):
        prev = (r["previous_sha256"] or "(first read)")[:12]
        click.echo(f"{r['at']:%Y-%m-%d %H:%M:%S} UTC\t{r['source']}\t{prev} -> {r['sha256'][:12]}\t{r['cause'] or 'observed'}")


@config.command("diff")
@click.option("--refresh", is_flag=True, help="Read every llama-swap host now first")
@click.pass_obj
def config_diff(settings: Settings, refresh: bool) -> None:
    """Models configured on several hosts with different command, context size, quantization or ttl."""
    from engines.config.diff import fleet_diff

    registry, engine = _context(settings)
    if refresh:
        _refresh(settings, engine, list(registry.providers))
    rows = fleet_diff(_current_hosts(registry, engine))
    if not rows:
        click.echo("no differences: every model on two or more hosts is configured alike")
    for r in rows:
        click.echo(f"{r.model_id}\t{r.field}")
        for pid, value in r.values:
            click.echo(f"    {pid}: {value}")


@config.command("lint")
@click.option("--refresh", is_flag=True, help="Read every llama-swap host now first")
@click.option("--days", default=30, show_default=True, help="Window for 'never requested' and the measurements")
@click.pass_obj
def config_lint(settings: Settings, refresh: bool, days: int) -> None:
    """Duplicate peer ids, peer cycles, co-resident sets over the measured VRAM, unused models, ttl < load time."""
    from engines.config.lint import Measured, lint
    from warehouse.config_store import lint_facts

    registry, engine = _context(settings)
    if refresh:
        _refresh(settings, engine, list(registry.providers))
    f = lint_facts(engine, days)
    findings = lint(_current_hosts(registry, engine),
                    Measured(f.vram_mb, f.host_vram_mb, f.load_s, f.requested, f.watched_days, days))
    if not findings:
        click.echo("no findings")
    for x in findings:
        click.echo(f"{x.severity}\t{x.provider_id}\t{x.code}\t{x.message}")


@config.command("edit")
@click.argument("provider")
@click.option("--file", "file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The new config file (default: open the current one in $EDITOR)")
@click.option("--probe", "probes", multiple=True, help="Model that must load after the reload (repeatable)")
@click.option("--health-timeout", default=60.0, show_default=True, help="Seconds to wait for health")
@click.option("--lease-wait", default=0.0, show_default=True, help="Seconds to wait for the host lease")
@click.pass_obj
def config_edit(settings: Settings, provider: str, file: Path | None, probes: tuple[str, ...],
                health_timeout: float, lease_wait: float) -> None:
    """Replace PROVIDER's config file over SSH: validate, back up, write, wait for reload and health, roll back
    automatically when unhealthy. Serialized by the host lease and audited like every action."""
    from cli.errors import fail
    from connectors.host_config import HostConfigError, SshCredentials, open_config_file
    from engines.config.edit import edit_host_config
    from warehouse.config_store import sha256_text

    registry, engine = _context(settings)
    p = _provider(registry, provider)
    creds = SshCredentials(settings.secrets_dir)
    expect = None
    if file is not None:
        new_text = file.read_text(encoding="utf-8")
    else:
        async def read() -> str:
            async with open_config_file(p, creds) as f:
                return (await f.read_bytes()).decode("utf-8")

        try:
            current = asyncio.run(read())
        except HostConfigError as exc:
            fail(str(exc))
        expect = sha256_text(current)
        edited = click.edit(current, extension=".yaml")
        if edited is None or edited == current:
            click.echo("no change: nothing written")
            return
        new_text = edited
    who = f"{getpass.getuser()}@{socket.gethostname()} (boocontrol config edit)"
    res = asyncio.run(edit_host_config(engine, p, new_text, creds, requested_by=who, expect_sha256=expect,
                                       probe_models=probes, health_timeout_s=health_timeout, lease_wait_s=lease_wait))
    for step in res.steps:
        click.echo(f"  {step}", err=True)
    for problem in res.problems:
        click.echo(f"  problem: {problem}", err=True)
    if res.status in ("succeeded", "unchanged"):
        click.echo(f"action {res.action_id}: {res.status}: {res.detail}")
        return
    fail(f"action {res.action_id}: {res.status}: {res.detail}")
