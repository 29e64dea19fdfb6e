"""Outgoing webhooks: the outbox, signatures, retries, order, dead letters and
redelivery, against a receiver these tests run and a database of each test."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from standardwebhooks.webhooks import Webhook

from services.session_api.client import SessionApiClient
from services.session_api.repository import QUERIES_DIR
from services.session_api.server import SessionApiConfig, build_session_api
from services.session_api.webhooks import (
    WebhookConfig,
    WebhookDeliverer,
    WebhookRepository,
    backoff_seconds,
    check_secret,
    check_target_url,
    generate_secret,
    sign,
)
from switchboard.errors import InvalidArgument
from switchboard.principal import Principal
from switchboard.sql import Queries, create_pool
from tests.conftest import copied_database, migrated_database
from tests.session_api.conftest import IdentityProvider, auth_config
from tests.session_api.webhook_receiver import WebhookReceiver

REPO = Path(__file__).resolve().parents[2]
QUERIES = Queries.load(QUERIES_DIR)
FAST = WebhookConfig(
    allow_private=True,
    timeout_seconds=0.5,
    backoff_base_seconds=0.05,
    backoff_max_seconds=0.2,
    workers=2,
    poll_seconds=0.05,
)


@pytest.fixture(scope="module")
def webhook_template(server_database_url: str) -> Iterator[str]:
    """A migrated database the tests copy."""
    with migrated_database(server_database_url, "sbwht") as url:
        yield url


@pytest.fixture
def db_url(server_database_url: str, webhook_template: str) -> Iterator[str]:
    """A database of this test alone."""
    with copied_database(server_database_url, webhook_template) as url:
        yield url


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the test's database."""
    p = await create_pool(db_url, max_size=5)
    yield p
    await p.close()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A webhook receiver on 127.0.0.1."""
    r = WebhookReceiver()
    yield r
    r.close()


async def add_endpoint(
    pool: asyncpg.Pool, url: str, org: str = "org-a", types: list[str] | None = None
) -> tuple[str, str]:
    """An org endpoint; returns its id and secret."""
    secret = generate_secret()
    endpoint = await WebhookRepository(pool, QUERIES).add_endpoint(
        org_id=org, url=url, secret=secret, event_types=types or [], description="test", created_by="tests"
    )
    return endpoint.id, secret


async def enqueue(pool: asyncpg.Pool, type: str, key: str, n: int, org: str = "org-a") -> str:
    """One event through the outbox function the triggers use."""
    event_id: str = await pool.fetchval(QUERIES.enqueue_event, type, org, key, json.dumps({"n": n}))
    return event_id


async def wait_until(condition: object, timeout: float = 10.0) -> None:
    """Poll ``condition`` (a callable, maybe async) until it is true."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()  # type: ignore[operator]
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


async def _is_delivered(pool: asyncpg.Pool, event_id: str) -> bool:
    return await delivery_status(pool, event_id) == "delivered"


async def delivery_status(pool: asyncpg.Pool, event_id: str) -> str | None:
    status: str | None = await pool.fetchval(
        "SELECT d.status FROM webhook_deliveries d JOIN webhook_events e ON e.seq = d.event_seq WHERE e.id = $1",
        event_id,
    )
    return status


# -- signatures ---------------------------------------------------------------------


def test_signatures_match_the_specifications_test_vector() -> None:
    # The Standard Webhooks specification's published example (secret, id, timestamp, payload, signature).
    signature = sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        msg_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
        timestamp=datetime.fromtimestamp(1614265330, UTC),
        body=b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


async def test_a_delivered_event_verifies_with_the_specifications_algorithm(
    pool: asyncpg.Pool, receiver: WebhookReceiver
) -> None:
    _, secret = await add_endpoint(pool, receiver.url)
    event_id = await enqueue(pool, "session.created", "session:s1", 1)
    deliverer = WebhookDeliverer(pool, QUERIES, FAST)
    assert await deliverer.deliver_one()
    await deliverer.stop()
    [request] = receiver.received
    assert request.headers["webhook-id"] == event_id
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["type"] == "session.created" and payload["data"] == {"n": 1}
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(generate_secret()).verify(request.body, request.headers)
    assert await delivery_status(pool, event_id) == "delivered"


