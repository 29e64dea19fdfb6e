"""Hosted workflows in the agents file: validated, found per agent, and refused by agent_runner;
the user id OpenAI sees; a hosted session's expiry as the API shows it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.session_api.domain import HostedLink
from services.session_api.hosted import HostedWorkflows, hosted_user
from switchboard.agents_file import parse_agents
from switchboard.errors import InvalidArgument
from switchboard.principal import Principal


def _file(workflow: Any, **extra: Any) -> dict[str, Any]:
    return {
        "default_agent": "triage",
        "agents": {"triage": {"instructions": "front desk"}, "concierge": {"workflow": workflow, **extra}},
    }


def test_a_workflow_table_gives_openai_its_workflow_and_configuration() -> None:
    agents = parse_agents(
        _file({"id": "wf_1", "version": 3, "state_variables": {"plan": "pro"}, "history": False, "titling": False})
    )
    workflow = agents.agents["concierge"].workflow
    assert workflow is not None
    assert workflow.workflow_param() == {"id": "wf_1", "version": "3", "state_variables": {"plan": "pro"}}
    assert workflow.configuration_param() == {
        "file_upload": {"enabled": False},
        "history": {"enabled": False},
        "automatic_thread_titling": {"enabled": False},
    }
    assert (workflow.expires_seconds, workflow.max_requests_per_minute) == (900, 10)
    # A bare id is a workflow with the defaults.
    assert parse_agents(_file("wf_2")).agents["concierge"].workflow.id == "wf_2"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("workflow", "extra", "says"),
    [
        ({}, {}, "needs 'id'"),
        ({"id": "wf 1"}, {}, "needs 'id'"),
        ({"id": "wf_1", "colour": "red"}, {}, "unknown keys ['colour']"),
        ({"id": "wf_1", "state_variables": {"x": [1]}}, {}, "state_variables"),
        ({"id": "wf_1", "file_uploads": "yes"}, {}, "file_uploads must be true or false"),
        ({"id": "wf_1", "expires_seconds": 5}, {}, "expires_seconds must be a whole number from 60"),
        ({"id": "wf_1", "recent_threads": 0}, {}, "recent_threads"),
        ({"id": "wf_1"}, {"instructions": "also local"}, "cannot also have ['instructions']"),
    ],
)
def test_a_bad_workflow_is_refused_with_where_and_what(workflow: Any, extra: dict[str, Any], says: str) -> None:
    with pytest.raises(InvalidArgument, match="concierge") as refused:
        parse_agents(_file(workflow, **extra))
    assert says in refused.value.message


def test_no_agent_hands_off_to_a_hosted_one() -> None:
    data = _file("wf_1")
    data["agents"]["triage"]["handoffs"] = ["concierge"]
    with pytest.raises(InvalidArgument, match="which OpenAI hosts"):
        parse_agents(data)


def test_sessions_find_their_workflow_by_agent_and_the_deployments_for_no_agent() -> None:
    agents = parse_agents(_file("wf_1"))
    hosted = HostedWorkflows.from_agents(agents)
    assert hosted.for_agent("concierge").id == "wf_1"  # type: ignore[union-attr]
    assert hosted.for_agent("triage") is None and hosted.for_agent("") is None
    deployment = HostedWorkflows.from_agents(agents, parse_agents(_file("wf_d")).agents["concierge"].workflow)
    assert deployment.for_agent("").id == "wf_d"  # type: ignore[union-attr]
    assert deployment.for_agent("triage") is None  # an agent named explicitly follows the file


def test_the_deployment_workflow_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_CHATKIT_WORKFLOW_ID", "wf_env")
    monkeypatch.setenv("SWITCHBOARD_CHATKIT_WORKFLOW_VERSION", "7")
    workflow = HostedWorkflows.default_from_env()
    assert workflow is not None and workflow.workflow_param() == {"id": "wf_env", "version": "7"}
    monkeypatch.setenv("SWITCHBOARD_CHATKIT_WORKFLOW_ID", "not a workflow id")
    with pytest.raises(InvalidArgument, match="SWITCHBOARD_CHATKIT_WORKFLOW_ID"):
        HostedWorkflows.default_from_env()


def test_openai_knows_a_user_by_a_stable_opaque_id_distinct_per_org() -> None:
    alice = Principal(user_id="alice@example.com", org_id="acme")
    assert hosted_user(alice) == hosted_user(Principal(user_id="alice@example.com", org_id="acme"))
    assert hosted_user(alice) != hosted_user(Principal(user_id="alice@example.com", org_id="other"))
    assert "alice" not in hosted_user(alice) and hosted_user(alice).startswith("sb_")


def test_a_hosted_session_shows_expired_after_openais_expiry_and_cancelled_once_cancelled() -> None:
    now = datetime.now(UTC)
    link = HostedLink(workflow_id="wf_1", openai_user="sb_x", openai_session_id="cksess_1", expires_at=now)
    assert link.status(now - timedelta(seconds=1)) == "active"
    assert link.status(now) == "expired"
    cancelled = HostedLink(
        workflow_id="wf_1", openai_user="sb_x", openai_session_id="cksess_1", expires_at=now, cancelled=True
    )
    assert cancelled.status(now - timedelta(seconds=1)) == "cancelled"
    assert HostedLink.from_dict(link.to_dict()) == link
