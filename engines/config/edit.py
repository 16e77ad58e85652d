"""The safe edit of a host's llama-swap config over SSH.

`edit_host_config` takes the host's lease (scope ``host``, like every action: one change at a time per host),
records an ``edit_config`` row in the ``actions`` audit table, and then:

1. reads the file over SFTP (the edit is refused when it is unchanged since the caller read it: ``expect_sha256``);
2. validates the new text: the host's published schema (MCP ``docs__get_config_schema``, where offered) and
   BooControl's own checks (`engines.config.validate`); problems → ``refused``, nothing written;
3. copies the file to a timestamped backup beside it (read back and compared);
   then confirms the lease is still held (broken by an operator or expired and taken over: ``refused``, nothing
   written);
4. replaces the file atomically (write beside it, POSIX rename; permission bits kept);
5. waits for llama-swap to reload (its ``/api/events`` stream, opened before the write, is closed by a reload;
   llama-swap runs with ``-watch-config``, or the registry's ``ssh.reload_command`` is run) and for health: ``/wol-health`` answers, ``/v1/models`` lists
   exactly the new config's listed models, and each ``probe_models`` entry loads (``GET /upstream/<id>/``);
   when a connector follows the host, its ``config_reloads`` row is awaited too and reported;
6. on any failure after the write, writes the backup's bytes back the same way, waits for the reload and
   checks the file is byte for byte the backup: ``failed`` with ``rolled_back: true`` (the rollback runs even
   when the lease was lost meanwhile: the known-good file is put back; the steps say the lease was lost).

Every version read or written is stored (`warehouse.config_store`) with the edit as its cause. No text of the
config goes into the audit row (it may hold secrets): only hashes, the backup path and what happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import yaml
from sqlalchemy import Engine, text

from connectors.host_config import (
    SOURCE_SSH,
    HostConfigError,
    McpClient,
    McpUnavailable,
    SshConfigFile,
    SshCredentials,
    open_config_file,
    redact_config_text,
)
from connectors.llama_swap_api import Event, LlamaSwapAPI, LlamaSwapError
from core.providers import Provider
from engines.config.validate import validate_config
from warehouse import lease
from warehouse.config_store import interrupt_stale_edits, record_config
from warehouse.queries.actions import finish_action, insert_action

log = logging.getLogger(__name__)

HealthCheck = Callable[[LlamaSwapAPI], Awaitable[str | None]]  # None = healthy, else why not
LeaseCheck = Callable[[], Awaitable[bool]]  # True while the edit still holds the host lease


@dataclass(frozen=True)
class EditResult:
    status: str  # succeeded | failed | refused | unchanged
    action_id: int | None
    detail: str
    before_sha256: str | None = None
    after_sha256: str | None = None
    backup_path: str | None = None
    rolled_back: bool = False
    problems: tuple[str, ...] = ()
    steps: tuple[str, ...] = field(default=())


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def listed_models(config_text: str) -> tuple[set[str], set[str]]:
    """The model ids ``/v1/models`` lists for a config (unlisted ones left out), and the aliases it may list
    besides (``includeAliasesInList``)."""
    doc = yaml.safe_load(config_text) or {}
    models = {str(k): (m if isinstance(m, dict) else {}) for k, m in (doc.get("models") or {}).items()}
    return ({mid for mid, m in models.items() if not m.get("unlisted")},
            {str(a) for m in models.values() for a in m.get("aliases") or []})


class _ReloadWatch:
    """An ``/api/events`` stream opened before the write; a reload closes it."""

    def __init__(self, api: LlamaSwapAPI) -> None:
        self.api = api
        self.closed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, timeout_s: float = 10.0) -> None:
        opened = asyncio.Event()

        async def run() -> None:
            try:
                async with self.api.events() as stream:
                    opened.set()
                    async for _ev in _aiter(stream):
                        pass
            except (httpx.HTTPError, LlamaSwapError):
                pass
            finally:
                opened.set()
                self.closed.set()

        self._task = asyncio.get_running_loop().create_task(run())
        await asyncio.wait_for(opened.wait(), timeout_s)
        await asyncio.sleep(0.2)  # the first messages (the log replay) arrive; the stream is established

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task


async def _aiter(stream: AsyncIterator[Event]) -> AsyncIterator[Event]:
    async for ev in stream:
        yield ev


async def default_health(api: LlamaSwapAPI, expected: tuple[set[str], set[str]], probe_models: Sequence[str],
                         timeout_s: float) -> str | None:
    """None when the host is healthy on the new config within ``timeout_s``, else why not (one line)."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            if await api.alive():
                listed = {str(m.get("id")) for m in await api.models()
                          if ((m.get("meta") or {}).get("llamaswap") or {}).get("type", "model") == "model"}
                models, aliases = expected
                if models <= listed and listed - models <= aliases:
                    break
                last = f"/v1/models lists {sorted(listed)}, the new config {sorted(models)}"
            else:
                last = "/wol-health does not answer"
        except (httpx.HTTPError, LlamaSwapError) as exc:
            last = f"{exc.__class__.__name__}"
        await asyncio.sleep(0.25)
    else:
        return f"not healthy after {timeout_s:g} s: {last}"
    for model in probe_models:
        try:
            await api.warm(model, timeout=max(1.0, deadline - time.monotonic()))
        except (httpx.HTTPError, LlamaSwapError, TimeoutError) as exc:
            return f"model {model} did not load: {str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__}"
    return None