# -- the outbox ---------------------------------------------------------------------


async def test_changes_enqueue_their_events_in_their_own_transaction(
    pool: asyncpg.Pool, receiver: WebhookReceiver
) -> None:
    await add_endpoint(pool, receiver.url)
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO sessions (id, user_id, org_id, channel) VALUES ('s1', 'u1', 'org-a', 'web'),"
            " ('s-other', 'u2', 'org-b', 'web')"
        )
        await conn.execute(
            "INSERT INTO escalations (id, session_id, thread_id, user_id, org_id, reason, opened_by)"
            " VALUES ('e1', 's1', 't1', 'u1', 'org-a', 'help', 'u1')"
        )
        await conn.execute("UPDATE escalations SET status = 'claimed', claimed_by = 'op' WHERE id = 'e1'")
        await conn.execute(
            "INSERT INTO threads (id, user_id, org_id, data, created_at) VALUES ('t1', 'u1', 'org-a', '{}', now())"
        )
        await conn.execute("UPDATE threads SET handler = 'human', handler_operator = 'op' WHERE id = 't1'")
        await conn.execute("UPDATE threads SET handler = 'agent', handler_operator = NULL WHERE id = 't1'")
        await conn.execute("UPDATE escalations SET status = 'resolved', resolved_by = 'op' WHERE id = 'e1'")
        await conn.execute(
            "INSERT INTO runs (id, thread_id, user_id, org_id, status) VALUES ('r1', 't1', 'u1', 'org-a', 'running')"
        )
        await conn.execute("UPDATE runs SET lease_expires_at = now() WHERE id = 'r1'")  # not an event
        await conn.execute("UPDATE runs SET status = 'completed' WHERE id = 'r1'")
        await conn.execute(
            "INSERT INTO session_events (session_id, type, actor_user_id, payload) VALUES ('s1', 'feedback', 'u1',"
            """ '{"thread_id": "t1", "item_ids": ["i1"], "kind": "negative"}')"""
        )
        await conn.execute("UPDATE sessions SET status = 'ended', ended_at = now() WHERE id = 's1'")
        # A change that rolls back leaves no event.
        with pytest.raises(asyncpg.PostgresError):
            async with conn.transaction():
                await conn.execute("UPDATE sessions SET status = 'cancelled', ended_at = now() WHERE id = 's-other'")
                await conn.execute("SELECT 1/0")
        rows = await conn.fetch("SELECT type, org_id, ordering_key FROM webhook_events ORDER BY seq")
    # org-b has no endpoint and no deployment endpoint exists: its events are not stored at all.
    assert [(r["type"], r["ordering_key"]) for r in rows] == [
        ("session.created", "session:s1"),
        ("escalation.opened", "thread:t1"),
        ("escalation.claimed", "thread:t1"),
        ("handoff.started", "thread:t1"),
        ("handoff.ended", "thread:t1"),
        ("escalation.resolved", "thread:t1"),
        ("run.completed", "thread:t1"),
        ("feedback.given", "thread:t1"),
        ("session.ended", "session:s1"),
    ]


async def test_an_endpoint_gets_only_the_event_types_it_asked_for(
    pool: asyncpg.Pool, receiver: WebhookReceiver
) -> None:
    await add_endpoint(pool, receiver.url, types=["escalation.opened"])
    assert await enqueue(pool, "session.created", "session:s", 1) is None
    assert await enqueue(pool, "escalation.opened", "thread:t", 2) is not None


# -- retries, order, dead letters ---------------------------------------------------


