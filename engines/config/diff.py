"""Fleet diff: the same model id on several hosts, configured differently (command line, context size,
quantization, ttl), side by side. Pure: takes parsed `HostConfig`s."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from engines.config.hostcfg import HostConfig, ModelConfig

FIELDS = ("cmd", "ctx_size", "quantization", "ttl")
_PORT_ARG = re.compile(r"(--port[ =])\d+")


def _value(m: ModelConfig, name: str) -> str:
    if name == "cmd":  # each host numbers its ports itself: a port is not a difference
        return _PORT_ARG.sub(r"\g<1>${PORT}", m.cmd)
    value = getattr(m, name)
    return "-" if value is None else str(value)


@dataclass(frozen=True)
class DiffRow:
    model_id: str
    field: str
    values: tuple[tuple[str, str], ...]  # (provider_id, value), providers in the order given

    def distinct(self) -> int:
        return len({v for _, v in self.values})


def fleet_diff(hosts: Sequence[HostConfig]) -> list[DiffRow]:
    """For every model id configured on two or more hosts, each field whose values differ (by model id, then
    field in ``FIELDS`` order)."""
    on: dict[str, list[tuple[str, ModelConfig]]] = {}
    for h in hosts:
        for mid, m in h.models.items():
            on.setdefault(mid, []).append((h.provider_id, m))
    rows = []
    for mid in sorted(on):
        if len(on[mid]) < 2:
            continue
        for name in FIELDS:
            values = tuple((pid, _value(m, name)) for pid, m in on[mid])
            if len({v for _, v in values}) > 1:
                rows.append(DiffRow(mid, name, values))
    return rows


def side_by_side(hosts: Sequence[HostConfig], model_id: str) -> list[DiffRow]:
    """Every field of one model on every host that has it (equal fields included)."""
    have = [(h.provider_id, h.models[model_id]) for h in hosts if model_id in h.models]
    return [DiffRow(model_id, name, tuple((pid, _value(m, name)) for pid, m in have)) for name in FIELDS]
