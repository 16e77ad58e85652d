"""Starting, watching and stopping the cockpit's processes (`boocontrol up` / `status`).

`up` runs every part as a child process in its own session and records them in
``DATA_DIR/run/up.json``; Ctrl-C (or SIGTERM) stops them in reverse start order, each with SIGTERM and a
grace period before SIGKILL, then stops the embedded Postgres if `up` started it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

log = logging.getLogger(__name__)


@dataclass
class Service:
    name: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    url: str | None = None
    health_url: str | None = None
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    stop_timeout_s: float = 20.0

    def start(self, cwd: Path) -> None:
        if self.log_path is None:
            self.proc = subprocess.Popen(self.args, env={**os.environ, **self.env}, cwd=cwd,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
            return
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(self.args, env={**os.environ, **self.env}, cwd=cwd, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0fs; killing it", self.name, self.stop_timeout_s)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)


def wait_http(url: str, timeout_s: float, alive: Callable[[], bool] = lambda: True) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            return False
        try:
            if httpx.get(url, timeout=2.0).status_code < 500:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    return False


def write_state(path: Path, services: Sequence[Service], extra: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"pid": os.getpid(), **extra,
             "services": [{"name": s.name, "pid": s.proc.pid if s.proc else None, "url": s.url,
                           "health_url": s.health_url, "log": str(s.log_path) if s.log_path else None}
                          for s in services]}
    path.write_text(json.dumps(state, indent=2))


def read_status(path: Path) -> list[tuple[str, str, str]]:
    """(name, state, detail) for every service recorded by `up`."""
    if not path.exists():
        return []
    state = json.loads(path.read_text())
    rows = []
    for s in state.get("services", []):
        pid = s.get("pid")
        running = False
        if pid:
            try:
                os.kill(int(pid), 0)
                running = True
            except (ProcessLookupError, PermissionError):
                running = False
        detail = s.get("url") or ""
        st = "running" if running else "stopped"
        if running and s.get("health_url"):
            try:
                ok = httpx.get(s["health_url"], timeout=2.0).status_code < 500
            except httpx.HTTPError:
                ok = False
            st = "running" if ok else "running (not answering)"
        rows.append((s["name"], st, f"pid {pid} {detail}".strip()))
    return rows


def python_cmd(*args: str) -> list[str]:
    return [sys.executable, *args]