async def test_500s_and_timeouts_are_retried_with_the_same_id_until_delivered(
    pool: asyncpg.Pool, receiver: WebhookReceiver
) -> None:
    endpoint_id, secret = await add_endpoint(pool, receiver.url)
    receiver.script = [500, 503, 2.0]  # two errors, then a hang past the 0.5 s time-out
    event_id = await enqueue(pool, "run.failed", "thread:t", 1)
    deliverer = WebhookDeliverer(pool, QUERIES, FAST)
    await deliverer.start()
    try:
        # Delivered means recorded as such, not only answered: the receiver's 200 comes first.
        await wait_until(receiver.answered_ok, timeout=10)
        await wait_until(lambda: _is_delivered(pool, event_id), timeout=10)
    finally:
        await deliverer.stop()
    assert [r.answer for r in receiver.received] == ["500", "503", "2.0", "200"]
    assert {r.headers["webhook-id"] for r in receiver.received} == {event_id}
    for request in receiver.received:
        Webhook(secret).verify(request.body, request.headers)
    [delivery] = await WebhookRepository(pool, QUERIES).list_deliveries(
        endpoint_id=endpoint_id, org_id="org-a", status=None, before=None, limit=10
    )
    assert delivery.status == "delivered" and delivery.attempts == 4
    assert [a.status_code for a in delivery.attempt_list] == [500, 503, None, 200]
    assert "timed out" in delivery.attempt_list[2].error


def test_back_off_doubles_with_jitter_up_to_its_cap() -> None:
    assert backoff_seconds(1, base=5, cap=3600, rng=lambda: 1.0) == 5
    assert backoff_seconds(4, base=5, cap=3600, rng=lambda: 1.0) == 40
    assert backoff_seconds(4, base=5, cap=3600, rng=lambda: 0.0) == 20
    assert backoff_seconds(50, base=5, cap=3600, rng=lambda: 1.0) == 3600


async def test_a_deliverer_that_fails_before_recording_keeps_working_and_delivers(
    pool: asyncpg.Pool, receiver: WebhookReceiver
) -> None:
    await add_endpoint(pool, receiver.url)
    event_id = await enqueue(pool, "run.failed", "thread:t", 1)

    class LosesItsConnection(WebhookDeliverer):
        """The first two tries fail as a lost Postgres connection does, before anything is recorded."""

        failures_left = 2

        async def deliver_one(self) -> bool:
            if self.failures_left:
                self.failures_left -= 1
                raise asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation")
            return await super().deliver_one()

    deliverer = LosesItsConnection(pool, QUERIES, FAST.__class__(**{**FAST.__dict__, "workers": 1}))
    await deliverer.start()
    try:
        await wait_until(lambda: _is_delivered(pool, event_id), timeout=15)
    finally:
        await deliverer.stop()
    assert deliverer.failures_left == 0
    assert {r.headers["webhook-id"] for r in receiver.received} == {event_id}


async def test_a_threads_events_arrive_in_order_while_other_threads_go_on(
    pool: asyncpg.Pool, receiver: WebhookReceiver
) -> None:
    await add_endpoint(pool, receiver.url)
    receiver.script = [500, 500]  # the first two attempts fail, whichever they are
    ids_a = [await enqueue(pool, "run.completed", "thread:a", n) for n in range(5)]
    ids_b = [await enqueue(pool, "run.completed", "thread:b", n) for n in range(5)]
    deliverers = [WebhookDeliverer(pool, QUERIES, FAST) for _ in range(2)]  # two replicas
    for d in deliverers:
        await d.start()
    try:
        await wait_until(lambda: len(receiver.answered_ok()) == 10, timeout=15)
    finally:
        for d in deliverers:
            await d.stop()
    delivered = [r.headers["webhook-id"] for r in receiver.answered_ok()]
    assert [i for i in delivered if i in ids_a] == ids_a
    assert [i for i in delivered if i in ids_b] == ids_b
    assert len(delivered) == len(set(delivered)), "each event went out once"


