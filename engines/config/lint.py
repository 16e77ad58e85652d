"""Lint of one fleet's configs against each other and against what was measured. Pure: parsed configs and
measured facts in, findings out (sorted by provider, code, subject).

Codes:

* ``peer-duplicate-id`` — on one host, a model id offered by two or more peers (the bare name is ambiguous) or
  by a peer and a local model (the local one shadows it).
* ``peer-cycle`` — hosts whose peers lead back to themselves (a request for a model none of them serves loops).
* ``vram-overcommit`` — a set of models llama-swap lets run together (a ``swap: false`` group, the largest
  members of the non-exclusive groups, a matrix alternative) needs more VRAM than the host has, by the VRAM
  measured when those models were loaded.
* ``never-requested`` — a model with no request in the window (only on hosts watched for the whole window).
* ``ttl-below-load`` — a ``ttl`` (seconds idle before unload) shorter than the model's measured load time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from engines.config.hostcfg import ConfigParseError, HostConfig, matrix_alternatives


@dataclass(frozen=True)
class Finding:
    provider_id: str
    code: str
    severity: str  # error | warning | info
    subject: str
    message: str


@dataclass(frozen=True)
class Measured:
    """What the warehouse measured (`warehouse.config_store.lint_facts`)."""

    vram_mb: Mapping[tuple[str, str], float] = field(default_factory=dict)  # (provider, model) -> MiB when loaded
    host_vram_mb: Mapping[str, float] = field(default_factory=dict)  # provider -> total GPU memory
    load_s: Mapping[tuple[str, str], float] = field(default_factory=dict)  # (provider, model) -> median load
    requested: Mapping[str, frozenset[str]] = field(default_factory=dict)  # provider -> models requested in window
    watched_days: Mapping[str, float] = field(default_factory=dict)  # provider -> days of recorded history
    window_days: int = 30


def _url_key(url: str) -> str:
    parts = urlsplit(url.strip())
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{(parts.hostname or '').lower()}:{port}"


def _peer_findings(h: HostConfig) -> list[Finding]:
    out = []
    offered: dict[str, list[str]] = {}
    for peer, (_, models) in sorted(h.peers.items()):
        for m in models:
            offered.setdefault(m, []).append(peer)
    for mid, peers in sorted(offered.items()):
        if len(peers) > 1:
            out.append(Finding(h.provider_id, "peer-duplicate-id", "warning", mid,
                               f"model {mid} is offered by peers {', '.join(peers)}: the bare name is ambiguous "
                               f"(clients must say {peers[0]}/{mid})"))
        if mid in h.models:
            out.append(Finding(h.provider_id, "peer-duplicate-id", "warning", mid,
                               f"model {mid} is local and offered by peer {', '.join(peers)}: the local one "
                               "shadows the peer's bare name"))
    return out


def _cycles(hosts: Sequence[HostConfig]) -> list[Finding]:
    by_url = {_url_key(h.base_url): h.provider_id for h in hosts}
    edges = {h.provider_id: sorted({by_url[k] for k in (_url_key(p) for p, _ in h.peers.values()) if k in by_url})
             for h in hosts}
    found: set[tuple[str, ...]] = set()

    def walk(node: str, path: list[str]) -> None:
        for nxt in edges.get(node, []):
            if nxt in path:
                cycle = path[path.index(nxt):]
                i = cycle.index(min(cycle))
                found.add(tuple(cycle[i:] + cycle[:i]))
            elif len(path) < 32:
                walk(nxt, [*path, nxt])

    for start in sorted(edges):
        walk(start, [start])
    return [Finding(c[0], "peer-cycle", "error", " → ".join((*c, c[0])),
                    f"peers form a cycle {' → '.join((*c, c[0]))}: a request for a model none of them serves "
                    "is forwarded around it") for c in sorted(found)]


def _co_resident_sets(h: HostConfig) -> list[tuple[str, frozenset[str]]]:
    sets: list[tuple[str, frozenset[str]]] = [
        (f"group {g.group_id} (swap: false)", frozenset(g.members)) for g in h.groups if not g.swap and g.members]
    for name, dsl in sorted(h.matrix_sets.items()):
        try:
            alternatives = matrix_alternatives(dsl, h.matrix_sets, h.matrix_vars)
        except ConfigParseError:
            continue
        sets += [(f"matrix set {name}", alt) for alt in alternatives if len(alt) > 1]
    return sets


def _vram_findings(h: HostConfig, measured: Measured) -> list[Finding]:
    total = measured.host_vram_mb.get(h.provider_id)
    if not total:
        return []
    out = []
    candidates = _co_resident_sets(h)
    non_exclusive = [g for g in h.groups if not g.exclusive and g.members]
    if len(non_exclusive) > 1:  # these groups coexist: each keeps its largest (swap) or all (no swap) members
        pick: set[str] = set()
        for g in non_exclusive:
            if g.swap:
                pick.add(max(g.members, key=lambda m: measured.vram_mb.get((h.provider_id, m), 0.0)))
            else:
                pick |= set(g.members)
        candidates.append(("non-exclusive groups " + " + ".join(g.group_id for g in non_exclusive), frozenset(pick)))
    persistent: set[str] = set()  # persistent groups are never evicted: they run beside every set
    for g in h.groups:
        if g.persistent and g.members:
            persistent |= set(g.members) if not g.swap else {
                max(g.members, key=lambda m: measured.vram_mb.get((h.provider_id, m), 0.0))}
    candidates = [(name + (" + persistent groups" if persistent - members else ""), members | persistent)
                  for name, members in candidates]
    for name, members in candidates:
        need = sum(measured.vram_mb.get((h.provider_id, m), 0.0) for m in members)
        unmeasured = sorted(m for m in members if (h.provider_id, m) not in measured.vram_mb)
        if need > total:
            more = f" (not measured yet: {', '.join(unmeasured)})" if unmeasured else ""
            out.append(Finding(h.provider_id, "vram-overcommit", "error", name,
                               f"{name} runs {', '.join(sorted(members))} together: {need:.0f} MiB measured, the "
                               f"host has {total:.0f} MiB{more}"))
    return out


def _usage_findings(h: HostConfig, measured: Measured) -> list[Finding]:
    out = []
    watched = measured.watched_days.get(h.provider_id, 0.0)
    requested = measured.requested.get(h.provider_id, frozenset())
    for mid, m in sorted(h.models.items()):
        if watched >= measured.window_days and mid not in requested:
            out.append(Finding(h.provider_id, "never-requested", "info", mid,
                               f"model {mid} had no request in the last {measured.window_days} days"))
        load = measured.load_s.get((h.provider_id, mid))
        if m.ttl > 0 and load is not None and m.ttl < load:
            out.append(Finding(h.provider_id, "ttl-below-load", "warning", mid,
                               f"model {mid}: ttl {m.ttl} s is shorter than its measured load time {load:.1f} s"))
    return out


def lint(hosts: Sequence[HostConfig], measured: Measured | None = None) -> list[Finding]:
    facts = measured or Measured()
    out = _cycles(hosts)
    for h in hosts:
        out += _peer_findings(h) + _vram_findings(h, facts) + _usage_findings(h, facts)
    return sorted(out, key=lambda f: (f.provider_id, f.code, f.subject))
