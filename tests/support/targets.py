"""One target interface for the resilience scenarios, two implementations: the simulator and a real llama-swap.

Both are OS processes started from the same llama-swap config text on a loopback port, and both are driven
the same way (``Target``): ``start``, ``stop`` (SIGTERM), ``restart``, ``kill`` (``kill -9``), ``reload``
(SIGHUP), ``base_url``, ``config_text``.

* ``sim``: ``python -m demo.single`` (``SimulatorProcess``); always available, so every scenario runs on every
  machine and in CI.
* ``real``: the llama-swap binary (``LlamaSwapProcess``) from ``BOOCONTROL_LLAMA_SWAP_BIN`` or the cache;
  skipped with the reason where none is found.

A scenario takes the ``target_kind`` fixture (``tests/conftest.py``: parametrized ``sim`` / ``real``) and
starts its instance with ``run_target(target_kind, ...)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from tests.support.llamaswap import (
    HOW_TO_PROVIDE,
    find_llama_swap,
    free_port_block,
    responder_config,
    run_llama_swap,
    simple_responder_path,
)

KINDS = ("sim", "real")
SIM_RESPONDER = Path("simple-responder")  # never executed: the simulator imitates the upstream itself


class Target(Protocol):
    kind: str

    @property
    def base_url(self) -> str: ...

    @property
    def config_text(self) -> str: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def restart(self) -> None: ...

    def kill(self) -> None: ...

    def reload(self) -> None: ...


def target_params() -> list[object]:
    """``pytest.param`` for each kind, ids ``sim`` / ``real``, marked ``simulator`` / ``real_llamaswap``."""
    return [pytest.param("sim", id="sim", marks=pytest.mark.simulator),
            pytest.param("real", id="real", marks=pytest.mark.real_llamaswap)]


def real_missing_reason() -> str | None:
    """Why the ``real`` target cannot run here, or None."""
    if find_llama_swap("newest") is None:
        return f"REAL LLAMA-SWAP NOT FOUND: {HOW_TO_PROVIDE}"
    if simple_responder_path("newest") is None:
        return f"simple-responder NOT FOUND beside the real llama-swap: {HOW_TO_PROVIDE}"
    return None


def responder_for(kind: str) -> Path:
    if kind == "sim":
        return SIM_RESPONDER
    path = simple_responder_path("newest")
    if path is None:
        pytest.skip(real_missing_reason() or "simple-responder not found")
    return path


@contextlib.contextmanager
def run_target(kind: str, *, extra: str = "", ttl: int = 0,
               models: tuple[str, ...] = ("responder-a", "responder-b"), ttl_models: tuple[str, ...] | None = None,
               workdir: Path | None = None, capture_delay_s: float = 0.05) -> Iterator[Target]:
    """A started target of ``kind`` on ``responder_config`` (same text for both kinds), stopped afterwards."""
    cfg = responder_config(responder_for(kind), start_port=free_port_block(), extra=extra, ttl=ttl, models=models,
                           ttl_models=ttl_models)
    with run_llama_swap(cfg, kind=kind, workdir=workdir, capture_delay_s=capture_delay_s) as ls:
        yield ls
