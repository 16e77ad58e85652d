"""Reading (and writing) a llama-swap host's configuration: through its MCP endpoint where it offers one, else
the config file over SSH.

* **MCP** (``POST /api/mcp``, docs/llama-swap-api.md §16; newer llama-swap only, detected by asking, never by
  version number): `McpClient` speaks the stateless JSON-RPC of MCP revision ``2026-07-28`` with the headers it
  requires (``Mcp-Protocol-Version``, ``Mcp-Method``, ``Mcp-Name``) and the provider's API key like every other
  llama-swap request. ``config__get_config`` is the *effective* config (defaults filled, macros expanded,
  secrets already redacted by llama-swap); a result over 32 KB is refused by llama-swap, so a big config is read
  piece by piece (each top-level key, then each model) and put together again. ``docs__get_config_schema``
  gives the schema an edit is validated against.
* **SSH** (asyncssh): `SshConfigFile` reads, backs up and atomically replaces the config file named by the
  registry's ``ssh`` block (`core.providers.SshAccess`) over SFTP. The private key is a file in the data
  directory's ``secrets/`` (named by ``ssh.key``); the host key must be in ``secrets/known_hosts`` (no
  trust-on-first-use). Neither the key nor its path's contents ever reach a log line or an error message.

`read_host_config` picks the source: MCP when the host answers it, else SSH when the registry says how, else a
`HostConfigError` saying what to configure.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncssh
import httpx
import yaml

from connectors.llama_swap_api import auth_headers
from core.providers import Provider, SshAccess
from warehouse.queries.redaction import REDACTED, redact_text

MCP_PATH = "/api/mcp"
MCP_PROTOCOL = "2026-07-28"
SOURCE_MCP, SOURCE_SSH = "mcp", "ssh"


class HostConfigError(RuntimeError):
    """The config cannot be read or written; the message is one line and names the provider."""


class McpUnavailable(HostConfigError):
    """The host has no (usable) MCP endpoint: older llama-swap, or another protocol revision."""


class McpToolError(HostConfigError):
    """The tool ran but could not answer (``isError: true``), e.g. a result over 32 KB."""


@dataclass(frozen=True)
class ConfigRead:
    provider_id: str
    source: str  # mcp | ssh
    text: str  # mcp: the effective config as YAML; ssh: the file's text, secrets redacted (`redact_config_text`)
    read_at: datetime


_SECRET_NAME = re.compile(r"(?i)(api[-_]?key|token|secret|password|passwd)")
_CREDENTIAL = re.compile(r"\b(hf_[A-Za-z0-9]{8,}|gh[pousr]_[A-Za-z0-9]{8,}|xox[abp]-[\w-]{8,})")


def config_secrets(doc: Any) -> list[str]:
    """The secret values a llama-swap config holds: ``apiKeys``, peers' ``apiKey``, model ``env`` entries with a
    secret-looking name, and ``macros`` with a secret-looking name."""
    if not isinstance(doc, dict):
        return []
    found = [str(k) for k in doc.get("apiKeys") or [] if k]
    found += [str(p["apiKey"]) for p in (doc.get("peers") or {}).values() if isinstance(p, dict) and p.get("apiKey")]
    found += [str(v) for k, v in (doc.get("macros") or {}).items() if _SECRET_NAME.search(str(k)) and v]
    for m in (doc.get("models") or {}).values():
        for entry in (m or {}).get("env") or [] if isinstance(m, dict) else []:
            name, sep, value = str(entry).partition("=")
            if sep and value and _SECRET_NAME.search(name):
                found.append(value)
    return sorted(set(found), key=len, reverse=True)


def redact_config_text(text: str) -> str:
    """A config file's text with its secrets replaced by ``[REDACTED]`` (layout and comments kept): what is stored
    and shown of a file read over SSH (MCP's effective config arrives redacted by llama-swap already)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        doc = None
    return _CREDENTIAL.sub(REDACTED, redact_text(text, config_secrets(doc)))


class McpClient:
    """JSON-RPC over ``POST /api/mcp`` (stateless: every request stands alone)."""

    def __init__(self, provider: Provider, client: httpx.AsyncClient, timeout_s: float = 15.0) -> None:
        self.provider, self.client, self.timeout_s = provider, client, timeout_s
        self._next_id = 0

    async def request(self, method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        self._next_id += 1
        headers = {"Mcp-Protocol-Version": MCP_PROTOCOL, "Mcp-Method": method, "Accept": "application/json",
                   **auth_headers(self.provider)}
        if method == "tools/call" and params is not None:
            headers["Mcp-Name"] = str(params.get("name"))
        body = {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": dict(params or {})}
        pid = self.provider.id
        try:
            resp = await self.client.post(self.provider.base_url + MCP_PATH, json=body, headers=headers,
                                          timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise HostConfigError(f"provider {pid}: MCP request failed: {exc.__class__.__name__}") from None
        if resp.status_code in (404, 405):
            raise McpUnavailable(f"provider {pid} has no MCP endpoint ({MCP_PATH} answered HTTP {resp.status_code})")
        if resp.status_code in (401, 403):
            raise HostConfigError(f"provider {pid}: MCP refused the API key (HTTP {resp.status_code})")
        try:
            doc = resp.json()
        except ValueError:
            raise McpUnavailable(f"provider {pid}: {MCP_PATH} did not answer JSON-RPC "
                                 f"(HTTP {resp.status_code})") from None
        error = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(error, dict):
            if error.get("code") == -32022:
                supported = (error.get("data") or {}).get("supported")
                raise McpUnavailable(f"provider {pid}: MCP protocol {MCP_PROTOCOL} not supported "
                                     f"(host supports {supported})")
            raise HostConfigError(f"provider {pid}: MCP {method} failed: {error.get('code')} {error.get('message')}")
        result = doc.get("result") if isinstance(doc, dict) else None
        if not isinstance(result, dict):
            raise HostConfigError(f"provider {pid}: MCP {method} answered no result")
        return result

    async def initialize(self) -> dict[str, Any]:
        return await self.request("initialize", {"protocolVersion": MCP_PROTOCOL, "capabilities": {},
                                                 "clientInfo": {"name": "boocontrol", "version": "0"}})

    async def tool_names(self) -> list[str]:
        names: list[str] = []
        cursor: str | None = None
        for _ in range(100):  # pages
            page = await self.request("tools/list", {"cursor": cursor} if cursor else {})
            names += [str(t.get("name")) for t in page.get("tools") or []]
            cursor = page.get("nextCursor")
            if not cursor:
                break
        return names

    async def call_tool(self, name: str, arguments: Mapping[str, Any] | None = None) -> str:
        result = await self.request("tools/call", {"name": name, "arguments": dict(arguments or {})})
        text = "".join(str(c.get("text", "")) for c in result.get("content") or [] if c.get("type") == "text")
        if result.get("isError"):
            raise McpToolError(f"provider {self.provider.id}: {name}: {text.strip().splitlines()[0] if text else '?'}")
        return text

    async def get_config(self, query: str | None = None) -> str:
        return await self.call_tool("config__get_config", {"query": query} if query else {})

    async def config_schema(self, key: str = "") -> dict[str, Any]:
        text = await self.call_tool("docs__get_config_schema", {"key": key} if key else {})
        try:
            doc = json.loads(text)
        except ValueError:
            doc = yaml.safe_load(text)
        if not isinstance(doc, dict):
            raise HostConfigError(f"provider {self.provider.id}: docs__get_config_schema answered no schema")
        return doc

    async def effective_config(self) -> str:
        """The whole effective config as YAML; read piecewise when llama-swap refuses it as too large."""
        try:
            return await self.get_config()
        except McpToolError:
            pass
        doc: dict[str, Any] = {}
        for key in _load_one(await self.get_config("keys")) or []:
            q = f".[{json.dumps(key)}]"
            try:
                doc[key] = _load_one(await self.get_config(q))
            except McpToolError:  # one key still too big: a mapping (models), read entry by entry
                doc[key] = {k: _load_one(await self.get_config(f"{q}[{json.dumps(k)}]"))
                            for k in _load_one(await self.get_config(f"{q} | keys_unsorted")) or []}
        return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def _load_one(text: str) -> Any:
    return yaml.safe_load(text)


# ---- SSH ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SshCredentials:
    """Where the key and the known host keys are (``Settings.secrets_dir``); the key is read by asyncssh only."""

    secrets_dir: Path

    def key_file(self, access: SshAccess) -> Path:
        return self.secrets_dir / access.key

    @property
    def known_hosts(self) -> Path:
        return self.secrets_dir / "known_hosts"


def backup_name(path: str, at: datetime) -> str:
    """``/etc/llama-swap/config.yaml`` → ``/etc/llama-swap/config.yaml.20261202T134501.123456Z.bak`` (UTC; names
    sort in time order)."""
    return f"{path}.{at.astimezone(UTC):%Y%m%dT%H%M%S.%f}Z.bak"


class SshConfigFile:
    """One SFTP session to a host's config file: read, back up, replace atomically, restore."""

    def __init__(self, provider_id: str, access: SshAccess, sftp: asyncssh.SFTPClient,
                 conn: asyncssh.SSHClientConnection | None = None) -> None:
        self.provider_id, self.access, self.sftp, self.conn = provider_id, access, sftp, conn

    async def reload(self, timeout_s: float = 30.0) -> str | None:
        """Run the registry's ``reload_command`` on the host; None when it exited 0, else why not (one line)."""
        command = self.access.reload_command
        if not command or self.conn is None:
            return "no reload_command"
        try:
            done = await self.conn.run(command, check=False, timeout=timeout_s)
        except (asyncssh.Error, asyncssh.TimeoutError, OSError) as exc:
            return f"reload_command failed: {exc.__class__.__name__}"
        if done.exit_status != 0:
            err = str(done.stderr or "").strip().splitlines()
            return f"reload_command exited {done.exit_status}" + (f": {err[0][:200]}" if err else "")
        return None

    @property
    def path(self) -> str:
        return self.access.config_path

    async def read_bytes(self, path: str | None = None) -> bytes:
        target = path or self.path
        try:
            async with self.sftp.open(target, "rb") as f:
                data = await f.read()
        except asyncssh.SFTPError as exc:
            raise HostConfigError(f"provider {self.provider_id}: cannot read {target} over SSH: {exc.reason}") from None
        return data if isinstance(data, bytes) else str(data).encode()

    async def write_atomic(self, data: bytes, path: str | None = None) -> None:
        """Write ``data`` beside the file and rename it over the file (POSIX rename: readers see the old or the new
        bytes, never a mix); the file's permission bits are kept."""
        target = path or self.path
        tmp = posixpath.join(posixpath.dirname(target), f".{posixpath.basename(target)}.boocontrol-tmp")
        try:
            mode = None
            with contextlib.suppress(asyncssh.SFTPNoSuchFile):
                mode = (await self.sftp.stat(target)).permissions
            async with self.sftp.open(tmp, "wb") as f:
                await f.write(data)
            if mode is not None:
                await self.sftp.chmod(tmp, mode & 0o7777)
            await self.sftp.posix_rename(tmp, target)
        except asyncssh.SFTPError as exc:
            with contextlib.suppress(asyncssh.SFTPError):
                await self.sftp.remove(tmp)
            raise HostConfigError(f"provider {self.provider_id}: cannot write {target} over SSH: {exc.reason}") from None

    async def backup(self, at: datetime) -> tuple[str, bytes]:
        """Copy the file to its timestamped backup; returns (backup path, the bytes backed up)."""
        data = await self.read_bytes()
        name = backup_name(self.path, at)
        await self.write_atomic(data, name)
        if await self.read_bytes(name) != data:
            raise HostConfigError(f"provider {self.provider_id}: backup {name} does not match the file")
        return name, data


@contextlib.asynccontextmanager
async def open_config_file(provider: Provider, creds: SshCredentials,
                           connect_timeout_s: float = 10.0) -> AsyncIterator[SshConfigFile]:
    """An SFTP session to the provider's config file (registry ``ssh`` block, key and known_hosts in secrets)."""
    access = provider.ssh
    if access is None:
        raise HostConfigError(f"provider {provider.id} has no ssh block in the registry (config_path, user, key)")
    key = creds.key_file(access)
    if not key.is_file():
        raise HostConfigError(f"provider {provider.id}: SSH key file secrets/{access.key} not found in the data "
                              "directory")
    if not creds.known_hosts.is_file():
        raise HostConfigError(f"provider {provider.id}: secrets/known_hosts not found in the data directory (add the "
                              f"host key: ssh-keyscan -p {access.port} {access.host} >> secrets/known_hosts)")
    try:
        conn = await asyncssh.connect(access.host, access.port, username=access.user, client_keys=[str(key)],
                                      known_hosts=str(creds.known_hosts), agent_path=None, password=None,
                                      kbdint_auth=False, connect_timeout=connect_timeout_s, config=[])
    except asyncssh.HostKeyNotVerifiable:
        raise HostConfigError(f"provider {provider.id}: the SSH host key of {access.host}:{access.port} is not in "
                              "secrets/known_hosts (or changed): refusing to connect") from None
    except asyncssh.PermissionDenied:
        raise HostConfigError(f"provider {provider.id}: SSH login as {access.user} on {access.host}:{access.port} "
                              f"was refused for key secrets/{access.key}") from None
    except (OSError, asyncssh.Error) as exc:
        raise HostConfigError(f"provider {provider.id}: cannot connect over SSH to {access.host}:{access.port}: "
                              f"{exc.__class__.__name__}") from None
    try:
        async with conn, conn.start_sftp_client() as sftp:
            yield SshConfigFile(provider.id, access, sftp, conn)
    except asyncssh.Error as exc:
        raise HostConfigError(f"provider {provider.id}: SSH session failed: {exc.__class__.__name__}") from None


async def read_host_config(provider: Provider, client: httpx.AsyncClient, creds: SshCredentials | None,
                           prefer: str | None = None) -> ConfigRead:
    """The host's config: MCP's effective config where the host offers it, else the file over SSH.
    ``prefer="ssh"`` reads the file even where MCP answers (what an edit starts from)."""
    if prefer != SOURCE_SSH:
        try:
            text = await McpClient(provider, client).effective_config()
            return ConfigRead(provider.id, SOURCE_MCP, text, datetime.now(UTC))
        except McpUnavailable as exc:
            if provider.ssh is None:
                raise HostConfigError(f"{exc}, and the registry has no ssh block for it") from None
        except HostConfigError:  # the HTTP API is down or refuses: the file may still be readable over SSH
            if provider.ssh is None:
                raise
    if creds is None:
        raise HostConfigError(f"provider {provider.id}: no SSH credentials directory given")
    async with open_config_file(provider, creds) as f:
        data = await f.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise HostConfigError(f"provider {provider.id}: {f.path} is not UTF-8 text") from None
    return ConfigRead(provider.id, SOURCE_SSH, redact_config_text(text), datetime.now(UTC))
