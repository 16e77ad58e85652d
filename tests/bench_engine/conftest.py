from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# ------------------------------------------------------------------ a real llama-swap running llama-server

from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

from tests.support.llamaserver import find_llama_server, llama_server_cmd, require_llama_server  # noqa: E402
from tests.support.llamaswap import (  # noqa: E402
    HOW_TO_PROVIDE,
    find_llama_swap,
    free_port,
    free_port_block,
    run_llama_swap,
    simple_responder_path,
)
from tests.support.tinymodel import write_tiny_gguf  # noqa: E402

TINY = "tiny"
RESPONDER = "responder"


@dataclass(frozen=True)
class SwapLab:
    base_url: str
    model_path: Path


def swap_config(model: Path, server_bin: Path, responder: Path) -> str:
    # tiny and responder live in different non-exclusive groups, so they can be loaded together
    return f"""
healthCheckTimeout: 60
startPort: {free_port_block()}
models:
  {TINY}:
    cmd: {llama_server_cmd(server_bin, model, parallel=4, ctx=8192)}
    proxy: http://127.0.0.1:${{PORT}}
  {RESPONDER}:
    cmd: {responder} -port ${{PORT}} -silent
    proxy: http://127.0.0.1:${{PORT}}
routing:
  router:
    use: group
    settings:
      groups:
        llama: {{swap: true, exclusive: false, members: [{TINY}]}}
        responders: {{swap: true, exclusive: false, members: [{RESPONDER}]}}
"""


@pytest.fixture(scope="session")
def swap_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwapLab]:
    """llama-swap with the tiny GGUF on llama.cpp's llama-server (4 slots) and simple-responder."""
    server_bin = find_llama_server() or require_llama_server()
    swap = find_llama_swap()
    responder = simple_responder_path()
    if swap is None or responder is None:
        pytest.skip(f"REAL LLAMA-SWAP NOT FOUND: {HOW_TO_PROVIDE}")
    model = write_tiny_gguf(tmp_path_factory.mktemp("bench-tiny") / "tiny.gguf", seed=0)
    with run_llama_swap(swap_config(model, server_bin, responder)) as ls:
        yield SwapLab(ls.base_url, model)


def v239_dir() -> Path:
    from tests.support.llamaswap import cache_root

    return cache_root() / "llama-swap" / "v239"


@pytest.fixture(scope="session")
def swap_lab_v239(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwapLab]:
    """The same lab on llama-swap v239, whose `inflight` messages are plain full lists without headers."""
    from tests.support.llamaswap import LlamaSwapProcess

    server_bin = find_llama_server() or require_llama_server()
    d = v239_dir()
    if not (d / "llama-swap").exists() or not (d / "simple-responder").exists():
        pytest.skip(f"llama-swap v239 not installed in {d}")
    wd = tmp_path_factory.mktemp("swap-v239")
    model = write_tiny_gguf(wd / "tiny.gguf", seed=0)
    cfg = wd / "config.yaml"
    cfg.write_text(swap_config(model, server_bin, d / "simple-responder"))
    ls = LlamaSwapProcess(d / "llama-swap", cfg, free_port(), wd / "llama-swap.log")
    ls.start()
    try:
        yield SwapLab(ls.base_url, model)
    finally:
        ls.stop()
