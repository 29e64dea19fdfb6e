"""Hand-offs against a real session_api: the escalation lands in the operator's queue."""

from __future__ import annotations

from services.agent_runner.escalation import SessionApiEscalations
from services.session_api.auth import AuthConfig
from services.session_api.client import SessionApiClient
from switchboard.principal import Principal
from tests.session_api.conftest import start_session_api


async def test_the_session_api_sink_opens_an_escalation_an_operator_sees(
    database_url: str, redis_url: str, user_id: str, unique_org: str
) -> None:
    auth = AuthConfig(jwt_secret="agent-runner-escalation-test-secret-0123456789", session_secret="s" * 40)
    running = await start_session_api(database_url, redis_url, auth)
    client = SessionApiClient(running.target)
    sink = SessionApiEscalations(client)
    try:
        user = Principal.create(user_id=user_id, org_id=unique_org)
        created = await running.client.create_session(user, agent_id="triage")
        in_session = Principal.create(user_id=user_id, org_id=unique_org, session_id=created.session.id)
        opened = await sink.open(
            in_session, session_id=created.session.id, thread_id="thr_escalated", reason="wants a person"
        )
        operator = Principal.create(user_id="op-1", org_id=unique_org, roles=("operator",))
        queue = await running.client.list_escalations(operator, status="open")
        assert [(e.id, e.thread_id, e.reason, e.session_id) for e in queue.items] == [
            (opened.id, "thr_escalated", "wants a person", created.session.id)
        ]
    finally:
        await client.close()
        await running.client.close()
        await running.server.stop(grace=0)