async def _connector_saw_reload(engine: Engine, provider_id: str, since: datetime, timeout_s: float) -> bool | None:
    """Whether the connector following the provider recorded the reload (None: no connector follows it)."""
    def followed() -> bool:
        with engine.connect() as conn:
            return bool(conn.execute(text("SELECT 1 FROM leases WHERE provider_id = :p AND scope = 'follow' AND "
                                          "expires_at > now()"), {"p": provider_id}).first())

    def seen() -> bool:
        with engine.connect() as conn:
            return bool(conn.execute(text("SELECT 1 FROM config_reloads WHERE provider_id = :p AND detected_at >= :t"),
                                     {"p": provider_id, "t": since}).first())

    if not await asyncio.to_thread(followed):
        return None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await asyncio.to_thread(seen):
            return True
        await asyncio.sleep(0.5)
    return False


def _record(engine: Engine, provider_id: str, data: bytes, cause: str) -> None:
    """Store a version the file held (secrets redacted: the database never holds a key)."""
    with engine.begin() as conn:
        record_config(conn, provider_id, SOURCE_SSH, redact_config_text(data.decode("utf-8", "replace")), cause)


async def _apply(f: SshConfigFile, api: LlamaSwapAPI, new: bytes, reload_timeout_s: float,
                 health: Callable[[], Awaitable[str | None]], steps: list[str]) -> str | None:
    """Write ``new`` and wait for reload and health; None when healthy, else the reason."""
    watch = _ReloadWatch(api)
    try:
        await watch.start()
    except (TimeoutError, httpx.HTTPError, LlamaSwapError):
        return "cannot open /api/events to see the reload"
    try:
        await f.write_atomic(new)
        steps.append(f"wrote {len(new)} bytes ({_sha(new)[:12]})")
        if f.access.reload_command:
            problem = await f.reload()
            if problem is not None:
                return problem
            steps.append("reload_command ran")
        try:
            await asyncio.wait_for(watch.closed.wait(), reload_timeout_s)
        except TimeoutError:
            return (f"llama-swap did not reload within {reload_timeout_s:g} s (run it with -watch-config, or set "
                    "ssh.reload_command in the registry)")
        steps.append("reload seen (event stream closed)")
    finally:
        await watch.stop()
    return await health()


async def edit_host_config(
    engine: Engine,
    provider: Provider,
    new_text: str,
    creds: SshCredentials,
    *,
    requested_by: str | None = None,
    expect_sha256: str | None = None,
    probe_models: Sequence[str] = (),
    health_timeout_s: float = 60.0,
    reload_timeout_s: float = 15.0,
    lease_wait_s: float = 0.0,
    health_check: HealthCheck | None = None,
    client: httpx.AsyncClient | None = None,
) -> EditResult:
    """Apply ``new_text`` as the provider's config file, safely (see the module docstring)."""
    dsn = engine.url.render_as_string(hide_password=False)
    new = new_text.encode("utf-8")
    with engine.begin() as conn:
        action_id = insert_action(conn, provider.id, "edit_config", provider.ssh.config_path if provider.ssh else None,
                                  {"new_sha256": _sha(new), "probe_models": list(probe_models)}, requested_by,
                                  status="running")
    steps: list[str] = []
    result = EditResult("failed", action_id, "not started")
    try:
        async with lease.LeaseKeeper(dsn, provider.id, lease.SCOPE_HOST, f"action {action_id}: edit_config",
                                     holder=lease.holder_id("config-edit"), wait_s=lease_wait_s) as keeper:
            with engine.begin() as conn:
                stale = interrupt_stale_edits(conn, provider.id, action_id)
            if stale:
                steps.append(f"{stale} earlier edit(s) left running by a stopped process marked interrupted")
            async with contextlib.AsyncExitStack() as stack:
                http = client if client is not None else await stack.enter_async_context(
                    httpx.AsyncClient(timeout=30.0))
                result = await _edit(engine, provider, new, creds, http, action_id, steps, expect_sha256,
                                     probe_models, health_timeout_s, reload_timeout_s, health_check, keeper.confirm)
    except lease.LeaseHeld as exc:
        result = EditResult("refused", action_id, f"provider {provider.id}: {exc}")
    except HostConfigError as exc:
        result = EditResult("refused" if not steps else "failed", action_id, str(exc), steps=tuple(steps))
    audit = {"status": result.status, "before_sha256": result.before_sha256, "after_sha256": result.after_sha256,
             "backup_path": result.backup_path, "rolled_back": result.rolled_back, "problems": list(result.problems),
             "steps": list(result.steps or steps)}
    final = "succeeded" if result.status in ("succeeded", "unchanged") else result.status
    with engine.begin() as conn:
        finish_action(conn, action_id, final, audit, None if final == "succeeded" else result.detail)
    log.info("provider %s: config edit %d %s", provider.id, action_id, result.status)
    return result


