"""Per-org webhook endpoints through session_api's gRPC API and ``switchboard webhooks``."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from standardwebhooks.webhooks import Webhook

from services.session_api.client import SessionApiClient
from services.session_api.server import SessionApiConfig, build_session_api
from services.session_api.webhooks import WebhookConfig
from switchboard.errors import InvalidArgument, NotFound, PermissionDenied
from switchboard.grpc_runtime import GrpcServer
from switchboard.principal import Principal
from switchboard.service_auth import BearerCredentials, mint_service_token
from tests.conftest import INTERNAL_SECRET, copied_database, migrated_database
from tests.session_api.conftest import IdentityProvider, auth_config
from tests.session_api.webhook_receiver import WebhookReceiver

FAST = WebhookConfig(allow_private=True, timeout_seconds=2, backoff_base_seconds=0.05, poll_seconds=0.05)


@dataclass
class Deployment:
    """A session_api on a database of its own."""

    server: GrpcServer
    target: str
    client: SessionApiClient


@pytest.fixture(scope="module")
def api_template(server_database_url: str) -> Iterator[str]:
    """A migrated database the tests copy."""
    with migrated_database(server_database_url, "sbwha") as url:
        yield url


@pytest.fixture
async def deployment(
    server_database_url: str, api_template: str, redis_url: str, identity_provider: IdentityProvider
) -> AsyncIterator[Deployment]:
    """session_api with fast webhook delivery, private targets allowed (the receiver is on 127.0.0.1)."""
    with copied_database(server_database_url, api_template) as url:
        config = SessionApiConfig(
            database_url=url,
            redis_url=redis_url,
            auth=auth_config(identity_provider.jwks.url),
            migrate=False,
            webhooks=FAST,
        )
        server, _ = await build_session_api(config)
        port = await server.start("127.0.0.1", 0)
        client = SessionApiClient(f"127.0.0.1:{port}")
        yield Deployment(server, f"127.0.0.1:{port}", client)
        await client.close()
        await server.stop(grace=0)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A webhook receiver on 127.0.0.1."""
    r = WebhookReceiver()
    yield r
    r.close()


def operator_of(org: str) -> Principal:
    return Principal(user_id=f"op-{uuid.uuid4().hex[:6]}", org_id=org, roles=("operator",))


