"""`switchboard console` finds an operator token: flag, environment, or the dev secret of `switchboard up`."""

from __future__ import annotations

import argparse
from pathlib import Path

import jwt
import pytest

from switchboard.errors import InvalidArgument
from tui.commands import register, resolve_token


def test_the_flag_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SWITCHBOARD_OPERATOR_TOKEN", "from-env")
    assert resolve_token("from-flag", data_dir=tmp_path) == "from-flag"
    assert resolve_token(None, data_dir=tmp_path) == "from-env"


def test_a_dev_operator_token_is_minted_from_the_secret_switchboard_up_keeps(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SWITCHBOARD_OPERATOR_TOKEN", raising=False)
    monkeypatch.setenv("SWITCHBOARD_JWT_AUDIENCE", "console-aud")
    (tmp_path / "dev-jwt-secret").write_text("a-development-secret-that-is-long-enough\n")

    token = resolve_token(None, data_dir=tmp_path)

    claims = jwt.decode(token, "a-development-secret-that-is-long-enough", algorithms=["HS256"], audience="console-aud")
    assert (claims["sub"], claims["org_id"], claims["roles"]) == ("dev-operator", "dev", ["operator"])


def test_without_any_token_the_message_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SWITCHBOARD_OPERATOR_TOKEN", raising=False)
    with pytest.raises(InvalidArgument, match=r"--token.*SWITCHBOARD_OPERATOR_TOKEN.*switchboard up"):
        resolve_token(None, data_dir=tmp_path)


def test_the_console_subcommand_reads_its_targets_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_SESSION_API", "sessions.internal:7000")
    monkeypatch.delenv("SWITCHBOARD_THREAD_STORE", raising=False)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["console", "--token", "t"])
    assert (args.token, args.session_api, args.thread_store) == ("t", "sessions.internal:7000", "127.0.0.1:50051")


def test_the_agent_runner_is_found_by_flag_environment_or_the_port_switchboard_up_gives_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def parsed(*argv: str) -> str:
        parser = argparse.ArgumentParser()
        register(parser.add_subparsers())
        target: str = parser.parse_args(["console", "--token", "t", *argv]).agent_runner
        return target

    monkeypatch.delenv("SWITCHBOARD_AGENT_RUNNER", raising=False)
    monkeypatch.delenv("SWITCHBOARD_AGENT_RUNNER_PORT", raising=False)
    assert parsed() == "127.0.0.1:50052"
    monkeypatch.setenv("SWITCHBOARD_AGENT_RUNNER_PORT", "6052")
    assert parsed() == "127.0.0.1:6052"
    monkeypatch.setenv("SWITCHBOARD_AGENT_RUNNER", "runner.internal:7002")
    assert parsed() == "runner.internal:7002"
    assert parsed("--agent-runner", "10.0.0.5:50052") == "10.0.0.5:50052"
