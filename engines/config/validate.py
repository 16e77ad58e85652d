"""Checks a config text must pass before it is written to a host: the schema the host publishes (MCP
``docs__get_config_schema``, where offered) and BooControl's own checks of what llama-swap would refuse or
mis-route. Pure: returns the problems, one line each (empty = valid)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import jsonschema
import yaml

_MACRO = re.compile(r"\$\{([A-Za-z0-9_.-]+)\}")
_BUILTIN_MACROS = {"PORT", "MODEL_ID"}


def _schema_problems(doc: Any, schema: Mapping[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(dict(schema))
    out = []
    for err in sorted(validator.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path]):
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        out.append(f"schema: {where}: {err.message}")
    return out


def _own_problems(doc: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    models = doc.get("models")
    if not isinstance(models, dict) or not models:
        return ["models: at least one model is required"]
    macros = {str(k) for k in (doc.get("macros") or {})} if isinstance(doc.get("macros"), dict) else set()
    names: dict[str, str] = {}
    for mid, m in models.items():
        if not isinstance(m, dict):
            out.append(f"models.{mid}: must be a mapping")
            continue
        cmd = m.get("cmd")
        if not isinstance(cmd, str) or not cmd.strip():
            out.append(f"models.{mid}.cmd: required (the command that starts the model's server)")
            continue
        local = macros | {str(k) for k in (m.get("macros") or {})}
        for name in _MACRO.findall(cmd):
            if name not in local and name not in _BUILTIN_MACROS and not name.startswith("env."):
                out.append(f"models.{mid}.cmd: macro ${{{name}}} is not defined")
        ttl = m.get("ttl", -1)
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < -1:
            out.append(f"models.{mid}.ttl: must be an integer >= -1, got {ttl!r}")
        names.setdefault(str(mid), f"model {mid}")
    for mid, m in models.items():
        for alias in (m.get("aliases") or []) if isinstance(m, dict) else []:
            if str(alias) in names:
                out.append(f"models.{mid}.aliases: {alias!r} is already {names[str(alias)]}")
            else:
                names[str(alias)] = f"an alias of {mid}"
    member_of: dict[str, str] = {}
    for gid, g in (doc.get("groups") or {}).items():
        for member in (g or {}).get("members") or [] if isinstance(g, dict) else []:
            if str(member) not in models:
                out.append(f"groups.{gid}.members: {member!r} is not a model id")
            elif str(member) in member_of:
                out.append(f"groups.{gid}.members: {member!r} is already in group {member_of[str(member)]}")
            else:
                member_of[str(member)] = str(gid)
    for pid, p in (doc.get("peers") or {}).items():
        proxy = (p or {}).get("proxy") if isinstance(p, dict) else None
        if not isinstance(proxy, str) or not re.match(r"^https?://[^/\s]+", proxy):
            out.append(f"peers.{pid}.proxy: must be an http(s) URL")
    hct = doc.get("healthCheckTimeout")
    if hct is not None and (not isinstance(hct, int) or isinstance(hct, bool) or hct < 15):
        out.append(f"healthCheckTimeout: must be an integer >= 15, got {hct!r}")
    return out


def validate_config(text: str, schema: Mapping[str, Any] | None = None) -> list[str]:
    """Problems of ``text`` as a llama-swap config: YAML, the host's schema (when given), BooControl's checks."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return [f"invalid YAML: {str(exc).splitlines()[0]}"]
    if not isinstance(doc, dict):
        return ["the top level must be a mapping"]
    return (_schema_problems(doc, schema) if schema else []) + _own_problems(doc)
