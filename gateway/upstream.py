"""The gateway's upstream HTTP pool: aiohttp's client session, with a cheaper way to open a connection.

llama.cpp's ``llama-server`` closes the connection after every streamed reply (without a ``Connection: close``
header), so in front of it every streaming request opens a new upstream connection, on the path to the first
token. aiohttp opens connections through ``aiohappyeyeballs`` (a socket, then ``loop.sock_connect``, then
``loop.create_connection(sock=...)``); under uvloop ``sock_connect`` resolves even a numeric address again in
libuv's thread pool, a round trip through another thread for every connection. With a single numeric
address there is nothing for Happy Eyeballs to race, so `DirectConnector` asks the loop to connect to it
directly (``loop.create_connection(host, port)``: uvloop takes a numeric host without the thread pool).
Measured with uvloop on this machine: 0.12 ms per connection against 0.25 ms the aiohappyeyeballs way
(`bench/bench_gateway.py connect`). Anything else (a host name with several addresses, a local address to
bind, TLS) goes aiohttp's own way.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import aiohttp


def _numeric(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class DirectConnector(aiohttp.TCPConnector):
    """A `aiohttp.TCPConnector` that connects to a lone numeric address with one ``create_connection`` call.

    ``direct`` counts the connections opened that way (the tests read it)."""

    direct = 0

    async def _wrap_create_connection(self, *args: Any, addr_infos: list[Any], req: Any, timeout: Any,
                                      client_error: type[Exception] = aiohttp.ClientConnectorError,
                                      **kwargs: Any) -> Any:
        if len(addr_infos) == 1 and not kwargs.get("ssl") and not kwargs.get("local_addr"):
            family, _, proto, _, address = addr_infos[0]
            host, port = address[0], address[1]
            if family in (socket.AF_INET, socket.AF_INET6) and _numeric(host):
                try:
                    connect: Any = self._loop.create_connection  # the numeric-host overload
                    async with asyncio.timeout(timeout.sock_connect):
                        made = await connect(*args, host=host, port=port, family=family,
                                                                  proto=proto, **kwargs)
                except TimeoutError:
                    raise
                except OSError as exc:
                    raise client_error(req.connection_key, exc) from exc
                self.direct += 1
                return made
        return await super()._wrap_create_connection(*args, addr_infos=addr_infos, req=req, timeout=timeout,
                                                     client_error=client_error, **kwargs)


def upstream_session(**session: Any) -> aiohttp.ClientSession:
    """The session the gateway sends every upstream request through (no pool limit: the upstreams and the
    per-consumer limits bound concurrency; bodies passed through as they are, compressed or not). ``session``:
    more `aiohttp.ClientSession` arguments (the tests' trace configs)."""
    return aiohttp.ClientSession(
        connector=DirectConnector(limit=0, ttl_dns_cache=60, enable_cleanup_closed=True),
        auto_decompress=False, skip_auto_headers=("User-Agent",), **session)
