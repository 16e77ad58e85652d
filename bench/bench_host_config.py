"""Reading host configs: asyncssh vs paramiko over a real sshd, and one MCP read cycle over a demo fleet.

1. **SSH libraries side by side** (one run, alternating): a real sshd on loopback (Debian's openssh-server, fresh
   keys, as in ``tests/ops_config``); ``--reads`` times each: (a) connect + SFTP read of a config file + close,
   (b) SFTP reads over one open connection. asyncssh is what BooControl uses; paramiko is measured only when it is
   importable (it is not a dependency: ``pip install paramiko`` to compare, uninstall afterwards).
2. **MCP cycle**: ``--instances`` simulated hosts (the demo fleet, one process, no traffic), every host's
   effective config read through ``connectors.host_config.read_host_config`` with ``poll_configs``' concurrency
   (16): wall time of one cycle, and the same for one cycle of the connector's cheapest poll (``/wol-health`` of
   every host at the same concurrency) as the ratio's base.

    .venv/bin/python bench/bench_host_config.py [--reads 30] [--instances 500]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncssh  # noqa: E402
import httpx  # noqa: E402

from connectors.host_config import read_host_config  # noqa: E402
from core.providers import Provider  # noqa: E402
from tests.ops_config.sshd import run_sshd  # noqa: E402

CONFIG = "models:\n" + "".join(f"  m{i}:\n    cmd: llama-server --port ${{PORT}} -m /m/m{i}.gguf -c 8192\n"
                               for i in range(60))


def bench_ssh(reads: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, run_sshd(Path(tmp) / "sshd") as sshd:
        path = Path(tmp) / "config.yaml"
        path.write_text(CONFIG)
        key = sshd.secrets_dir / sshd.key_name
        known = sshd.secrets_dir / "known_hosts"

        async def a_connect_read() -> bytes:
            async with asyncssh.connect("127.0.0.1", sshd.port, username=sshd.user, client_keys=[str(key)],
                                        known_hosts=str(known), agent_path=None, config=[]) as conn, \
                    conn.start_sftp_client() as sftp, sftp.open(str(path), "rb") as f:
                return bytes(await f.read())

        async def a_reuse(n: int) -> float:
            async with asyncssh.connect("127.0.0.1", sshd.port, username=sshd.user, client_keys=[str(key)],
                                        known_hosts=str(known), agent_path=None, config=[]) as conn, \
                    conn.start_sftp_client() as sftp:
                t0 = time.perf_counter()
                for _ in range(n):
                    async with sftp.open(str(path), "rb") as f:
                        await f.read()
                return (time.perf_counter() - t0) / n

        try:
            import paramiko  # type: ignore[import-untyped]
        except ImportError:
            paramiko = None

        def p_client() -> object:
            assert paramiko is not None
            c = paramiko.SSHClient()
            c.load_host_keys(str(known))
            c.set_missing_host_key_policy(paramiko.RejectPolicy())
            c.connect("127.0.0.1", sshd.port, username=sshd.user, key_filename=str(key), allow_agent=False,
                      look_for_keys=False)
            return c

        def p_connect_read() -> bytes:
            c = p_client()
            try:
                with c.open_sftp() as sftp, sftp.open(str(path), "rb") as f:  # type: ignore[attr-defined]
                    return bytes(f.read())
            finally:
                c.close()  # type: ignore[attr-defined]

        def p_reuse(n: int) -> float:
            c = p_client()
            try:
                with c.open_sftp() as sftp:  # type: ignore[attr-defined]
                    t0 = time.perf_counter()
                    for _ in range(n):
                        with sftp.open(str(path), "rb") as f:
                            f.read()
                    return (time.perf_counter() - t0) / n
            finally:
                c.close()  # type: ignore[attr-defined]

        a_times, p_times = [], []
        for _ in range(reads):  # alternating, so both see the same machine load
            t0 = time.perf_counter()
            assert asyncio.run(a_connect_read()) == CONFIG.encode()
            a_times.append(time.perf_counter() - t0)
            if paramiko is not None:
                t0 = time.perf_counter()
                assert p_connect_read() == CONFIG.encode()
                p_times.append(time.perf_counter() - t0)
        a_reuse_s = asyncio.run(a_reuse(reads))
        print(f"asyncssh {asyncssh.__version__}: connect+read median {statistics.median(a_times) * 1000:.1f} ms, "
              f"read on an open connection {a_reuse_s * 1000:.2f} ms")
        if paramiko is not None:
            p_reuse_s = p_reuse(reads)
            print(f"paramiko {paramiko.__version__}: connect+read median {statistics.median(p_times) * 1000:.1f} ms, "
                  f"read on an open connection {p_reuse_s * 1000:.2f} ms")
            print(f"ratio paramiko/asyncssh: connect+read {statistics.median(p_times) / statistics.median(a_times):.2f}"
                  f", read {p_reuse_s / a_reuse_s:.2f}")
        else:
            print("paramiko: not installed (not a dependency); pip install paramiko to compare")


def bench_mcp(instances: int) -> None:
    from demo.fleet import demo_fleet_in_thread

    with demo_fleet_in_thread(instances) as fleet:
        providers = [Provider(id=f"d{i}", label="d", base_url=u) for i, u in enumerate(fleet.base_urls)]

        async def cycle(what: str) -> float:
            sem = asyncio.Semaphore(16)
            async with httpx.AsyncClient(timeout=30) as client:
                async def one(p: Provider) -> None:
                    async with sem:
                        if what == "mcp":
                            got = await read_host_config(p, client, None)
                            assert got.source == "mcp"
                        else:
                            assert (await client.get(p.base_url + "/wol-health")).status_code == 200

                t0 = time.perf_counter()
                await asyncio.gather(*(one(p) for p in providers))
                return time.perf_counter() - t0

        base = [asyncio.run(cycle("health")) for _ in range(2)]
        mcp = [asyncio.run(cycle("mcp")) for _ in range(2)]
        print(f"{instances} hosts, 16 at a time: MCP config read cycle {min(mcp):.2f} s, /wol-health cycle "
              f"{min(base):.2f} s, ratio {min(mcp) / min(base):.1f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reads", type=int, default=30)
    ap.add_argument("--instances", type=int, default=500)
    args = ap.parse_args()
    bench_ssh(args.reads)
    bench_mcp(args.instances)


if __name__ == "__main__":
    main()
