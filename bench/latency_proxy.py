"""A TCP proxy that adds a fixed delay each way, like a hosted Postgres a region away.

``python -m bench.latency_proxy --listen 127.0.0.1:6543 --target /tmp/pg/.s.PGSQL.5432 --delay-ms 1``
(a target starting with ``/`` is a Unix socket). Every chunk is forwarded
``delay`` after it arrived, preserving order, so throughput is not capped.
"""

from __future__ import annotations

import argparse
import asyncio
import time


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def forward() -> None:
        while True:
            due, chunk = await queue.get()
            if not chunk:
                writer.close()
                return
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(chunk)
            await writer.drain()

    task = asyncio.create_task(forward())
    try:
        while True:
            chunk = await reader.read(65536)
            queue.put_nowait((time.perf_counter() + delay, chunk))
            if not chunk:
                break
        await task
    except (ConnectionError, asyncio.CancelledError):
        task.cancel()


async def serve(listen: str, target: str, delay: float) -> None:
    """Proxy connections from ``listen`` to ``target`` until killed."""

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if target.startswith("/"):
            server_r, server_w = await asyncio.open_unix_connection(target)
        else:
            host, port = target.rsplit(":", 1)
            server_r, server_w = await asyncio.open_connection(host, int(port))
        await asyncio.gather(_pump(client_r, server_w, delay), _pump(server_r, client_w, delay))

    host, port = listen.rsplit(":", 1)
    server = await asyncio.start_server(handle, host, int(port))
    async with server:
        await server.serve_forever()


def main() -> None:
    """Parse flags and proxy."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--delay-ms", type=float, default=1.0)
    args = parser.parse_args()
    asyncio.run(serve(args.listen, args.target, args.delay_ms / 1000))


if __name__ == "__main__":
    main()