async def test_failures_past_the_retry_window_are_dead_lettered_and_redelivered_on_demand(
    pool: asyncpg.Pool, receiver: WebhookReceiver
) -> None:
    endpoint_id, _ = await add_endpoint(pool, receiver.url)
    receiver.script = [500] * 1000
    event_id = await enqueue(pool, "session.cancelled", "session:s", 1)
    deliverer = WebhookDeliverer(pool, QUERIES, FAST.__class__(**{**FAST.__dict__, "retry_for_seconds": 0.4}))
    await deliverer.start()
    try:
        await wait_until(lambda: status_is(pool, event_id, "dead"), timeout=10)
        failed = len(receiver.received)
        assert failed >= 2
        await asyncio.sleep(0.3)
        assert len(receiver.received) == failed, "a dead letter is not retried"
        receiver.script = []
        repository = WebhookRepository(pool, QUERIES)
        assert await repository.redeliver(endpoint_id=endpoint_id, org_id="org-a", event_id=None) == 1
        await wait_until(lambda: status_is(pool, event_id, "delivered"), timeout=10)
        # Redelivering a delivered event on demand sends it once more.
        assert await repository.redeliver(endpoint_id=endpoint_id, org_id="org-a", event_id=event_id) == 1
        await wait_until(lambda: len(receiver.answered_ok()) == 2, timeout=10)
        with pytest.raises(Exception, match="never queued"):
            await repository.redeliver(endpoint_id=endpoint_id, org_id="org-a", event_id="msg_nope")
        with pytest.raises(Exception, match="not found"):
            await repository.redeliver(endpoint_id=endpoint_id, org_id="org-b", event_id=event_id)
    finally:
        await deliverer.stop()
    assert {r.headers["webhook-id"] for r in receiver.received} == {event_id}


async def status_is(pool: asyncpg.Pool, event_id: str, expected: str) -> bool:
    return await delivery_status(pool, event_id) == expected


# -- crashes, slow endpoints, private targets --------------------------------------

