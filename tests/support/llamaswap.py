"""Finding and running a REAL llama-swap (and its test upstream `simple-responder`) for tests.

`.ci/run` installs llama-swap with `go install` at the pinned revisions below into
``~/.cache/boocontrol/llama-swap/<rev>/`` (GOBIN). When the Go module proxy refuses a revision, the
directory stays empty and the tests that need it are *skipped with a loud reason* (and .ci/run prints a
banner); the same connector contract also runs against the demo fleet, so nothing is faked silently.
A `PROVENANCE` file beside the binaries says how they got there; the pytest header prints it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

MODULE = "github.com/mostlygeek/llama-swap"
# name -> (go revision, what differs). Newest first.
PINNED = {
    "newest": (
        "0bdb3720199f530b622a1934c0db89f32c94819c",
        "v250-5: activity min_id/max_id filters, object error bodies",
    ),
    "v250": ("v250", "release v250: no activity id filters, string error bodies"),
}


def cache_root() -> Path:
    return Path(os.environ.get("BOOCONTROL_CACHE_DIR", str(Path.home() / ".cache" / "boocontrol")))


def bin_dir(which: str = "newest") -> Path:
    rev = PINNED[which][0]
    return cache_root() / "llama-swap" / rev


def find_llama_swap(which: str = "newest") -> Path | None:
    env = os.environ.get("BOOCONTROL_LLAMA_SWAP_BIN") if which == "newest" else None
    if env and Path(env).exists():
        return Path(env)
    p = bin_dir(which) / "llama-swap"
    return p if p.exists() else None


def simple_responder_path(which: str = "newest") -> Path | None:
    p = bin_dir(which) / "simple-responder"
    return p if p.exists() else None


def provenance(which: str = "newest") -> str:
    p = bin_dir(which) / "PROVENANCE"
    if p.exists():
        return p.read_text().strip()
    return "installed by go install" if find_llama_swap(which) else "NOT INSTALLED"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_block(n: int = 8) -> int:
    """First of ``n`` consecutive bindable ports below Linux's ephemeral range (32768+), for llama-swap's
    ``startPort``: ports inside the ephemeral range can be taken by any outgoing connection meanwhile."""
    import random

    for _ in range(200):
        base = random.randrange(20000, 32000 - n)
        try:
            for port in range(base, base + n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free port block found")


def wait_healthy(base_url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(base_url + "/wol-health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"llama-swap at {base_url} did not become healthy")


class LlamaSwapProcess:
    """A running llama-swap; restartable in place (same port, same config file)."""

    def __init__(self, binary: Path, config_path: Path, port: int, log_path: Path, watch: bool = False):
        self.binary = binary
        self.config_path = config_path
        self.port = port
        self.log_path = log_path
        self.watch = watch
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        args = [str(self.binary), "-config", str(self.config_path), "-listen", f"127.0.0.1:{self.port}"]
        if self.watch:
            args.append("-watch-config")
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_healthy(self.base_url)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=35)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def reload(self) -> None:
        """Config reload (SIGHUP): models stop, SSE closes, boot marker stays."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)


@contextlib.contextmanager
def run_llama_swap(
    config_text: str, port: int | None = None, which: str = "newest", workdir: Path | None = None
) -> Iterator[LlamaSwapProcess]:
    binary = find_llama_swap(which)
    if binary is None:
        raise FileNotFoundError(f"llama-swap ({which}) is not installed; run .ci/run's install step")
    import tempfile

    wd = workdir or Path(tempfile.mkdtemp(prefix="llama-swap-"))
    cfg = wd / "config.yaml"
    cfg.write_text(config_text)
    ls = LlamaSwapProcess(binary, cfg, port or free_port(), wd / "llama-swap.log")
    ls.start()
    try:
        yield ls
    finally:
        ls.stop()


def responder_config(
    responder: Path,
    *,
    start_port: int,
    extra: str = "",
    ttl: int = 0,
    models: tuple[str, ...] = ("responder-a", "responder-b"),
) -> str:
    """A llama-swap config with simple-responder models in one swapping group."""
    lines = [
        "healthCheckTimeout: 15",
        "logLevel: debug",
        f"startPort: {start_port}",
        "captureBuffer: 5",
        "performance:",
        "  every: 5s",
    ]
    if extra:
        lines.append(extra.rstrip())
    lines.append("models:")
    for name in models:
        lines += [
            f"  {name}:",
            f"    cmd: {responder} -port ${{PORT}} -respond from-{name} -silent",
            "    proxy: http://127.0.0.1:${PORT}",
        ]
        if ttl:
            lines.append(f"    ttl: {ttl}")
    return "\n".join(lines) + "\n"
