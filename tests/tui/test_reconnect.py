"""The console survives its services restarting: it says so, keeps what it has, and comes back live."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from services.session_api.server import SessionApiConfig, build_session_api
from services.thread_store.server import ThreadStoreConfig, build_thread_store
from switchboard.grpc_runtime import GrpcServer
from switchboard.principal import Principal
from tests.conftest import free_port
from tests.session_api.conftest import IdentityProvider, auth_config
from tests.thread_store.helpers import Ctx, user_message
from tests.tui.conftest import NO_RUNNER, Stack, connected, operator_token, wait_for
from tui.app import ConsoleApp
from tui.backend import GrpcConsoleBackend
from tui.screens.conversation import ConversationScreen
from tui.widgets.status_line import StatusLine


async def test_the_console_reconnects_after_both_services_restart_on_the_same_ports(
    stack: Stack, database_url: str, redis_url: str, identity_provider: IdentityProvider, org: str
) -> None:
    session_port, thread_port = free_port(), free_port()

    async def start_session_api() -> GrpcServer:
        config = SessionApiConfig(
            database_url=database_url, redis_url=redis_url, auth=auth_config(identity_provider.jwks.url), migrate=False
        )
        server, _service = await build_session_api(config)
        await server.start("127.0.0.1", session_port)
        return server

    async def start_thread_store() -> GrpcServer:
        server, _service = await build_thread_store(
            ThreadStoreConfig(
                database_url=database_url,
                redis_url=redis_url,
                migrate=False,
                session_api_target=f"127.0.0.1:{session_port}",
            )
        )
        await server.start("127.0.0.1", thread_port)
        return server

    session_api, thread_store = await start_session_api(), await start_thread_store()
    backend = GrpcConsoleBackend(
        token=operator_token(f"op-{org}", org),
        session_api=f"127.0.0.1:{session_port}",
        thread_store=f"127.0.0.1:{thread_port}",
        agent_runner=NO_RUNNER,
        timeout=2.0,
    )
    app = ConsoleApp(backend, metrics_interval=0.5)
    user = Principal(user_id=f"user-{uuid.uuid4().hex[:8]}", org_id=org)
    ctx = Ctx(user_id=user.user_id, org_id=org)
    try:
        async with app.run_test(size=(130, 36)) as pilot:
            await connected(pilot, app)
            thread_id = await stack.user_thread(user, "before the outage")
            before = await stack.sessions.create_session(user, thread_id=thread_id)
            table = app.dashboard.sessions_table
            await wait_for(pilot, lambda: before.session.id in table.shown_ids, what="the first session")
            table.focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ConversationScreen) and app.screen.loaded)
            conversation = app.screen
            assert isinstance(conversation, ConversationScreen)

            await session_api.stop(grace=0)
            await thread_store.stop(grace=0)
            line = conversation.query_one(StatusLine)
            await wait_for(
                pilot,
                lambda: "session_api reconnecting" in line.plain and "thread_store reconnecting" in line.plain,
                what="the status line says reconnecting",
            )
            assert before.session.id in table.shown_ids  # what it had is kept
            assert "before the outage" in conversation.transcript.text

            # A message written while thread_store is down elsewhere (another replica) is not lost either.
            missed = user_message(thread_id, "written during the outage", at=datetime.now(UTC))
            await stack.threads.add_thread_item(thread_id, missed, ctx)

            session_api, thread_store = await start_session_api(), await start_thread_store()
            await wait_for(pilot, lambda: not line.reconnecting, timeout=10, what="reconnected")
            await connected(pilot, app)
            assert "reconnecting" not in line.plain and "● session_api" in line.plain

            after = await stack.sessions.create_session(user, agent_id="after-restart")
            await wait_for(pilot, lambda: after.session.id in table.shown_ids, what="a session after the restart")
            await wait_for(pilot, lambda: missed.id in conversation.transcript.item_ids, what="the missed message")
            later = user_message(thread_id, "after the restart", at=datetime.now(UTC))
            await stack.threads.add_thread_item(thread_id, later, ctx)
            await wait_for(pilot, lambda: later.id in conversation.transcript.item_ids, what="live items again")
            assert app.is_running
    finally:
        await session_api.stop(grace=0)
        await thread_store.stop(grace=0)
