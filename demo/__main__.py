"""``python -m demo -n 5 [--registry fleet.demo.yaml]``: run a demo fleet in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

from demo.fleet import run_demo_fleet, write_demo_registry


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument("-n", type=int, default=5, help="number of simulated llama-swap instances")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--base-port", type=int, default=19400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rpm", type=float, default=6.0, help="requests per minute per instance")
    parser.add_argument("--perf-every", type=float, default=5.0, help="seconds between telemetry samples")
    parser.add_argument("--registry", help="also write a provider registry YAML to this path")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.registry:
        write_demo_registry(args.registry, args.n, args.host, args.base_port)

    async def serve() -> None:
        task = asyncio.ensure_future(run_demo_fleet(args.n, args.host, args.base_port, args.seed, args.rpm,
                                                    args.perf_every))
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(serve())


if __name__ == "__main__":
    main()
