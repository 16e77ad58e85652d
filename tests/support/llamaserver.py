"""Locate and run llama.cpp's own ``llama-server`` (built by ``scripts/build-llama-server.sh``) for tests.

``find_llama_server()`` looks at ``$BOOCONTROL_LLAMA_SERVER_BIN`` first, then at the build cache
(``$BOOCONTROL_CACHE_DIR`` or ``~/.cache/boocontrol``) under ``llama-server/<version>/llama-server``.
``run_llama_server()`` starts one instance on 127.0.0.1 and yields its base URL; ``llama_server_cmd()``
gives the equivalent command line for a llama-swap model ``cmd:`` entry.

Threads are pinned to one (``-t 1 -tb 1``): on small CI machines two threads make generation speed erratic.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

ENV_BIN = "BOOCONTROL_LLAMA_SERVER_BIN"
ENV_CACHE = "BOOCONTROL_CACHE_DIR"
ENV_ALLOW_MISSING = "BOOCONTROL_ALLOW_MISSING_LLAMA_SERVER"
BUILD_HINT = (
    "llama-server binary not found: run `scripts/build-llama-server.sh` (builds llama.cpp's llama-server "
    f"from the llama-cpp-python sdist, ~7-10 min, cached under ~/.cache/boocontrol) or set ${ENV_BIN}. "
    f"Set {ENV_ALLOW_MISSING}=1 to skip these tests instead."
)


def _executable(p: Path) -> bool:
    return p.is_file() and os.access(p, os.X_OK)


def _version_key(p: Path) -> tuple[tuple[int, ...], str]:
    ver = p.parent.name
    return tuple(int(x) for x in re.findall(r"\d+", ver)), ver


def cache_dir() -> Path:
    env = os.environ.get(ENV_CACHE)
    return Path(env) if env else Path.home() / ".cache" / "boocontrol"


def find_llama_server() -> Path | None:
    """The llama-server binary to use, or None when there is none.

    ``$BOOCONTROL_LLAMA_SERVER_BIN`` wins when set (None if it does not name an executable file);
    otherwise the newest version found under ``<cache>/llama-server/*/llama-server``.
    """
    env = os.environ.get(ENV_BIN)
    if env:
        p = Path(env).expanduser()
        return p if _executable(p) else None
    found = [p for p in (cache_dir() / "llama-server").glob("*/llama-server") if _executable(p)]
    if not found:
        return None
    return max(found, key=_version_key)


def missing_is_allowed() -> bool:
    return os.environ.get(ENV_ALLOW_MISSING, "") not in ("", "0", "false", "no")


def require_llama_server() -> Path:
    """The binary, or fail the calling test (skip only with ``BOOCONTROL_ALLOW_MISSING_LLAMA_SERVER=1``)."""
    import pytest

    binary = find_llama_server()
    if binary is not None:
        return binary
    if missing_is_allowed():
        pytest.skip(BUILD_HINT)
    pytest.fail(BUILD_HINT, pytrace=False)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_args(
    model: Path, port: int | str, parallel: int = 1, ctx: int = 2048, extra_args: Sequence[str] = ()
) -> list[str]:
    """Arguments (without the binary) for one CPU-only llama-server on 127.0.0.1."""
    return [
        "--host", "127.0.0.1",
        "--port", str(port),
        "-m", str(model),
        "-t", "1",
        "-tb", "1",
        "-np", str(parallel),
        "-c", str(ctx),
        *extra_args,
    ]  # fmt: skip


def llama_server_cmd(
    bin: Path | str,
    model: Path | str,
    parallel: int = 1,
    ctx: int = 2048,
    extra_args: Sequence[str] = (),
) -> str:
    """Command string for a llama-swap model ``cmd:`` entry; llama-swap substitutes ``${PORT}``.

    Pair it with ``proxy: http://127.0.0.1:${PORT}``.
    """
    args = server_args(Path(model), "${PORT}", parallel, ctx, extra_args)
    return " ".join([shlex.quote(str(bin))] + [a if a == "${PORT}" else shlex.quote(a) for a in args])


def _tail(path: Path, n: int = 40) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def _stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


@contextmanager
def run_llama_server(
    model: Path,
    port: int | None = None,
    parallel: int = 1,
    ctx: int = 2048,
    *,
    binary: Path | None = None,
    extra_args: Sequence[str] = (),
    startup_timeout: float = 60.0,
    log_path: Path | None = None,
) -> Iterator[str]:
    """Start llama-server on ``model``, wait for ``GET /health`` → 200, yield ``http://127.0.0.1:<port>``.

    The process is terminated (SIGTERM, then SIGKILL after 10 s) when the block exits, whatever happens.
    Its combined stdout/stderr goes to ``log_path`` (a temporary file by default) and is quoted in the
    error when the server fails to come up.
    """
    binary = binary or find_llama_server()
    if binary is None:
        raise FileNotFoundError(BUILD_HINT)
    port = port or free_port()
    argv = [str(binary), *server_args(Path(model), port, parallel, ctx, extra_args)]
    tmpdir = None
    if log_path is None:
        tmpdir = tempfile.TemporaryDirectory(prefix="llama-server-")
        log_path = Path(tmpdir.name) / "llama-server.log"
    base = f"http://127.0.0.1:{port}"
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + startup_timeout
            with httpx.Client(timeout=2.0) as client:
                while True:
                    if proc.poll() is not None:
                        raise RuntimeError(
                            f"llama-server exited with code {proc.returncode} before becoming healthy\n"
                            f"argv: {shlex.join(argv)}\n{_tail(log_path)}"
                        )
                    try:
                        if client.get(f"{base}/health").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"llama-server not healthy after {startup_timeout:.0f} s\n"
                            f"argv: {shlex.join(argv)}\n{_tail(log_path)}"
                        )
                    time.sleep(0.05)
            yield base
        finally:
            _stop(proc)
    finally:
        if tmpdir is not None:
            tmpdir.cleanup()
