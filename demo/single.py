"""One simulated llama-swap as its own OS process, configured like llama-swap from its YAML config file.

``python -m demo.single -config config.yaml -listen 127.0.0.1:8080`` serves one ``SimulatedInstance`` until
SIGTERM/SIGINT (graceful: event streams closed, exit 0). SIGHUP (and, with ``-watch-config``, a change of
the file's bytes, polled every 2 s) re-reads the file and reloads the configuration the way llama-swap does (``SimulatedInstance.reload``; an invalid file is logged and the old
configuration kept). SIGKILL kills it like any process: with ``store.path`` every announced activity row is
already in the file, and the next start continues its ids; without it the next start begins again at id 1
with a new boot marker (``/api/hardware`` ``captured_at``).

The config subset understood: ``models`` (``cmd``/``proxy`` are accepted but never executed: the simulator
imitates the upstream; ``ttl``, ``name``, ``description``, ``unlisted``, ``aliases``), ``groups`` (``swap``,
``exclusive``, ``members``), ``startPort``, ``captureBuffer``, ``performance.every``/``disabled``,
``metricsMaxInMemory``, ``store.path``, ``apiKeys``. ``logLevel``, ``healthCheckTimeout`` and unknown keys are
accepted and ignored. A model whose ``cmd`` runs llama-swap's test server ``simple-responder`` answers like it
(its ``-respond`` text, fixed usage and timings, ``?stream=true``, ``?wait=``). Simulator-only knobs are command-line flags: ``-load-seconds`` (every model's load
time), ``-capture-delay`` (seconds between storing an activity row and storing/announcing its capture),
``-seed``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shlex
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from demo.simulator import GroupSpec, ModelSpec, SimulatedInstance, parse_go_duration

log = logging.getLogger("demo.single")



class ConfigError(ValueError):
    """The config file cannot be used (one line, names the file and the field)."""


def parse_duration(value: Any, where: str) -> float:
    """Seconds of a Go duration (``5s``, ``1m30s``, ``500ms``) or a bare number of seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    try:
        return parse_go_duration(str(value))
    except ValueError:
        raise ConfigError(f"{where}: invalid duration {value!r}") from None


def simple_responder_message(cmd: Any) -> str | None:
    """The ``-respond`` text when a model's ``cmd`` runs llama-swap's ``simple-responder`` (default ``hi``)."""
    try:
        argv = shlex.split(str(cmd or ""))
    except ValueError:
        return None
    if not argv or not Path(argv[0]).name.startswith("simple-responder"):
        return None
    for i, arg in enumerate(argv[:-1]):
        if arg in ("-respond", "--respond"):
            return argv[i + 1]
    return next((a.split("=", 1)[1] for a in argv if a.startswith(("-respond=", "--respond="))), "hi")


@dataclass(frozen=True)
class SingleConfig:
    """What one simulated instance takes from a llama-swap config file."""

    models: tuple[ModelSpec, ...]
    groups: tuple[GroupSpec, ...] = ()
    start_port: int = 5800
    capture_buffer_mb: float = 5.0
    perf_every_s: float = 5.0
    metrics_max_in_memory: int = 1000
    store_path: str | None = None
    api_keys: tuple[str, ...] = field(default=())
    doc: dict[str, Any] = field(default_factory=dict, compare=False)  # the parsed file (for /api/mcp)

    def options(self) -> dict[str, Any]:
        """Keyword arguments shared by ``SimulatedInstance(...)`` and ``SimulatedInstance.reload(...)``."""
        return {"api_keys": self.api_keys, "metrics_max_in_memory": self.metrics_max_in_memory,
                "capture_buffer_mb": self.capture_buffer_mb, "perf_every_s": self.perf_every_s,
                "start_port": self.start_port, "store_path": self.store_path}


def _int(doc: Mapping[str, Any], key: str, default: int, where: str) -> int:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: {key} must be an integer, got {value!r}")
    return value


