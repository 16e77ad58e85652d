"""Finding and running a REAL llama-swap (and its test upstream `simple-responder`) for tests.

llama-swap cannot come from a package registry (the Go module proxy answers 403 for it), so nothing
installs it: the resilience scenarios always run against the simulator (``demo.single``, see
``tests/support/targets.py``) and, in addition, against a real binary wherever one is provided:

* ``BOOCONTROL_LLAMA_SWAP_BIN`` = path of a ``llama-swap`` binary (the "newest" pin), with ``simple-responder``
  beside it or named by ``BOOCONTROL_SIMPLE_RESPONDER_BIN``; or
* binaries placed in ``~/.cache/boocontrol/llama-swap/<rev>/`` (``llama-swap``, ``simple-responder``,
  ``fake-model``; ``<rev>`` as in ``PINNED`` below), optionally with a ``PROVENANCE`` file saying where they
  came from.

Without one, the ``real`` parametrizations are skipped with that reason; the pytest header says where each
binary came from and how many tests ran on which.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
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


HOW_TO_PROVIDE = ("set BOOCONTROL_LLAMA_SWAP_BIN to a llama-swap binary (simple-responder beside it or "
                  "BOOCONTROL_SIMPLE_RESPONDER_BIN) or place binaries in ~/.cache/boocontrol/llama-swap/<rev>/")


def _env_binary() -> Path | None:
    env = os.environ.get("BOOCONTROL_LLAMA_SWAP_BIN")
    return Path(env) if env and Path(env).is_file() else None


def find_llama_swap(which: str = "newest") -> Path | None:
    env = _env_binary() if which == "newest" else None
    if env is not None:
        return env
    p = bin_dir(which) / "llama-swap"
    return p if p.exists() else None


def simple_responder_path(which: str = "newest") -> Path | None:
    if which == "newest":
        env = os.environ.get("BOOCONTROL_SIMPLE_RESPONDER_BIN")
        if env and Path(env).is_file():
            return Path(env)
        binary = _env_binary()
        if binary is not None:
            beside = binary.parent / "simple-responder"
            return beside if beside.is_file() else None
    p = bin_dir(which) / "simple-responder"
    return p if p.exists() else None


def provenance(which: str = "newest") -> str:
    """Where the binary of pin ``which`` comes from, in one line (for the pytest header)."""
    binary = find_llama_swap(which)
    if binary is None:
        return f"NOT FOUND ({HOW_TO_PROVIDE})"
    if which == "newest" and _env_binary() is not None:
        origin = f"BOOCONTROL_LLAMA_SWAP_BIN={binary}"
    else:
        p = bin_dir(which) / "PROVENANCE"
        origin = f"{binary}: " + (p.read_text().strip() if p.exists() else "no PROVENANCE file")
    responder = simple_responder_path(which)
    return origin + ("" if responder else " (simple-responder NOT FOUND)")


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
    """A running llama-swap; restartable in place (same port, same config file). One of the two targets of
    ``tests/support/targets.py`` (``kind`` "real"); ``SimulatorProcess`` there is the other."""

    kind = "real"

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

    @property
    def config_text(self) -> str:
        return self.config_path.read_text()

    def command(self) -> list[str]:
        args = [str(self.binary), "-config", str(self.config_path), "-listen", f"127.0.0.1:{self.port}"]
        return [*args, "-watch-config"] if self.watch else args

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                     cwd=Path(__file__).parents[2])
        log.close()
        try:
            wait_healthy(self.base_url)
        except TimeoutError:
            self.stop(signal.SIGKILL)
            raise

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

    def kill(self) -> None:
        """``kill -9`` of llama-swap. Its upstreams run in process groups of their own and would survive as
        orphans holding their ports (as they do in production); they are killed too, so the next start can
        load models again."""
        if self.proc is None:
            return
        import psutil

        orphans: list[psutil.Process] = []
        with contextlib.suppress(psutil.NoSuchProcess):
            orphans = psutil.Process(self.proc.pid).children(recursive=True)
        self.stop(signal.SIGKILL)
        for child in orphans:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        psutil.wait_procs(orphans, timeout=5)

    def restart(self) -> None:
        self.stop()
        self.start()

    def reload(self) -> None:
        """Config reload (SIGHUP): models stop, SSE closes, boot marker stays."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)


class SimulatorProcess(LlamaSwapProcess):
    """The simulator as its own OS process (``python -m demo.single``), driven exactly like a real llama-swap:
    same config file, same ``-listen``, SIGTERM stops, SIGKILL kills, SIGHUP reloads."""

    kind = "sim"

    def __init__(self, config_path: Path, port: int, log_path: Path, capture_delay_s: float = 0.05):
        super().__init__(Path(sys.executable), config_path, port, log_path)
        self.capture_delay_s = capture_delay_s

    def command(self) -> list[str]:
        return [str(self.binary), "-m", "demo.single", "-config", str(self.config_path),
                "-listen", f"127.0.0.1:{self.port}", "-capture-delay", str(self.capture_delay_s)]


@contextlib.contextmanager
def run_llama_swap(
    config_text: str, port: int | None = None, which: str = "newest", workdir: Path | None = None,
    kind: str = "real", capture_delay_s: float = 0.05,
) -> Iterator[LlamaSwapProcess]:
    """Start a llama-swap (``kind`` "real": the binary of pin ``which``; "sim": ``demo.single``) on
    ``config_text`` and stop it afterwards. ``capture_delay_s``: the simulator's gap between storing an activity
    row and storing its capture (real llama-swap: microseconds)."""
    import tempfile

    wd = workdir or Path(tempfile.mkdtemp(prefix="llama-swap-"))
    cfg = wd / "config.yaml"
    cfg.write_text(config_text)
    ls: LlamaSwapProcess
    if kind == "sim":
        ls = SimulatorProcess(cfg, port or free_port(), wd / "simulator.log", capture_delay_s)
    else:
        binary = find_llama_swap(which)
        if binary is None:
            raise FileNotFoundError(f"llama-swap ({which}) not found: {HOW_TO_PROVIDE}")
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
    ttl_models: tuple[str, ...] | None = None,
) -> str:
    """A llama-swap config with simple-responder models in one swapping group (``ttl`` on ``ttl_models``,
    default all)."""
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
        if ttl and (ttl_models is None or name in ttl_models):
            lines.append(f"    ttl: {ttl}")
    return "\n".join(lines) + "\n"
