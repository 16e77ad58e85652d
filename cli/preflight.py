"""Checks `boocontrol up` makes before it starts anything: the data directory and every port it will use.

A port in use is named with the process listening on it (pid and command line, read from /proc) and, when
that process belongs to another running `boocontrol up`, which one (its pid and data directory), so a
second `up` never mistakes the first one's answers for its own services, registers deployments on its
Prefect server or joins its work pool.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cli.instance import Instance


@dataclass(frozen=True)
class Listener:
    pid: int
    command: str


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing can listen on ``host:port`` now (someone else does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def _listening_inodes(ports: set[int], proc: Path) -> dict[str, int]:
    """``socket:[inode]`` -> port, for the TCP sockets listening on one of ``ports``."""
    inodes: dict[str, int] = {}
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in (proc / "net" / table).read_text().splitlines()[1:]:
                cols = line.split()
                if len(cols) > 9 and cols[3] == "0A" and (port := int(cols[1].rsplit(":", 1)[1], 16)) in ports:
                    inodes[f"socket:[{cols[9]}]"] = port
    return inodes


def listeners_of(ports: Iterable[int], proc: Path = Path("/proc")) -> dict[int, Listener]:
    """The process listening on each TCP port of ``ports`` (those visible to this user), in one pass over /proc."""
    inodes = _listening_inodes(set(ports), proc)
    found: dict[int, Listener] = {}
    if not inodes:
        return found
    for pid_dir in proc.iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            fds = os.listdir(pid_dir / "fd")
        except OSError:
            continue
        for fd in fds:
            try:
                port = inodes.get(os.readlink(pid_dir / "fd" / fd))
            except OSError:
                continue
            if port is not None and port not in found:
                try:
                    raw = (pid_dir / "cmdline").read_bytes()
                except OSError:
                    raw = b""
                command = " ".join(a.decode(errors="replace") for a in raw.split(b"\0") if a)
                found[port] = Listener(int(pid_dir.name), command)
        if len(found) == len(set(inodes.values())):
            break
    return found


def listener_of(port: int, proc: Path = Path("/proc")) -> Listener | None:
    """The process listening on TCP ``port`` (visible to this user), from /proc; None when unknown."""
    return listeners_of([port], proc).get(port)


def _short(command: str, limit: int = 90) -> str:
    return command if len(command) <= limit else command[: limit - 1] + "…"


def describe_holder(who: Listener | None, instances: Iterable[Instance]) -> str:
    """Who holds a port: 'pid 123 (python -m prefect server start …), the prefect-server of `boocontrol up`
    pid 100 for /data', or as much of it as can be known."""
    if who is None:
        return "a process this user cannot see (check with `ss -ltnp`)"
    text = f"pid {who.pid} ({_short(who.command)})"
    for inst in instances:
        if who.pid == inst.pid:
            return f"{text}, `boocontrol up` for {inst.data_dir}"
        for svc in inst.services:
            if svc.get("pid") == who.pid:
                return f"{text}, the {svc.get('name')} of `boocontrol up` pid {inst.pid} for {inst.data_dir}"
        if f"{inst.data_dir}/postgres" in who.command:
            return f"{text}, the embedded Postgres of `boocontrol up` pid {inst.pid} for {inst.data_dir}"
    return text


def check_ports(ports: Mapping[str, tuple[int, str]], instances: Iterable[Instance],
                proc: Path = Path("/proc")) -> list[str]:
    """One problem per port in use: ``ports`` maps what the port is for to (port, the option that moves it)."""
    known = list(instances)
    taken = {what: port_opt for what, port_opt in ports.items() if port_in_use(port_opt[0])}
    holders = listeners_of([port for port, _ in taken.values()], proc) if taken else {}
    return [f"port {port} ({what}) is in use by {describe_holder(holders.get(port), known)}; "
            f"stop it or choose another port with {option}" for what, (port, option) in taken.items()]


def check_data_dir(data_dir: Path) -> list[str]:
    """The data directory can be created and written."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return [f"cannot create the data directory {data_dir}: {exc.strerror}; choose another with --data-dir"]
    if not os.access(data_dir, os.W_OK | os.X_OK):
        return [f"the data directory {data_dir} is not writable by this user; choose another with --data-dir"]
    return []
