"""llama-swap's MCP endpoint, simulated: ``POST /api/mcp`` (docs/llama-swap-api.md §16, upstream docs page
``guides/api-integration/mcp-endpoint``, 2026-09-04; newer than the buildable llama-swap snapshot, so this is
shaped after the documented behaviour, not a recording).

What is documented, and done here:

* MCP revision ``2026-07-28`` only, stateless, POST only (``GET``/``DELETE`` answer 405), no batching.
* Required headers: ``Mcp-Protocol-Version: 2026-07-28``, ``Mcp-Method`` equal to the body's ``method`` and, on
  ``tools/call``, ``Mcp-Name`` equal to ``params.name``. Another protocol version is JSON-RPC error ``-32022``
  with ``data.supported``. Auth is the rest of the API's (the instance's gate middleware).
* Tools: ``docs__list_docs``, ``docs__get_doc``, ``docs__search_docs``, ``docs__get_config_schema`` (the JSON
  schema of one config key: type, default, allowed values, children), ``config__get_config`` (the effective
  running config as YAML: defaults filled in, ``${env.*}`` and macros expanded, secrets ``[REDACTED]``; an
  optional jq ``query``; several results as YAML documents separated by ``---``; ``null`` for not set; a 5 s
  evaluation cap; a result over 32 KB refused with a request for a narrower query, never truncated) and
  ``sys__now``. A tool that ran but could not answer is a normal result with ``isError: true``; only protocol
  problems are JSON-RPC errors. ``tools/list`` is paginated (``nextCursor``).

Choices of the simulator where the documentation is silent: header problems and malformed bodies are HTTP 400
with a JSON-RPC error (``-32600``; ``-32700`` for unparseable JSON); an unknown method is ``-32601``, an unknown
tool or bad arguments ``-32602`` (HTTP 200); a notification (no ``id``) is HTTP 202 with no body;
``tools/list`` pages hold ``TOOLS_PAGE`` tools; the docs tools serve a few short built-in pages.

The config comes from ``SimulatedInstance.config_doc`` (the parsed config file of ``demo.single``) or, for a
fleet host without a file, is derived from its model specs (``derived_config``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import jq
import yaml
from starlette.requests import Request
from starlette.responses import Response

from demo.simulator import SimulatedInstance

PROTOCOL_VERSION = "2026-07-28"
REDACTED = "[REDACTED]"
RESULT_CAP_BYTES = 32 * 1024
EVAL_CAP_S = 5.0
TOOLS_PAGE = 4

PROTOCOL_UNSUPPORTED = -32022
INVALID_REQUEST = -32600
PARSE_ERROR = -32700
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602

_SESSION_IDS = ["X-Session-ID", "X-Litellm-Session-Id"]

# ---- the config schema (docs__get_config_schema) --------------------------------------------------------


def _s(typ: str | list[str], default: Any = None, description: str = "", **more: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": typ}
    if default is not None:
        out["default"] = default
    if description:
        out["description"] = description
    return out | more


_STRINGS = {"type": "array", "items": {"type": "string"}}
_DURATION = {"type": ["string", "integer"], "description": "a Go duration (5s, 1m30s) or seconds"}

MODEL_SCHEMA: dict[str, Any] = _s("object", description="one model: the command llama-swap starts and how to reach it",
                                  required=["cmd"], additionalProperties=False, properties={
    "cmd": _s("string", description="command line that starts the upstream server; ${PORT} is its port"),
    "cmdStop": _s("string", "", "command that stops it (default: SIGTERM)"),
    "proxy": _s("string", "http://localhost:${PORT}", "where requests for this model go"),
    "aliases": _STRINGS | {"default": []},
    "env": _STRINGS | {"default": [], "description": "NAME=value entries for the upstream process"},
    "checkEndpoint": _s("string", "/health", "readiness probe path; none skips it"),
    "ttl": _s("integer", -1, "seconds idle before unload; -1 = globalTTL, 0 = never", minimum=-1),
    "unloadTimeout": _s("integer", 10, "seconds of graceful stop before kill", minimum=0),
    "concurrencyLimit": _s("integer", 0, "parallel requests before 429 (0 = 10)", minimum=0),
    "name": _s("string", ""), "description": _s("string", ""),
    "unlisted": _s("boolean", False), "useModelName": _s("string", ""),
    "priority": _s("integer", 0), "macros": _s("object", additionalProperties={"type": ["string", "number"]}),
    "filters": _s("object"), "metadata": _s("object"), "sendLoadingState": _s("boolean"),
})
GROUP_SCHEMA: dict[str, Any] = _s("object", additionalProperties=False, properties={
    "swap": _s("boolean", True, "loading a member evicts the other members"),
    "exclusive": _s("boolean", True, "loading a member evicts every other group"),
    "persistent": _s("boolean", False, "never evicted by other groups"),
    "members": _STRINGS | {"default": []},
})
PEER_SCHEMA: dict[str, Any] = _s("object", required=["proxy", "models"], additionalProperties=False, properties={
    "proxy": _s("string", description="base URL of the peer"), "apiKey": _s("string"), "models": _STRINGS,
    "filters": _s("object"), "timeouts": _s("object"),
})
CONFIG_SCHEMA: dict[str, Any] = _s("object", description="llama-swap configuration", additionalProperties=False,
                                   properties={
    "healthCheckTimeout": _s("integer", 120, "max seconds a model may take to start", minimum=15),
    "logLevel": _s("string", "info", enum=["debug", "info", "warn", "error"]),
    "logTimeFormat": _s("string", ""),
    "logToStdout": _s("string", "proxy", enum=["proxy", "upstream", "both", "none"]),
    "metricsMaxInMemory": _s("integer", 1000, minimum=0),
    "captureBuffer": _s("integer", 5, "MB of captures kept; 0 disables", minimum=0),
    "startPort": _s("integer", 5800, "first ${PORT}", minimum=1, maximum=65535),
    "sendLoadingState": _s("boolean", False), "includeAliasesInList": _s("boolean", False),
    "globalTTL": _s("integer", 0, "default ttl; 0 = never unload", minimum=0),
    "unloadTimeout": _s("integer", 10, minimum=0),
    "globalConcurrencyLimit": _s("integer", 0, "one limit over all models; 0 = off", minimum=0),
    "apiKeys": _STRINGS | {"default": []},
    "macros": _s("object", additionalProperties={"type": ["string", "number"]}),
    "models": _s("object", additionalProperties=MODEL_SCHEMA),
    "groups": _s("object", additionalProperties=GROUP_SCHEMA),
    "peers": _s("object", additionalProperties=PEER_SCHEMA),
    "matrix": _s("object"), "routing": _s("object"), "profiles": _s("object"), "filters": _s("object"),
    "store": _s("object", additionalProperties=False, properties={"path": _s(["string", "null"])}),
    "performance": _s("object", additionalProperties=False, properties={
        "every": _DURATION | {"default": "5s"}, "disabled": _s("boolean", False)}),
    "hooks": _s("object", properties={"on_startup": _s("object", properties={"preload": _STRINGS})}),
    "ui": _s("object"), "wol": _s("object"),
})


def schema_of(key: str) -> dict[str, Any] | None:
    """The schema of a dotted config key (``""`` = the whole config; ``models.ttl``: a model's ``ttl``)."""
    node: dict[str, Any] = CONFIG_SCHEMA
    for part in [p for p in key.split(".") if p]:
        props = node.get("properties") or {}
        if part in props:
            node = props[part]
        elif isinstance(node.get("additionalProperties"), dict) and part in \
                (node["additionalProperties"].get("properties") or {}):
            node = node["additionalProperties"]["properties"][part]
        else:
            return None
    return node


# ---- the effective config (config__get_config) -----------------------------------------------------------

_SECRET_ARG = re.compile(r"(?i)^-{1,2}[\w-]*(api[-_]?key|token|secret|password|passwd)[\w-]*$")
_SECRET_ASSIGN = re.compile(r"(?i)^(-{0,2}[\w.-]*(?:api[-_]?key|token|secret|password|passwd)[\w.-]*=)(.+)$")
_CREDENTIAL = re.compile(r"\b(sk-[A-Za-z0-9_-]{8,}|hf_[A-Za-z0-9]{8,}|gh[pousr]_[A-Za-z0-9]{8,}|xox[abp]-[\w-]{8,})")
_MACRO = re.compile(r"\$\{([A-Za-z0-9_.-]+)\}")


def redact_command(text: str) -> str:
    """A command line or env entry with secret-looking values replaced: ``--api-key X``, ``--token=X``,
    ``HF_TOKEN=X`` and credential-shaped tokens (``sk-…``, ``hf_…``, ``ghp_…``)."""
    words = text.split(" ")
    out: list[str] = []
    hide_next = False
    for w in words:
        if hide_next and w:
            out.append(REDACTED)
            hide_next = False
            continue
        m = _SECRET_ASSIGN.match(w)
        if m:
            out.append(m.group(1) + REDACTED)
        else:
            out.append(_CREDENTIAL.sub(REDACTED, w))
            hide_next = bool(_SECRET_ARG.match(w))
    return " ".join(out)


def _expand(value: Any, macros: Mapping[str, str], environ: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name.startswith("env."):
                return environ.get(name[4:], m.group(0))
            return macros.get(name, m.group(0))

        for _ in range(4):  # macros may use macros
            new = _MACRO.sub(sub, value)
            if new == value:
                break
            value = new
        return value
    if isinstance(value, list):
        return [_expand(v, macros, environ) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, macros, environ) for k, v in value.items()}
    return value


def _defaults(schema: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, sub in (schema.get("properties") or {}).items():
        if key in given:
            out[key] = given[key]
        elif "default" in sub:
            out[key] = sub["default"]
    out |= {k: v for k, v in given.items() if k not in out}
    return out


def effective_config(doc: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``doc`` (a parsed llama-swap config) as the running instance sees it: defaults filled in, macros,
    ``${PORT}``/``${MODEL_ID}`` and ``${env.*}`` expanded, secrets replaced by ``[REDACTED]``."""
    env = os.environ if environ is None else environ
    top = _defaults(CONFIG_SCHEMA, doc)
    top["store"] = {"path": (doc.get("store") or {}).get("path")}
    perf = doc.get("performance") or {}
    top["performance"] = {"every": perf.get("every", "5s"), "disabled": bool(perf.get("disabled", False))}
    top["ui"] = {"activity": {"session_id": list(_SESSION_IDS)}} | dict(doc.get("ui") or {})
    top["hooks"] = {"on_startup": {"preload": list(((doc.get("hooks") or {}).get("on_startup") or {})
                                                   .get("preload") or [])}}
    global_macros = {str(k): str(v) for k, v in (doc.get("macros") or {}).items()}
    port = int(top["startPort"])
    models: dict[str, Any] = {}
    raw_models = doc.get("models") or {}
    for mid in sorted(raw_models, key=str):
        m = _defaults(MODEL_SCHEMA, raw_models[mid] or {})
        m["unloadTimeout"] = (raw_models[mid] or {}).get("unloadTimeout", top["unloadTimeout"])
        macros = global_macros | {str(k): str(v) for k, v in (m.pop("macros", None) or {}).items()}
        m = _expand(m, macros | {"MODEL_ID": str(mid)}, env)
        if "${PORT}" in str(m.get("cmd", "")):  # one port per model whose command uses it, in id order
            m = _expand(m, {"PORT": str(port)}, env)
            port += 1
        m["cmd"] = redact_command(str(m.get("cmd", "")))
        m["env"] = [redact_command(str(e)) for e in m.get("env") or []]
        models[str(mid)] = m
    top["models"] = {k: models[k] for k in map(str, raw_models)}  # the file's order
    top["groups"] = {str(g): _defaults(GROUP_SCHEMA, v or {}) for g, v in (doc.get("groups") or {}).items()}
    top["peers"] = {str(p): _expand(dict(v or {}), global_macros, env) | ({"apiKey": REDACTED} if (v or {})
                    .get("apiKey") else {}) for p, v in (doc.get("peers") or {}).items()}
    top["apiKeys"] = [REDACTED for _ in top.get("apiKeys") or []]
    top["macros"] = {k: redact_command(v) for k, v in global_macros.items()}
    return _expand(top, global_macros, env)  # type: ignore[no-any-return]


def _quantization(spec_id: str, vram_mb: int, load_s: float) -> str:
    return ("Q4_K_M", "Q5_K_M", "Q8_0")[(sum(map(ord, spec_id)) + vram_mb + int(load_s * 10)) % 3]


def derived_config(sim: SimulatedInstance) -> dict[str, Any]:
    """The config file a fleet host (no file of its own) would have: its models, groups, keys and limits.
    The quantization in the model path varies per host (seeded by the host's load time), as in a real fleet."""
    models: dict[str, Any] = {}
    for m in sim.models.values():
        s = m.spec
        file = s.id.replace("/", "_").split(":")[0]
        cmd = f"llama-server --port ${{PORT}} -m /models/{file}.{_quantization(s.id, s.vram_mb, s.load_s)}.gguf -ngl 99"
        if s.context_length:
            cmd += f" -c {s.context_length}"
        entry: dict[str, Any] = {"cmd": cmd, "ttl": s.ttl}
        entry |= {k: v for k, v in (("name", s.name), ("description", s.description)) if v}
        if s.aliases:
            entry["aliases"] = list(s.aliases)
        if s.unlisted:
            entry["unlisted"] = True
        models[s.id] = entry
    members: dict[str, list[str]] = {}
    for m in sim.models.values():
        if m.spec.group in sim.groups:
            members.setdefault(m.spec.group, []).append(m.spec.id)
    doc: dict[str, Any] = {"startPort": min((m.port for m in sim.models.values()), default=5800),
                           "metricsMaxInMemory": sim.activity.max_rows, "models": models}
    if sim.api_keys:
        doc["apiKeys"] = list(sim.api_keys)
    if members:
        doc["groups"] = {g: {"swap": sim.groups[g].swap, "exclusive": sim.groups[g].exclusive, "members": ms}
                         for g, ms in members.items()}
    return doc


# ---- the docs tools -------------------------------------------------------------------------------------

DOCS: dict[str, str] = {
    "configuration": "# Configuration\n\nllama-swap reads one YAML file (-config) or a directory (-config-dir). "
                     "Top-level keys: healthCheckTimeout, logLevel, startPort, macros, models, groups, peers, "
                     "hooks, apiKeys, store, performance. Each model needs a cmd; ${PORT} is assigned from "
                     "startPort in sorted model-id order.\n",
    "groups": "# Groups\n\nModels in no group share the implicit (default) group (swap: true, exclusive: "
              "true): only one of them runs at a time. swap evicts the other members, exclusive evicts other "
              "groups, persistent groups are never evicted.\n",
    "ttl": "# TTL\n\nA model's ttl (seconds) unloads it when idle; -1 uses globalTTL, 0 never unloads.\n",
    "mcp-endpoint": f"# MCP endpoint\n\nPOST /api/mcp, MCP revision {PROTOCOL_VERSION}, stateless. Tools: "
                    "docs__*, config__get_config, sys__now.\n",
}


def _text(text: str, is_error: bool = False) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "isError": is_error}


def _obj(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props, "additionalProperties": False}


TOOLS: list[dict[str, Any]] = [
    {"name": "docs__list_docs", "description": "List llama-swap's documentation pages", "inputSchema": _obj()},
    {"name": "docs__get_doc", "description": "One documentation page as Markdown",
     "inputSchema": _obj(name={"type": "string"}) | {"required": ["name"]}},
    {"name": "docs__search_docs", "description": "Documentation pages containing a text",
     "inputSchema": _obj(query={"type": "string"}) | {"required": ["query"]}},
    {"name": "docs__get_config_schema",
     "description": "JSON schema of a config key (type, default, allowed values, children); no key: the whole "
                    "config. Keys are dotted: models.ttl is any model's ttl",
     "inputSchema": _obj(key={"type": "string"})},
    {"name": "config__get_config",
     "description": "The effective running configuration as YAML (defaults filled in, macros expanded, secrets "
                    "redacted); query: an optional jq filter. Results over 32 KB are refused: narrow the query",
     "inputSchema": _obj(query={"type": "string"})},
    {"name": "sys__now", "description": "The server's current time (RFC 3339)", "inputSchema": _obj()},
]


class _ToolError(Exception):
    """Bad arguments: a protocol error (-32602)."""


async def _call_tool(sim: SimulatedInstance, name: str, args: Mapping[str, Any]) -> dict[str, Any]:
    def arg(key: str, required: bool = False) -> str | None:
        value = args.get(key)
        if value is None and required:
            raise _ToolError(f"missing argument {key!r}")
        if value is not None and not isinstance(value, str):
            raise _ToolError(f"argument {key!r} must be a string")
        return value

    if name == "docs__list_docs":
        return _text("\n".join(sorted(DOCS)))
    if name == "docs__get_doc":
        doc_name = arg("name", True) or ""
        return _text(DOCS[doc_name]) if doc_name in DOCS else _text(f"no doc named {doc_name!r}", True)
    if name == "docs__search_docs":
        needle = (arg("query", True) or "").lower()
        return _text("\n".join(n for n, t in sorted(DOCS.items()) if needle in t.lower()) or "no match")
    if name == "docs__get_config_schema":
        key = arg("key") or ""
        found = schema_of(key)
        if found is None:
            return _text(f"unknown config key {key!r}", True)
        each = found.get("additionalProperties")  # a map of ids (models, groups, peers): the children of each entry
        children = found.get("properties") or (each.get("properties") if isinstance(each, dict) else None)
        return _text(json.dumps(found | ({"children": sorted(children)} if children else {}), indent=2))
    if name == "sys__now":
        return _text(datetime.now(UTC).isoformat().replace("+00:00", "Z"))
    if name == "config__get_config":
        query = arg("query")
        doc = sim.config_doc if sim.config_doc is not None else derived_config(sim)
        eff = effective_config(doc)
        if not query:
            text = _yaml_doc(eff)
        else:
            try:
                program = jq.compile(query)
            except ValueError as exc:
                return _text(f"invalid jq query: {exc}", True)
            try:
                results = await asyncio.wait_for(asyncio.to_thread(
                    lambda: program.input_value(json.loads(json.dumps(eff))).all()), EVAL_CAP_S)
            except TimeoutError:
                return _text(f"query evaluation exceeded {EVAL_CAP_S:g} s", True)
            except ValueError as exc:
                return _text(f"jq error: {exc}", True)
            text = "---\n".join(_yaml_doc(r) for r in results)
        size = len(text.encode())
        if size > RESULT_CAP_BYTES:
            return _text(f"result is {size} bytes, over the {RESULT_CAP_BYTES} byte limit: narrow the query "
                         "(e.g. '.models | keys', then '.models[\"<id>\"]')", True)
        return _text(text)
    raise _ToolError(f"unknown tool {name!r}")


def _yaml_doc(value: Any) -> str:
    text = yaml.safe_dump(value, sort_keys=False, allow_unicode=True)
    return text[:-4] if text.endswith("\n...\n") else text  # a bare scalar: no document-end marker


def _rpc(req_id: Any, *, result: Any = None, error: tuple[int, str, Any] | None = None, status: int = 200) -> Response:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": req_id}
    if error is not None:
        code, message, data = error
        body["error"] = {"code": code, "message": message} | ({"data": data} if data is not None else {})
    else:
        body["result"] = result
    return Response(json.dumps(body), status, media_type="application/json")


async def handle_mcp(request: Request, sim: SimulatedInstance) -> Response:
    """The ``/api/mcp`` route (every method lands here; only POST is served)."""
    if request.method != "POST":
        return Response("Method Not Allowed\n", 405, headers={"Allow": "POST"}, media_type="text/plain")
    try:
        body = json.loads(await request.body())
    except ValueError:
        return _rpc(None, error=(PARSE_ERROR, "parse error: the body is not JSON", None), status=400)
    if isinstance(body, list):
        return _rpc(None, error=(INVALID_REQUEST, "batching is not supported", None), status=400)
    if not isinstance(body, dict) or body.get("jsonrpc") != "2.0" or not isinstance(body.get("method"), str):
        return _rpc(None, error=(INVALID_REQUEST, "invalid JSON-RPC 2.0 request", None), status=400)
    req_id, method = body.get("id"), body["method"]
    params = body.get("params") or {}
    version = request.headers.get("mcp-protocol-version")
    if version != PROTOCOL_VERSION:
        return _rpc(req_id, status=400, error=(PROTOCOL_UNSUPPORTED, f"unsupported protocol version {version!r}",
                                               {"supported": [PROTOCOL_VERSION], "requested": version}))
    if request.headers.get("mcp-method") != method:
        return _rpc(req_id, status=400, error=(INVALID_REQUEST, "the Mcp-Method header must equal the body's method",
                                               None))
    if not isinstance(params, dict):
        return _rpc(req_id, error=(INVALID_PARAMS, "params must be an object", None))
    if method == "tools/call" and request.headers.get("mcp-name") != params.get("name"):
        return _rpc(req_id, status=400, error=(INVALID_REQUEST, "the Mcp-Name header must equal params.name", None))
    if "id" not in body:  # a notification: nothing to answer
        return Response(status_code=202)
    if method == "initialize":
        return _rpc(req_id, result={"protocolVersion": PROTOCOL_VERSION,
                                    "capabilities": {"tools": {"listChanged": False}},
                                    "serverInfo": {"name": "llama-swap", "version": sim.version}})
    if method == "ping":
        return _rpc(req_id, result={})
    if method == "tools/list":
        cursor = params.get("cursor")
        try:
            start = int(cursor) if cursor is not None else 0
        except (TypeError, ValueError):
            return _rpc(req_id, error=(INVALID_PARAMS, "invalid cursor", None))
        page: dict[str, Any] = {"tools": TOOLS[start:start + TOOLS_PAGE]}
        if start + TOOLS_PAGE < len(TOOLS):
            page["nextCursor"] = str(start + TOOLS_PAGE)
        return _rpc(req_id, result=page)
    if method == "tools/call":
        args = params.get("arguments") or {}
        if not isinstance(args, dict):
            return _rpc(req_id, error=(INVALID_PARAMS, "arguments must be an object", None))
        try:
            return _rpc(req_id, result=await _call_tool(sim, str(params.get("name")), args))
        except _ToolError as exc:
            return _rpc(req_id, error=(INVALID_PARAMS, str(exc), None))
    return _rpc(req_id, error=(METHOD_NOT_FOUND, f"method {method!r} not found", None))
