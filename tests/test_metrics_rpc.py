"""Every gRPC call is counted, calls the caller cancels included (a watch closed by its client,
a deadline that passed), so the dashboard's request rate holds every call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
from prometheus_client import REGISTRY

from switchboard.grpc_client import open_channel
from switchboard.grpc_runtime import GrpcServer, TlsConfig

SERVICE = "switchboard.test.Waiting"


async def _never_answer(request: bytes, context: Any) -> bytes:
    await asyncio.Event().wait()
    return b""


async def _one_then_wait(request: bytes, context: Any) -> AsyncIterator[bytes]:
    yield b"first"
    await asyncio.Event().wait()


def _register(server: grpc.aio.Server) -> None:
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(_never_answer),
        "Stream": grpc.unary_stream_rpc_method_handler(_one_then_wait),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))


def _count(method: str, code: str) -> float:
    return REGISTRY.get_sample_value("switchboard_grpc_requests_total", {"method": method, "code": code}) or 0.0


async def _eventually(method: str, code: str, at_least: float) -> float:
    for _ in range(100):  # the server learns of the cancel a moment after the client
        if (value := _count(method, code)) >= at_least:
            return value
        await asyncio.sleep(0.02)
    return _count(method, code)


async def test_calls_the_caller_cancels_are_counted_as_cancelled() -> None:
    server = GrpcServer(name=SERVICE, register=_register, tls=TlsConfig())
    port = await server.start("127.0.0.1", 0)
    channel = open_channel(f"127.0.0.1:{port}", TlsConfig())
    unary, stream = f"/{SERVICE}/Unary", f"/{SERVICE}/Stream"
    before = {m: _count(m, "CANCELLED") for m in (unary, stream)}
    try:
        call = channel.unary_stream(stream)(b"")
        assert await call.read() == b"first"
        call.cancel()
        try:
            await channel.unary_unary(unary)(b"", timeout=0.2)
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert await _eventually(stream, "CANCELLED", before[stream] + 1) == before[stream] + 1
        assert await _eventually(unary, "CANCELLED", before[unary] + 1) == before[unary] + 1
        assert _count(stream, "OK") == 0 and _count(unary, "OK") == 0
    finally:
        await channel.close()
        await server.stop(0)