async def _edit(engine: Engine, provider: Provider, new: bytes, creds: SshCredentials, http: httpx.AsyncClient,
                action_id: int, steps: list[str], expect_sha256: str | None, probe_models: Sequence[str],
                health_timeout_s: float, reload_timeout_s: float, health_check: HealthCheck | None,
                lease_held: LeaseCheck) -> EditResult:
    api = LlamaSwapAPI(provider, http)
    schema: dict[str, Any] | None = None
    try:
        schema = await McpClient(provider, http).config_schema()
        steps.append("schema from MCP docs__get_config_schema")
    except McpUnavailable:
        steps.append("no MCP schema (host predates it): BooControl's checks only")
    problems = validate_config(new.decode("utf-8", "replace"), schema)
    if problems:
        return EditResult("refused", action_id, f"the new config has {len(problems)} problem(s): {problems[0]}",
                          problems=tuple(problems), steps=tuple(steps))
    new_text = new.decode("utf-8")
    expected = listed_models(new_text)

    async def health_of(config_models: tuple[set[str], set[str]]) -> str | None:
        if health_check is not None:
            return await health_check(api)
        return await default_health(api, config_models, probe_models, health_timeout_s)

    async with open_config_file(provider, creds) as f:
        before = await f.read_bytes()
        b_sha, a_sha = _sha(before), _sha(new)
        _record(engine, provider.id, before, f"before edit #{action_id}")
        if expect_sha256 and not _sha(before).startswith(expect_sha256.lower()):
            return EditResult("refused", action_id, f"{f.path} changed since it was read (sha256 "
                              f"{_sha(before)[:12]}, expected {expect_sha256[:12]}): read it again", before_sha256=b_sha, after_sha256=a_sha,
                              steps=tuple(steps))
        if before == new:
            return EditResult("unchanged", action_id, "the file already has this content", before_sha256=b_sha, after_sha256=a_sha, steps=tuple(steps))
        backup_path, backup = await f.backup(datetime.now(UTC))
        steps.append(f"backup {backup_path}")
        if not await lease_held():
            return EditResult("refused", action_id, f"provider {provider.id}: the host lease was lost before the "
                              f"write (broken or taken over); nothing written (backup {backup_path})",
                              before_sha256=b_sha, after_sha256=a_sha, backup_path=backup_path, steps=tuple(steps))
        written_at = datetime.now(UTC)
        why = await _apply(f, api, new, reload_timeout_s, lambda: health_of(expected), steps)
        if any(step.startswith("wrote ") for step in steps):  # the host held it, however briefly
            _record(engine, provider.id, new, f"edit #{action_id}")
        if why is None:
            seen = await _connector_saw_reload(engine, provider.id, written_at, 30.0)
            steps.append({None: "no connector follows this host", True: "the connector recorded the reload",
                          False: "the connector did not record the reload within 30 s"}[seen])
            return EditResult("succeeded", action_id, f"applied; backup {backup_path}", before_sha256=b_sha, after_sha256=a_sha,
                              backup_path=backup_path, steps=tuple(steps))
        steps.append(f"unhealthy: {why}")
        if not await lease_held():
            steps.append("the host lease was lost during the edit: rolling back to the known-good file anyway")
        old_models = listed_models(backup.decode("utf-8", "replace"))
        try:
            again = await _apply(f, api, backup, reload_timeout_s,
                                 lambda: default_health(api, old_models, (), health_timeout_s), steps)
            restored = await f.read_bytes()
        except HostConfigError as exc:
            return EditResult("failed", action_id, f"{why}; ROLLBACK FAILED: {exc} (the backup is {backup_path})",
                              before_sha256=b_sha, after_sha256=a_sha, backup_path=backup_path, steps=tuple(steps))
        if restored != backup:
            return EditResult("failed", action_id, f"{why}; ROLLBACK FAILED: {f.path} differs from backup "
                              f"{backup_path}", before_sha256=b_sha, after_sha256=a_sha, backup_path=backup_path, steps=tuple(steps))
        _record(engine, provider.id, restored, f"rollback of edit #{action_id}")
        steps.append("rolled back: file identical to the backup" + (f"; after rollback: {again}" if again else ""))
        return EditResult("failed", action_id, f"{why}; rolled back to {backup_path}", before_sha256=b_sha, after_sha256=a_sha,
                          backup_path=backup_path, rolled_back=True, steps=tuple(steps))