def parse_config(text: str, where: str = "config", load_s: float = 0.2) -> SingleConfig:
    """Parse llama-swap YAML (the subset in the module docstring); raises ConfigError."""
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: invalid YAML: {exc}".splitlines()[0]) from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: the top level must be a mapping")
    raw_models = doc.get("models") or {}
    if not isinstance(raw_models, dict):
        raise ConfigError(f"{where}: models must be a mapping of model id to settings")
    member_of: dict[str, str] = {}
    groups = []
    for gid, g in (doc.get("groups") or {}).items():
        g = g or {}
        if not isinstance(g, dict):
            raise ConfigError(f"{where}: groups.{gid} must be a mapping")
        groups.append(GroupSpec(str(gid), swap=bool(g.get("swap", True)), exclusive=bool(g.get("exclusive", True))))
        for member in g.get("members") or []:
            if str(member) in member_of:
                raise ConfigError(f"{where}: model {member} is a member of groups {member_of[member]} and {gid}")
            member_of[str(member)] = str(gid)
    models = []
    for mid, m in raw_models.items():
        m = m or {}
        if not isinstance(m, dict):
            raise ConfigError(f"{where}: models.{mid} must be a mapping")
        aliases = m.get("aliases") or []
        models.append(ModelSpec(str(mid), name=str(m.get("name", "")), description=str(m.get("description", "")),
                                group=member_of.get(str(mid), "(default)"), load_s=load_s,
                                ttl=_int(m, "ttl", 0, f"{where}: models.{mid}"), unlisted=bool(m.get("unlisted")),
                                aliases=tuple(str(a) for a in aliases), respond=simple_responder_message(m.get("cmd"))))
    perf = doc.get("performance") or {}
    if not isinstance(perf, dict):
        raise ConfigError(f"{where}: performance must be a mapping")
    every = 0.0 if perf.get("disabled") else parse_duration(perf.get("every", "5s"), f"{where}: performance.every")
    store = doc.get("store") or {}
    keys = doc.get("apiKeys") or []
    if not isinstance(store, dict) or not isinstance(keys, list):
        raise ConfigError(f"{where}: store must be a mapping and apiKeys a list")
    return SingleConfig(
        models=tuple(models), groups=tuple(groups), start_port=_int(doc, "startPort", 5800, where),
        capture_buffer_mb=float(doc.get("captureBuffer", 5)), perf_every_s=every,
        metrics_max_in_memory=_int(doc, "metricsMaxInMemory", 1000, where) or 1000,
        store_path=str(store.get("path") or "").strip() or None,
        api_keys=tuple(str(k) for k in keys), doc=doc)


def load_config(path: Path, load_s: float = 0.2) -> SingleConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_config(text, str(path), load_s)


async def serve(config_path: Path, host: str, port: int, load_s: float, capture_delay_s: float, seed: int,
                watch: bool = False) -> None:
    from demo.fleet import serve_instances

    cfg = load_config(config_path, load_s)
    sim = SimulatedInstance(cfg.models, cfg.groups, seed=seed, capture_delay_s=capture_delay_s, **cfg.options())
    sim.config_doc = cfg.doc
    fleet = await serve_instances([sim], host, [port])
    log.info("llama-swap (simulated) listening on %s", fleet.base_urls[0])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def reload(why: str = "received SIGHUP") -> None:
        sim.log_proxy(f"[INFO] {why}, reloading config\n")
        try:
            new = load_config(config_path, load_s)
        except ConfigError as exc:
            sim.log_proxy(f"[WARN] failed to reload config: {exc}\n")
            log.warning("failed to reload config: %s", exc)
            return
        sim.config_doc = new.doc
        sim.spawn(sim.reload(new.models, new.groups, **new.options()))

    async def watch_file() -> None:  # -watch-config: poll every 2 s, reload when the bytes changed
        def read() -> bytes | None:
            try:
                return config_path.read_bytes()
            except OSError:
                return None

        seen = read()
        while True:
            await asyncio.sleep(2.0)
            now = read()
            if now is not None and now != seen:
                seen = now
                reload("config file changed")

    if watch:
        sim.spawn(watch_file())

    loop.add_signal_handler(signal.SIGHUP, reload)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    sim.log_proxy("[INFO] received signal terminated, shutting down\n")
    await fleet.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.single", description=__doc__.split("\n\n")[0])
    parser.add_argument("-config", "--config", required=True, type=Path, help="llama-swap config file (YAML)")
    parser.add_argument("-listen", "--listen", default="127.0.0.1:8080", help="host:port (default 127.0.0.1:8080)")
    parser.add_argument("-load-seconds", "--load-seconds", type=float, default=0.2, help="every model's load time")
    parser.add_argument("-capture-delay", "--capture-delay", type=float, default=0.05,
                        help="seconds between storing an activity row and storing/announcing its capture")
    parser.add_argument("-seed", "--seed", type=int, default=0)
    parser.add_argument("-watch-config", "--watch-config", action="store_true",
                        help="poll the config file every 2 s and reload when it changed (like llama-swap)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host, sep, port = args.listen.rpartition(":")
    if not sep or not port.isdigit():
        sys.stderr.write(f"error: -listen must be host:port, got {args.listen!r}\n")
        return 2
    try:
        asyncio.run(serve(args.config, host.strip("[]") or "127.0.0.1", int(port), args.load_seconds,
                          args.capture_delay, args.seed, args.watch_config))
    except ConfigError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    except OSError as exc:
        sys.stderr.write(f"error: cannot listen on {args.listen}: {exc.strerror}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
