"""The agent runner reads its run policies from the environment, and refuses bad values clearly."""

from __future__ import annotations

import pytest

from services.agent_runner.server import AgentRunnerConfig
from switchboard.errors import InvalidArgument


def test_run_policies_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_DOUBLE_TEXT", "interrupt")
    monkeypatch.setenv("SWITCHBOARD_RUN_LEASE_SECONDS", "6")
    monkeypatch.setenv("SWITCHBOARD_APPROVAL_TTL_SECONDS", "90")
    monkeypatch.setenv("SWITCHBOARD_OPERATOR_MAY_APPROVE", "true")
    limits = AgentRunnerConfig.from_env(database_url="postgresql://x/y", redis_url=None).limits
    assert (limits.double_text, limits.lease_seconds, limits.heartbeat_seconds) == ("interrupt", 6.0, 1.2)
    assert (limits.approval_ttl_seconds, limits.operator_may_approve) == (90.0, True)


def test_the_defaults_enqueue_lease_ten_seconds_and_keep_cards_a_day(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DOUBLE_TEXT", "RUN_LEASE_SECONDS", "APPROVAL_TTL_SECONDS", "OPERATOR_MAY_APPROVE"):
        monkeypatch.delenv(f"SWITCHBOARD_{name}", raising=False)
    limits = AgentRunnerConfig.from_env(database_url="postgresql://x/y", redis_url=None).limits
    assert (limits.double_text, limits.lease_seconds) == ("enqueue", 10.0)
    assert (limits.approval_ttl_seconds, limits.operator_may_approve) == (86400.0, False)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SWITCHBOARD_DOUBLE_TEXT", "shout"),
        ("SWITCHBOARD_RUN_LEASE_SECONDS", "60"),
        ("SWITCHBOARD_OPERATOR_MAY_APPROVE", "perhaps"),
    ],
)
def test_a_bad_setting_is_refused_with_its_name(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(InvalidArgument, match=name):
        AgentRunnerConfig.from_env(database_url="postgresql://x/y", redis_url=None)
