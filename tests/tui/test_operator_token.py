"""The console signs in with the operator's token, sends it with every call, and stops cleanly when
it expires (a development token is minted again instead): an expired token never keeps working."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import jwt
import pytest

from tests.session_api.conftest import AUDIENCE, HS_SECRET, ISSUER
from tests.tui.conftest import Stack
from tui.backend import GrpcConsoleBackend, OperatorToken, SignInFailed
from tui.feeds import follow_sessions
from tui.messages import ConnectionChanged, SnapshotLoaded


def _token(org: str, *, seconds: float, operator: str = "") -> str:
    now = time.time()
    claims = {"sub": operator or f"op-{uuid.uuid4().hex[:6]}", "org_id": org, "roles": ["operator"], "aud": AUDIENCE}
    return jwt.encode(
        {**claims, "iss": ISSUER, "iat": int(now), "exp": int(now + seconds)}, HS_SECRET, algorithm="HS256"
    )


def test_an_expired_token_is_refused_before_any_call_and_a_development_one_is_minted_again() -> None:
    expired = OperatorToken(_token("acme", seconds=-5))
    with pytest.raises(SignInFailed, match="expired"):
        expired.current()
    fresh = _token("acme", seconds=3600)
    renewing = OperatorToken(_token("acme", seconds=30), renew=lambda: fresh)  # due: within the last minute
    assert renewing.renewable and renewing.current() == fresh
    assert renewing.expires_at is not None and renewing.expires_at > time.time() + 3000


async def test_the_console_stops_following_when_the_token_expires(stack: Stack, org: str) -> None:
    backend = GrpcConsoleBackend(
        token=_token(org, seconds=4),
        session_api=stack.session_api.target,
        thread_store=stack.thread_store.target,
        timeout=3.0,
    )
    posted: list[Any] = []
    following = asyncio.Event()

    def post(message: Any) -> None:
        posted.append(message)
        if isinstance(message, SnapshotLoaded):
            following.set()

    feed = asyncio.create_task(follow_sessions(backend, post, asyncio.Event()))
    await asyncio.wait_for(following.wait(), 10)  # signed in and following
    await asyncio.wait_for(feed, 10)  # the feed ends by itself at expiry, though its watch was healthy
    failed = [m for m in posted if isinstance(m, ConnectionChanged) and m.state == "failed"]
    assert failed and "expired" in failed[-1].detail
    with pytest.raises(SignInFailed):
        await backend.load_sessions()  # and no call goes out with it any more
    await asyncio.gather(backend.sessions.close(), backend.threads.close(), backend.runner.close())


async def test_a_development_token_is_renewed_and_the_console_keeps_following(stack: Stack, org: str) -> None:
    minted: list[str] = []
    renewed = asyncio.Event()
    loop = asyncio.get_running_loop()

    def renew() -> str:
        minted.append(_token(org, seconds=3600, operator="op-dev"))
        loop.call_soon(renewed.set)
        return minted[-1]

    backend = GrpcConsoleBackend(
        token=OperatorToken(_token(org, seconds=62, operator="op-dev"), renew=renew),  # due in about 2 s
        session_api=stack.session_api.target,
        thread_store=stack.thread_store.target,
        timeout=3.0,
    )
    posted: list[Any] = []
    feed = asyncio.create_task(follow_sessions(backend, posted.append, asyncio.Event()))
    await asyncio.wait_for(renewed.wait(), 10)
    assert backend.token.current() == minted[0]
    assert not feed.done()  # still following
    assert await backend.load_sessions() is not None
    feed.cancel()
    await asyncio.gather(feed, return_exceptions=True)
    await asyncio.gather(backend.sessions.close(), backend.threads.close(), backend.runner.close())