DELIVERER_PROCESS = """
import asyncio, sys
from services.session_api.repository import QUERIES_DIR
from services.session_api.webhooks import WebhookConfig, WebhookDeliverer
from switchboard.sql import Queries, create_pool

async def main():
    pool = await create_pool(sys.argv[1])
    config = WebhookConfig(allow_private=True, timeout_seconds=60, workers=1, poll_seconds=0.05)
    await WebhookDeliverer(pool, Queries.load(QUERIES_DIR), config).start()
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_no_event_is_lost_when_the_delivering_process_is_killed_mid_delivery(
    db_url: str, pool: asyncpg.Pool, receiver: WebhookReceiver
) -> None:
    await add_endpoint(pool, receiver.url)
    receiver.script = [30.0]  # the first attempt hangs: the process dies while it waits
    event_id = await enqueue(pool, "escalation.opened", "thread:t", 1)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", DELIVERER_PROCESS, db_url, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    try:
        await wait_until(receiver.arrived.is_set, timeout=30)
        process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(process.wait(), 10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert await delivery_status(pool, event_id) == "pending"
    deliverer = WebhookDeliverer(pool, QUERIES, FAST)  # another replica
    await deliverer.start()
    try:
        await wait_until(lambda: status_is(pool, event_id, "delivered"), timeout=10)
    finally:
        await deliverer.stop()
    assert [r.headers["webhook-id"] for r in receiver.received] == [event_id, event_id]


async def test_private_targets_are_refused_unless_the_deployment_allows_them(
    pool: asyncpg.Pool, receiver: WebhookReceiver
) -> None:
    for url in (
        "http://127.0.0.1/x",
        "http://10.1.2.3/x",
        "http://169.254.169.254/",
        "http://[::1]/",
        "http://localhost/",
    ):
        with pytest.raises(InvalidArgument, match="SWITCHBOARD_WEBHOOK_ALLOW_PRIVATE"):
            check_target_url(url, allow_private=False)
        assert check_target_url(url, allow_private=True) == url
    for bad in ("ftp://example.com/", "example.com", "http://user:pw@example.com/", ""):
        with pytest.raises(InvalidArgument):
            check_target_url(bad, allow_private=True)
    assert check_target_url("https://hooks.example.com/in", allow_private=False)
    # At delivery the resolved address is checked again: nothing is sent, the attempt says why.
    endpoint_id, _ = await add_endpoint(pool, receiver.url)
    event_id = await enqueue(pool, "session.created", "session:s", 1)
    deliverer = WebhookDeliverer(pool, QUERIES, WebhookConfig(allow_private=False, workers=0))
    assert await deliverer.deliver_one()
    await deliverer.stop()
    assert receiver.received == []
    [delivery] = await WebhookRepository(pool, QUERIES).list_deliveries(
        endpoint_id=endpoint_id, org_id="org-a", status="pending", before=None, limit=10
    )
    assert delivery.event_id == event_id and "SWITCHBOARD_WEBHOOK_ALLOW_PRIVATE" in delivery.last_error


def test_secrets_are_whsec_base64_keys() -> None:
    assert check_secret(generate_secret())
    for bad in ("secret", "whsec_!!!", "whsec_" + "QUJD"):
        with pytest.raises(InvalidArgument):
            check_secret(bad)


async def test_the_deployment_endpoint_gets_api_events_and_a_dead_endpoint_never_slows_a_request(
    db_url: str, redis_url: str, identity_provider: IdentityProvider, receiver: WebhookReceiver
) -> None:
    secret = generate_secret()
    config = SessionApiConfig(
        database_url=db_url,
        redis_url=redis_url,
        auth=auth_config(identity_provider.jwks.url),
        migrate=False,
        webhooks=WebhookConfig(**{**FAST.__dict__, "url": receiver.url, "secret": secret, "timeout_seconds": 5.0}),
    )
    server, _ = await build_session_api(config)
    port = await server.start("127.0.0.1", 0)
    client = SessionApiClient(f"127.0.0.1:{port}")
    user = Principal(user_id=f"u-{uuid.uuid4().hex[:6]}", org_id="org-x")
    try:
        receiver.script = [4.0, 4.0]  # both workers stuck on a slow endpoint
        first = await client.create_session(user)
        await wait_until(lambda: len(receiver.received) >= 1, timeout=10)
        started = time.monotonic()
        for _ in range(5):
            await client.create_session(user)
        assert time.monotonic() - started < 2.0, "requests waited for the endpoint"
        await wait_until(lambda: len({r.headers["webhook-id"] for r in receiver.received}) >= 6, timeout=30)
    finally:
        await client.close()
        await server.stop(grace=0)
    payloads = [Webhook(secret).verify(r.body, r.headers) for r in receiver.received]
    assert {p["type"] for p in payloads} == {"session.created"}
    assert first.session.id in {p["data"]["session_id"] for p in payloads}


def test_the_deployment_endpoint_settings_are_checked_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_WEBHOOK_URL", "https://hooks.example.com/in")
    monkeypatch.delenv("SWITCHBOARD_WEBHOOK_SECRET", raising=False)
    with pytest.raises(InvalidArgument, match="SWITCHBOARD_WEBHOOK_SECRET"):
        WebhookConfig.from_env()
    monkeypatch.setenv("SWITCHBOARD_WEBHOOK_SECRET", "not-a-secret")
    with pytest.raises(InvalidArgument, match="whsec_"):
        WebhookConfig.from_env()
    secret = generate_secret()
    monkeypatch.setenv("SWITCHBOARD_WEBHOOK_SECRET", secret)
    monkeypatch.setenv("SWITCHBOARD_WEBHOOK_URL", "http://10.0.0.5/in")
    with pytest.raises(InvalidArgument, match="SWITCHBOARD_WEBHOOK_ALLOW_PRIVATE"):
        WebhookConfig.from_env()
    monkeypatch.setenv("SWITCHBOARD_WEBHOOK_ALLOW_PRIVATE", "true")
    config = WebhookConfig.from_env()
    assert (config.url, config.secret, config.allow_private) == ("http://10.0.0.5/in", secret, True)
