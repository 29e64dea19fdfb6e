"""Redis is a convenience: when it is down, sessions still work and only the live watch is unavailable."""

from __future__ import annotations

import pytest

from switchboard.errors import Unauthenticated, Unavailable
from switchboard.principal import Principal
from tests.conftest import PrivateRedis
from tests.session_api.conftest import IdentityProvider, auth_config, start_session_api


async def test_sessions_keep_working_while_redis_is_down(
    database_url: str, private_redis: PrivateRedis, identity_provider: IdentityProvider, user: Principal
) -> None:
    running = await start_session_api(database_url, private_redis.url, auth_config(identity_provider.jwks.url))
    client = running.client
    try:
        private_redis.stop()
        created = await client.create_session(user)
        assert (await client.authenticate(created.client_secret.token)).principal.session_id == created.session.id
        assert (await client.cancel_session(user, created.session.id)).status == "cancelled"
        with pytest.raises(Unauthenticated):
            await client.authenticate(created.client_secret.token)
        with pytest.raises(Unavailable):
            await anext(client.watch(user))
    finally:
        await client.close()
        await running.server.stop(grace=0)


async def test_without_redis_the_watch_says_why_it_is_unavailable(
    database_url: str, identity_provider: IdentityProvider, user: Principal
) -> None:
    running = await start_session_api(database_url, None, auth_config(identity_provider.jwks.url))
    try:
        with pytest.raises(Unavailable, match="needs Redis"):
            await anext(running.client.watch(user))
        assert (await running.client.create_session(user)).session.status == "active"
    finally:
        await running.client.close()
        await running.server.stop(grace=0)