async def wait_for(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


async def test_an_operator_manages_their_orgs_endpoints_and_sees_each_attempt(
    deployment: Deployment, receiver: WebhookReceiver
) -> None:
    client = deployment.client
    operator = operator_of("org-hooks")
    added = await client.add_webhook_endpoint(
        operator, url=receiver.url, event_types=["escalation.opened", "webhook.test"], description="crm"
    )
    assert added.secret.startswith("whsec_") and added.org_id == "org-hooks"
    listed = await client.list_webhook_endpoints(operator)
    assert [(e.id, e.secret) for e in listed] == [(added.id, "")], "the secret is shown only once"

    receiver.script = [500]
    event_id = await client.test_webhook_endpoint(operator, added.id)
    await wait_for(lambda: len(receiver.answered_ok()) == 1)
    [ok] = receiver.answered_ok()
    assert ok.headers["webhook-id"] == event_id
    assert Webhook(added.secret).verify(ok.body, ok.headers)["type"] == "webhook.test"

    # An escalation of the org reaches it; a session.created does not (not among its event types).
    user = Principal(user_id=f"u-{uuid.uuid4().hex[:6]}", org_id="org-hooks")
    session = (await client.create_session(user)).session
    await client.open_escalation(user, session.id, thread_id="thr_1", reason="a person please")
    await wait_for(lambda: len(receiver.answered_ok()) == 2)
    payload = Webhook(added.secret).verify(receiver.answered_ok()[1].body, receiver.answered_ok()[1].headers)
    assert payload["type"] == "escalation.opened" and payload["data"]["thread_id"] == "thr_1"

    deliveries, next_before = await client.list_webhook_deliveries(operator, added.id, limit=1)
    assert deliveries[0].type == "escalation.opened" and next_before > 0
    [test_delivery], _ = await client.list_webhook_deliveries(operator, added.id, before=next_before)
    assert test_delivery.event_id == event_id and test_delivery.status == "delivered"
    assert [a.status_code for a in test_delivery.attempt_list] == [500, 200]

    assert await client.redeliver_webhooks(operator, added.id, event_id=event_id) == 1
    await wait_for(lambda: len(receiver.answered_ok()) == 3)

    await client.remove_webhook_endpoint(operator, added.id)
    assert await client.list_webhook_endpoints(operator) == []
    with pytest.raises(NotFound):
        await client.test_webhook_endpoint(operator, added.id)


async def test_only_operators_of_the_org_or_a_webhooks_admin_service_token_manage_endpoints(
    deployment: Deployment, receiver: WebhookReceiver
) -> None:
    client = deployment.client
    added = await client.add_webhook_endpoint(operator_of("org-a"), url=receiver.url)
    with pytest.raises(PermissionDenied, match="operator"):
        await client.list_webhook_endpoints(Principal(user_id="plain", org_id="org-a"))
    with pytest.raises(PermissionDenied, match="own org"):
        await client.list_webhook_endpoints(operator_of("org-b"), org_id="org-a")
    # Another org's endpoint id is "not found", never "forbidden".
    with pytest.raises(NotFound):
        await client.remove_webhook_endpoint(operator_of("org-b"), added.id)

    def service_client(*scopes: str, org: str | None = None) -> SessionApiClient:
        token, _ = mint_service_token(
            INTERNAL_SECRET.encode(), audience="session_api", service="crm-sync", scopes=scopes, org_id=org
        )
        return SessionApiClient(deployment.target, credentials=BearerCredentials(token))

    admin = service_client("webhooks:admin")
    reader = service_client("sessions:read")
    bound = service_client("webhooks:admin", org="org-b")
    someone = Principal(user_id="crm-sync", org_id="org-a")
    try:
        assert [e.id for e in await admin.list_webhook_endpoints(someone, org_id="org-a")] == [added.id]
        with pytest.raises(PermissionDenied, match="webhooks:admin"):
            await reader.list_webhook_endpoints(someone, org_id="org-a")
        with pytest.raises(PermissionDenied, match="another org"):
            await bound.list_webhook_endpoints(Principal(user_id="crm-sync", org_id="org-b"), org_id="org-a")
    finally:
        for c in (admin, reader, bound):
            await c.close()


async def test_bad_endpoint_input_is_invalid_argument_with_what_to_fix(deployment: Deployment) -> None:
    client = deployment.client
    operator = operator_of("org-bad")
    for kwargs, message in [
        ({"url": "ftp://example.com/"}, "http"),
        ({"url": "https://example.com/", "event_types": ["nope"]}, "unknown event types"),
        ({"url": "https://example.com/", "secret": "plain"}, "whsec_"),
        ({"url": "https://example.com/", "description": "x" * 501}, "description"),
    ]:
        with pytest.raises(InvalidArgument, match=message):
            await client.add_webhook_endpoint(operator, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="limit"):
        await client.list_webhook_deliveries(operator, "ep_x", limit=1000)
    with pytest.raises(InvalidArgument, match="status"):
        await client.list_webhook_deliveries(operator, "ep_x", status="lost")


async def test_the_webhooks_command_adds_lists_tests_and_removes(
    deployment: Deployment, receiver: WebhookReceiver
) -> None:
    async def cli(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sys; from switchboard.cli import main; sys.exit(main(sys.argv[1:]))",
            "webhooks",
            *args,
            "--session-api",
            deployment.target,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "SWITCHBOARD_INTERNAL_SECRET": INTERNAL_SECRET},
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        return process.returncode or 0, out.decode(), err.decode()

    code, out, err = await cli("add", "--org", "org-cli", "--url", receiver.url, "--event", "webhook.test")
    assert code == 0, err
    endpoint_id = out.split()[1]
    secret = out.strip().splitlines()[-1]
    code, out, _ = await cli("list", "--org", "org-cli")
    assert code == 0 and endpoint_id in out and receiver.url in out
    code, out, _ = await cli("test", "--org", "org-cli", "--endpoint", endpoint_id)
    assert code == 0 and "queued webhook.test" in out
    await wait_for(lambda: len(receiver.answered_ok()) == 1)
    Webhook(secret).verify(receiver.answered_ok()[0].body, receiver.answered_ok()[0].headers)
    code, out, _ = await cli("deliveries", "--org", "org-cli", "--endpoint", endpoint_id)
    assert code == 0 and "delivered" in out
    code, _, err = await cli("remove", "--org", "org-other", "--endpoint", endpoint_id)
    assert code == 2 and "not found" in err
    code, out, _ = await cli("remove", "--org", "org-cli", "--endpoint", endpoint_id)
    assert code == 0 and "removed" in out
    code, _, err = await cli("add", "--org", "org-cli")
    assert code == 2 and "--url" in err
