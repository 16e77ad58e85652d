"""A llama-swap config (effective config from MCP or the raw file) reduced to what diff and lint compare.

Context size and quantization are read from the model's command line the way llama.cpp takes them (``-c`` /
``--ctx-size``; the quantization tag in the ``-m``/``--model`` file name, a ``-hf repo:QUANT`` suffix or the
model id). A raw file's ``${macro}`` references are expanded from its ``macros`` (``${PORT}`` and ``${env.*}``
are left as written: they do not change what is compared).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

_QUANT = re.compile(r"(?i)(?<![A-Za-z0-9])(I?Q[1-8](?:_[0-9])?(?:_K)?(?:_(?:XXS|XS|S|M|L|XL|NL))?|BF16|F16|F32|"
                    r"MXFP4|AWQ|GPTQ|FP8)(?![A-Za-z0-9])")
_MACRO = re.compile(r"\$\{([A-Za-z0-9_.-]+)\}")


class ConfigParseError(ValueError):
    """The text is not a llama-swap config (one line)."""


@dataclass(frozen=True)
class ModelConfig:
    model_id: str
    cmd: str
    ctx_size: int | None
    quantization: str | None
    ttl: int  # effective seconds: the model's ttl, or globalTTL when it is -1/unset; 0 = never unloads
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class GroupConfig:
    group_id: str
    members: tuple[str, ...]
    swap: bool = True
    exclusive: bool = True
    persistent: bool = False


@dataclass(frozen=True)
class HostConfig:
    provider_id: str
    base_url: str
    models: Mapping[str, ModelConfig]
    groups: tuple[GroupConfig, ...] = ()
    peers: Mapping[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)  # peer -> (proxy, models)
    matrix_sets: Mapping[str, str] = field(default_factory=dict)  # set name -> DSL
    matrix_vars: Mapping[str, str] = field(default_factory=dict)


def _expand(text: str, macros: Mapping[str, str]) -> str:
    for _ in range(4):
        new = _MACRO.sub(lambda m: macros.get(m.group(1), m.group(0)), text)
        if new == text:
            return new
        text = new
    return text


def _argv(cmd: str) -> list[str]:
    try:
        return shlex.split(cmd)
    except ValueError:
        return cmd.split()


def _option(argv: list[str], names: tuple[str, ...]) -> str | None:
    for i, a in enumerate(argv):
        if a in names and i + 1 < len(argv):
            return argv[i + 1]
        for n in names:
            if n.startswith("--") and a.startswith(n + "="):
                return a.split("=", 1)[1]
    return None


def ctx_size(cmd: str) -> int | None:
    value = _option(_argv(cmd), ("-c", "--ctx-size", "--max-model-len"))
    return int(value) if value is not None and value.isdigit() else None


def quantization(cmd: str, model_id: str = "") -> str | None:
    argv = _argv(cmd)
    for source in (_option(argv, ("-m", "--model")), _option(argv, ("-hf", "--hf-repo")), model_id):
        if source:
            found = _QUANT.findall(source.rsplit("/", 1)[-1] if source != model_id else source)
            if found:
                return str(found[-1]).upper()
    return None


def parse_host_config(provider_id: str, base_url: str, text: str) -> HostConfig:
    """Parse config YAML (effective or raw); raises `ConfigParseError`."""
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigParseError(f"{provider_id}: invalid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise ConfigParseError(f"{provider_id}: the top level is not a mapping")
    return host_config_from_doc(provider_id, base_url, doc)


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def host_config_from_doc(provider_id: str, base_url: str, doc: Mapping[str, Any]) -> HostConfig:
    macros = {str(k): str(v) for k, v in (doc.get("macros") or {}).items()}
    global_ttl = _int(doc.get("globalTTL"), 0)
    models: dict[str, ModelConfig] = {}
    for mid, raw in (doc.get("models") or {}).items():
        m = raw if isinstance(raw, dict) else {}
        local = macros | {str(k): str(v) for k, v in (m.get("macros") or {}).items()} | {"MODEL_ID": str(mid)}
        cmd = " ".join(_expand(str(m.get("cmd") or ""), local).split())
        ttl = _int(m.get("ttl"), -1)
        models[str(mid)] = ModelConfig(str(mid), cmd, ctx_size(cmd), quantization(cmd, str(mid)),
                                       global_ttl if ttl < 0 else ttl,
                                       tuple(str(a) for a in m.get("aliases") or []))
    groups = []
    router = (doc.get("routing") or {}).get("router") or {} if isinstance(doc.get("routing"), dict) else {}
    legacy = doc.get("groups") or (router.get("groups") if isinstance(router, dict) else None) or {}
    for gid, g in legacy.items():
        g = g if isinstance(g, dict) else {}
        groups.append(GroupConfig(str(gid), tuple(str(x) for x in g.get("members") or []), bool(g.get("swap", True)),
                                  bool(g.get("exclusive", True)), bool(g.get("persistent", False))))
    peers = {str(p): (str((v or {}).get("proxy") or ""), tuple(str(x) for x in (v or {}).get("models") or []))
             for p, v in (doc.get("peers") or {}).items()}
    matrix = doc.get("matrix") or ((doc.get("routing") or {}).get("router") or {}).get("matrix") or {}
    sets = {str(k): str(v) for k, v in (matrix.get("sets") or {}).items()} if isinstance(matrix, dict) else {}
    mvars = {str(k): str(v) for k, v in (matrix.get("vars") or {}).items()} if isinstance(matrix, dict) else {}
    return HostConfig(provider_id, base_url, models, tuple(groups), peers, sets, mvars)


def matrix_alternatives(dsl: str, sets: Mapping[str, str], vars_: Mapping[str, str],
                        _depth: int = 0) -> list[frozenset[str]]:
    """The model sets a matrix DSL allows to run together (``a & b``, ``a | b``, parentheses, ``+set``)."""
    tokens = re.findall(r"\(|\)|&|\||\+?[^\s&|()]+", dsl)
    pos = 0

    def alt() -> list[frozenset[str]]:
        nonlocal pos
        out = conj()
        while pos < len(tokens) and tokens[pos] == "|":
            pos += 1
            out = out + conj()
        return out

    def conj() -> list[frozenset[str]]:
        nonlocal pos
        out = atom()
        while pos < len(tokens) and tokens[pos] == "&":
            pos += 1
            right = atom()
            out = [a | b for a in out for b in right]
        return out

    def atom() -> list[frozenset[str]]:
        nonlocal pos
        if pos >= len(tokens):
            raise ConfigParseError(f"matrix set {dsl!r}: unexpected end")
        tok = tokens[pos]
        pos += 1
        if tok == "(":
            out = alt()
            if pos >= len(tokens) or tokens[pos] != ")":
                raise ConfigParseError(f"matrix set {dsl!r}: missing )")
            pos += 1
            return out
        if tok.startswith("+"):
            name = tok[1:]
            if name not in sets or _depth > 8:
                raise ConfigParseError(f"matrix set {dsl!r}: unknown set +{name}")
            return matrix_alternatives(sets[name], sets, vars_, _depth + 1)
        return [frozenset({vars_.get(tok, tok)})]

    result = alt()
    if pos != len(tokens):
        raise ConfigParseError(f"matrix set {dsl!r}: unexpected {tokens[pos]!r}")
    return result


def hosts_from_texts(rows: Iterable[tuple[str, str, str]], base_urls: Mapping[str, str]) -> tuple[
        list[HostConfig], list[str]]:
    """Parsed configs from stored ``(provider_id, source, text)`` rows, one per provider (MCP's effective config
    preferred over the file), only providers in ``base_urls``; and one line per text that did not parse."""
    hosts: list[HostConfig] = []
    problems: list[str] = []
    seen: set[str] = set()
    for pid, source, text in sorted(rows, key=lambda r: (r[0], r[1] != "mcp")):
        if pid in seen or pid not in base_urls:
            continue
        seen.add(pid)
        try:
            hosts.append(parse_host_config(pid, base_urls[pid], text))
        except ConfigParseError as exc:
            problems.append(f"{pid}: stored {source} config not parsed: {exc}")
    return hosts, problems
