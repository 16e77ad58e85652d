"""A llama-swap with ``-watch-config`` on a config file the test's sshd can reach: the real binary where one is
provided (tests/support/llamaswap.py), else the simulator (``demo.single -watch-config``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.providers import Provider, SshAccess
from tests.ops_config.sshd import Sshd
from tests.support.llamaswap import (
    HOW_TO_PROVIDE,
    LlamaSwapProcess,
    SimulatorProcess,
    find_llama_swap,
    free_port,
    free_port_block,
)
from tests.support.targets import responder_for


class WatchingSimulator(SimulatorProcess):
    def command(self) -> list[str]:
        return [*super().command(), "-watch-config"]


def responder_yaml(kind: str, models: tuple[str, ...], start_port: int, comment: str = "") -> str:
    responder = responder_for(kind)
    lines = [f"# {comment}" if comment else "# managed by tests", "healthCheckTimeout: 15",
             f"startPort: {start_port}", "models:"]
    for m in models:
        lines += [f"  {m}:", f"    cmd: {responder} -port ${{PORT}} -respond from-{m} -silent",
                  "    proxy: http://127.0.0.1:${PORT}"]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def watched_host(kind: str, workdir: Path, text: str, port: int | None = None,
                 watch: bool = True) -> Iterator[LlamaSwapProcess]:
    cfg = workdir / "config.yaml"
    cfg.write_text(text)
    port = port or free_port()
    proc: LlamaSwapProcess
    if kind == "real":
        binary = find_llama_swap("newest")
        if binary is None:
            pytest.skip(f"REAL LLAMA-SWAP NOT FOUND: {HOW_TO_PROVIDE}")
        proc = LlamaSwapProcess(binary, cfg, port, workdir / "llama-swap.log", watch=watch)
    else:
        proc = (WatchingSimulator if watch else SimulatorProcess)(cfg, port, workdir / "simulator.log")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def provider_for(host: LlamaSwapProcess, sshd: Sshd, pid: str = "cfg-host") -> Provider:
    return Provider(id=pid, label=pid, base_url=host.base_url,
                    ssh=SshAccess(host="127.0.0.1", port=sshd.port, user=sshd.user,
                                  config_path=str(host.config_path), key=sshd.key_name))


__all__ = ["free_port_block", "provider_for", "responder_yaml", "watched_host"]
