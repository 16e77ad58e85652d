"""Record a real llama-swap's answers as contract fixtures: ``tests/fixtures/llama_swap/<label>/``.

    BOOCONTROL_LLAMA_SWAP_BIN=/path/to/llama-swap .venv/bin/python scripts/record_llama_swap.py [--label v250]

Starts the binary on 127.0.0.1 with a config of two ``simple-responder`` models in one swap group (API key,
small activity ring, capture buffer, performance sampling), drives ``demo.contract.run_scenario`` against it
(including a SIGHUP config reload), and writes the normalised recording. ``simple-responder`` is taken from
``BOOCONTROL_SIMPLE_RESPONDER_BIN`` or from beside the llama-swap binary. The label is the version from
``/api/version``; a plain source build reports ``0``, so then ``--label`` is required.

This script only drives a binary you already have; it never builds or downloads llama-swap.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from demo.contract import ScenarioConfig, ScenarioError, run_scenario, scrub  # noqa: E402

OUT = ROOT / "tests" / "fixtures" / "llama_swap"
RAW_SSE_BYTES = 6000


def config_text(responder: Path, start_port: int, cfg: ScenarioConfig) -> str:
    return f"""\
healthCheckTimeout: 15
startPort: {start_port}
captureBuffer: 1
metricsMaxInMemory: {cfg.ring}
apiKeys: ["{cfg.api_key}"]
performance:
  every: 5s
models:
  {cfg.model_a}:
    cmd: {responder} -port ${{PORT}} -respond from-a -silent
    proxy: http://127.0.0.1:${{PORT}}
    aliases: [{cfg.alias_a}]
  {cfg.model_b}:
    cmd: {responder} -port ${{PORT}} -respond from-b -silent
    proxy: http://127.0.0.1:${{PORT}}
routing:
  router:
    use: group
    settings:
      groups:
        responders:
          swap: true
          exclusive: true
          members: [{cfg.model_a}, {cfg.model_b}]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_block(n: int = 4) -> int:
    """Consecutive free ports below the ephemeral range for ``startPort``."""
    for base in range(23100, 32000, 7):
        try:
            for port in range(base, base + n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise SystemExit("record_llama_swap: no free port block below 32000")


def wait_healthy(base: str, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"record_llama_swap: llama-swap exited with {proc.returncode} during startup")
        try:
            if httpx.get(base + "/wol-health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"record_llama_swap: llama-swap at {base} did not answer /wol-health within {timeout:.0f} s")


def resolve_binaries() -> tuple[Path, Path]:
    raw = os.environ.get("BOOCONTROL_LLAMA_SWAP_BIN")
    if not raw:
        raise SystemExit("record_llama_swap: set BOOCONTROL_LLAMA_SWAP_BIN to a llama-swap binary")
    binary = Path(raw).expanduser()
    if not binary.is_file():
        raise SystemExit(f"record_llama_swap: BOOCONTROL_LLAMA_SWAP_BIN={binary} is not a file")
    responder = Path(os.environ.get("BOOCONTROL_SIMPLE_RESPONDER_BIN") or binary.parent / "simple-responder")
    if not responder.is_file():
        raise SystemExit(f"record_llama_swap: no simple-responder at {responder} "
                         "(set BOOCONTROL_SIMPLE_RESPONDER_BIN)")
    return binary, responder


def dump(part: dict[str, Any]) -> str:
    """JSON with one line per exchange / per event message, so fixture diffs stay readable and small."""
    def line(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    rows = []
    for key, value in part.items():
        if isinstance(value, dict) and value and key != "headers" and all(isinstance(v, dict) for v in value.values()):
            inner = ",\n".join(f"  {line(k)}: {line(v)}" for k, v in value.items())
            rows.append(f" {line(key)}: {{\n{inner}\n }}")
        elif isinstance(value, list) and value:
            inner = ",\n".join(f"  {line(v)}" for v in value)
            rows.append(f" {line(key)}: [\n{inner}\n ]")
        else:
            rows.append(f" {line(key)}: {line(value)}")
    return "{\n" + ",\n".join(rows) + "\n}\n"


def write_fixtures(recording: dict[str, Any], raw_sse: bytes, label: str, out: Path,
                   replacements: dict[str, str], provenance: str) -> Path:
    target = out / label
    target.mkdir(parents=True, exist_ok=True)
    clean = scrub(recording, replacements)
    parts = {"exchanges.json": {"exchanges": clean["exchanges"]}, "events.json": clean["events"],
             "meta.json": {"format": clean["format"], "label": label, "facts": clean["facts"],
                           "recorded_on": time.strftime("%Y-%m-%d", time.gmtime()),
                           "binary": scrub(provenance, replacements)}}
    if "events_after_reload" in clean:
        parts["events_after_reload.json"] = clean["events_after_reload"]
    for name, part in parts.items():
        (target / name).write_text(dump(part), encoding="utf-8")
    cut = raw_sse[:RAW_SSE_BYTES]
    cut = cut[: cut.rfind(b"\n\n") + 2]
    text = cut.decode("utf-8")
    for old, new in replacements.items():
        text = text.replace(old, new)
    (target / "events.sse").write_text(text, encoding="utf-8")
    return target


async def record(binary: Path, responder: Path, label: str | None, out: Path, reload: bool) -> Path:
    cfg = ScenarioConfig()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="record-llama-swap-") as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(config_text(responder, port_block(), cfg), encoding="utf-8")
        log = (Path(tmp) / "llama-swap.log").open("wb")
        proc = subprocess.Popen([str(binary), "-config", str(config), "-listen", f"127.0.0.1:{port}"],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_healthy(base, proc)

            async def sighup() -> None:
                proc.send_signal(signal.SIGHUP)

            async with httpx.AsyncClient() as client:
                recording = await run_scenario(client, base, cfg, reload=sighup if reload else None)
        except ScenarioError as exc:
            log.close()
            tail = (Path(tmp) / "llama-swap.log").read_text(errors="replace")[-1500:]
            raise SystemExit(f"record_llama_swap: {exc}\n--- llama-swap log tail ---\n{tail}") from None
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=35)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
            log.close()
    version = recording["exchanges"]["version"]["body"].get("json", {})
    if label is None:
        label = str(version.get("version", ""))
        if label in ("", "0", "unknown"):
            raise SystemExit(f"record_llama_swap: this build reports version {label!r} (a plain source build); "
                             "pass --label, e.g. --label v250")
    replacements = {str(responder.parent): "<bin>", cfg.api_key: "<api-key>"}
    raw_sse = recording["events"].pop("raw", b"")
    recording.get("events_after_reload", {}).pop("raw", None)
    prov = binary.parent / "PROVENANCE"
    provenance = prov.read_text(encoding="utf-8").strip().splitlines()[0] if prov.is_file() else binary.name
    return write_fixtures(recording, raw_sse, label, out, replacements, provenance)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", help="fixture directory name (default: the version from /api/version)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"fixture root (default {OUT.relative_to(ROOT)})")
    parser.add_argument("--no-reload", action="store_true", help="skip the SIGHUP config-reload step")
    args = parser.parse_args(argv)
    binary, responder = resolve_binaries()
    target = asyncio.run(record(binary, responder, args.label, args.out, not args.no_reload))
    size = sum(p.stat().st_size for p in target.iterdir())
    print(f"recorded {binary} into {target} ({size / 1024:.1f} KiB)")


if __name__ == "__main__":
    main()
