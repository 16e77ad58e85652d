"""Provider registry and the one resolver for ``provider/model`` identities.

A provider is one inference server the cockpit watches: a llama-swap instance or any OpenAI-compatible
server; what each ``kind`` supports is the table in `core.kinds`. The registry is a YAML file::

    default_provider: gpu-box
    providers:
      - id: gpu-box
        label: GPU box (RTX 4090)
        base_url: http://10.0.0.5:8080
        kind: llama-swap
        api_key_env: GPU_BOX_KEY      # the key itself stays in the environment
        labels: {site: home}
        ssh:                          # optional: the llama-swap config file, read and edited over SSH
          config_path: /etc/llama-swap/config.yaml
          user: llama                 # default root; host defaults to base_url's host, port to 22
          key: gpu-box_ed25519        # a file in DATA_DIR/secrets/ (default id_ed25519)

Model identity is always the pair (provider id, model id), written ``provider/model``. Model ids may
themselves contain ``/`` (llama-swap peers are ``peer/model``), so only the first segment is tested
against the provider ids; a string whose first segment is not a provider id is a bare legacy id and
resolves to the default provider.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from core.kinds import DEFAULT_KIND, KINDS, ProviderKind, kind_spec
from core.yaml_errors import yaml_error_line, yaml_problem

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


class RegistryError(ValueError):
    """A registry file that cannot be used; the message names the file, line and field."""


@dataclass(frozen=True)
class SshAccess:
    """How to reach a llama-swap host's config file over SSH (registry field ``ssh``). ``key`` is the NAME of a
    private key file in the data directory's ``secrets/`` (never the key itself); the host key must be in
    ``secrets/known_hosts``. ``host`` defaults to the host of ``base_url``. ``reload_command`` (run over SSH after
    a config edit, e.g. ``systemctl reload llama-swap``) is for hosts whose llama-swap runs without
    ``-watch-config``."""

    host: str
    config_path: str
    user: str = "root"
    port: int = 22
    key: str = "id_ed25519"
    reload_command: str | None = None


@dataclass(frozen=True)
class Provider:
    id: str
    label: str
    base_url: str
    kind: str = DEFAULT_KIND
    api_key_env: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    ssh: SshAccess | None = None

    def __post_init__(self) -> None:
        kind_spec(self.kind)  # an unknown kind is refused here, not found later by a string compare

    @property
    def spec(self) -> ProviderKind:
        """What this provider's kind supports (`core.kinds`)."""
        return kind_spec(self.kind)

    def missing_key_env(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The variable named by ``api_key_env`` when it is unset or empty (the key is missing), else None."""
        if self.api_key_env and self.api_key(environ) is None:
            return self.api_key_env
        return None

    def missing_key_message(self, environ: Mapping[str, str] | None = None) -> str | None:
        """One line naming the provider and the unset variable, and what to do; None when nothing is missing."""
        var = self.missing_key_env(environ)
        if var is None:
            return None
        return (f"provider {self.id}: its API key variable {var} is not set; export {var}=<key> where the "
                f"connector runs and restart it (nothing is sent to {self.id} without its key)")

    def api_key(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The provider's key, read from the environment variable it names (never stored)."""
        if not self.api_key_env:
            return None
        env = os.environ if environ is None else environ
        value = env.get(self.api_key_env)
        return value or None

    def __repr__(self) -> str:  # keep keys out of any repr by construction: only the env var name
        return f"Provider(id={self.id!r}, kind={self.kind!r}, base_url={self.base_url!r})"


@dataclass(frozen=True)
class ModelRef:
    provider_id: str
    model_id: str

    def __str__(self) -> str:
        return f"{self.provider_id}/{self.model_id}"


@dataclass(frozen=True)
class Registry:
    providers: tuple[Provider, ...]
    default_provider: str | None = None
    source: str = "<memory>"

    def get(self, provider_id: str) -> Provider:
        for p in self.providers:
            if p.id == provider_id:
                return p
        raise KeyError(f"unknown provider {provider_id!r} (known: {', '.join(self.ids()) or 'none'})")

    def ids(self) -> list[str]:
        return [p.id for p in self.providers]

    def resolve(self, model: str) -> ModelRef:
        """Resolve ``provider/model`` or a bare legacy model id to a `ModelRef`."""
        model = model.strip()
        if not model:
            raise ValueError("empty model id")
        head, sep, rest = model.partition("/")
        if sep and rest and head in self.ids():
            return ModelRef(head, rest)
        if self.default_provider is None:
            raise ValueError(f"model {model!r} names no known provider and no default_provider is configured")
        return ModelRef(self.default_provider, model)


def _line_of(node: yaml.Node | None) -> int:
    return (node.start_mark.line + 1) if node is not None else 1


def _find_key(mapping: yaml.MappingNode, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    for k, v in mapping.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return k, v
    return None


def parse_registry(text: str, source: str = "<string>") -> Registry:
    """Parse and validate registry YAML; raise `RegistryError` naming file, line and field."""

    def fail(node: yaml.Node | None, where: str, msg: str) -> RegistryError:
        return RegistryError(f"{source}:{_line_of(node)}: {where}: {msg}")

    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise RegistryError(f"{source}:{yaml_error_line(exc)}: invalid YAML: {yaml_problem(exc)}") from None
    if root is None:
        return Registry(providers=(), default_provider=None, source=source)
    if not isinstance(root, yaml.MappingNode):
        raise fail(root, "(top level)", "expected a mapping with a 'providers' list")
    data: Any = yaml.safe_load(text)
    known_top = {"providers", "default_provider"}
    for k, _ in root.value:
        if k.value not in known_top:
            raise fail(k, k.value, f"unknown key (expected one of {sorted(known_top)})")
    found = _find_key(root, "providers")
    providers: list[Provider] = []
    if found is not None:
        knode, pnode = found
        if not isinstance(pnode, yaml.SequenceNode):
            raise fail(pnode, "providers", "expected a list of providers")
        seen: dict[str, int] = {}
        for i, (item_node, item) in enumerate(zip(pnode.value, data.get("providers") or [], strict=False)):
            providers.append(_parse_provider(item_node, item, i, fail, seen))
    default = data.get("default_provider")
    if default is not None:
        dnode = _find_key(root, "default_provider")
        vnode = dnode[1] if dnode else root
        if not isinstance(default, str) or default not in {p.id for p in providers}:
            raise fail(vnode, "default_provider", f"{default!r} is not the id of a listed provider")
    elif providers:
        local = [p for p in providers if p.spec.host_operations]  # prefer a self-hosted llama-swap
        default = (local or providers)[0].id
    return Registry(providers=tuple(providers), default_provider=default, source=source)


def _parse_provider(node: yaml.Node, item: Any, index: int, fail: Any, seen: dict[str, int]) -> Provider:
    where = f"providers[{index}]"
    if not isinstance(node, yaml.MappingNode) or not isinstance(item, dict):
        raise fail(node, where, "expected a mapping with id, label, base_url, kind")
    allowed = {"id", "label", "base_url", "kind", "api_key_env", "labels", "ssh"}
    for k, _ in node.value:
        if k.value not in allowed:
            raise fail(k, f"{where}.{k.value}", f"unknown field (allowed: {', '.join(sorted(allowed))})")

    def field_node(name: str) -> yaml.Node:
        f = _find_key(node, name)
        return f[1] if f else node

    for req in ("id", "base_url"):
        if req not in item or item[req] in (None, ""):
            raise fail(node, f"{where}.{req}", "required field is missing")
    pid = item["id"]
    if not isinstance(pid, str) or not _ID_RE.match(pid):
        raise fail(
            field_node("id"), f"{where}.id", f"{pid!r} must be lowercase letters, digits, '-', '_' or '.'"
        )
    if pid in seen:
        raise fail(
            field_node("id"), f"{where}.id", f"duplicate provider id {pid!r} (first at line {seen[pid]})"
        )
    seen[pid] = _line_of(field_node("id"))
    base_url = item["base_url"]
    if not isinstance(base_url, str) or not re.match(r"^https?://[^/\s]+", base_url):
        raise fail(field_node("base_url"), f"{where}.base_url", f"{base_url!r} is not an http(s) URL")
    kind = item.get("kind", DEFAULT_KIND)
    if not isinstance(kind, str) or kind not in KINDS:
        raise fail(field_node("kind"), f"{where}.kind", f"{kind!r} is not one of {', '.join(KINDS)}")
    suffix = KINDS[kind].openai_path
    if suffix and base_url.rstrip("/").endswith(suffix):
        raise fail(
            field_node("base_url"), f"{where}.base_url",
            f"{base_url!r} ends with {suffix}: give the server root (BooControl adds {suffix} itself)",
        )
    label = item.get("label", pid)
    if not isinstance(label, str):
        raise fail(field_node("label"), f"{where}.label", "must be a string")
    key_env = item.get("api_key_env")
    if key_env is not None and (
        not isinstance(key_env, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key_env)
    ):
        raise fail(
            field_node("api_key_env"),
            f"{where}.api_key_env",
            "must be the NAME of an environment variable (the key itself never goes in this file)",
        )
    labels = item.get("labels") or {}
    if not isinstance(labels, dict) or not all(isinstance(k, str) for k in labels):
        raise fail(field_node("labels"), f"{where}.labels", "must be a mapping of strings")
    ssh = _parse_ssh(item.get("ssh"), base_url, field_node("ssh"), f"{where}.ssh", fail)
    return Provider(
        id=pid,
        label=label,
        base_url=base_url.rstrip("/"),
        kind=kind,
        api_key_env=key_env,
        labels={str(k): str(v) for k, v in labels.items()},
        ssh=ssh,
    )


def _parse_ssh(raw: Any, base_url: str, node: yaml.Node, where: str, fail: Any) -> SshAccess | None:
    """``ssh: {config_path, host?, port?, user?, key?}``: where the host's llama-swap config file is."""
    if raw is None:
        return None
    allowed = {"host", "port", "user", "config_path", "key", "reload_command"}
    if not isinstance(raw, dict) or set(raw) - allowed:
        raise fail(node, where, f"must be a mapping with config_path and optionally {', '.join(sorted(allowed - {'config_path'}))}")
    path = raw.get("config_path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise fail(node, f"{where}.config_path", "required: the absolute path of the llama-swap config file")
    port = raw.get("port", 22)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise fail(node, f"{where}.port", f"{port!r} is not a port number")
    key = raw.get("key", "id_ed25519")
    if not isinstance(key, str) or not re.match(r"^[A-Za-z0-9_.-]+$", key) or key.startswith("."):
        raise fail(node, f"{where}.key", "must be the NAME of a key file in the data directory's secrets/ "
                   "(the key itself never goes in this file)")
    host = raw.get("host") or re.sub(r"^https?://", "", base_url).split("/")[0].rsplit(":", 1)[0].strip("[]")
    user = raw.get("user", "root")
    if not isinstance(host, str) or not isinstance(user, str) or not host or not user:
        raise fail(node, where, "host and user must be non-empty strings")
    reload = raw.get("reload_command")
    if reload is not None and (not isinstance(reload, str) or not reload.strip()):
        raise fail(node, f"{where}.reload_command", "must be a non-empty shell command")
    return SshAccess(host=host, config_path=path, user=user, port=port, key=key, reload_command=reload)


def load_registry(path: Path) -> Registry:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RegistryError(f"{path}: provider registry file not found") from None
    return parse_registry(text, source=str(path))


def dump_registry(providers: Iterable[Provider], default_provider: str | None) -> str:
    doc: dict[str, Any] = {}
    if default_provider:
        doc["default_provider"] = default_provider
    doc["providers"] = [
        {
            k: v
            for k, v in {
                "id": p.id,
                "label": p.label,
                "base_url": p.base_url,
                "kind": p.kind,
                "api_key_env": p.api_key_env,
                "labels": dict(p.labels) or None,
                "ssh": {"host": p.ssh.host, "port": p.ssh.port, "user": p.ssh.user,
                        "config_path": p.ssh.config_path, "key": p.ssh.key,
                        **({"reload_command": p.ssh.reload_command} if p.ssh.reload_command else {})}
                if p.ssh else None,
            }.items()
            if v is not None
        }
        for p in providers
    ]
    return yaml.safe_dump(doc, sort_keys=False)
