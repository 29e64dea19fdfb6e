"""The ``switchboard token`` development command."""

from __future__ import annotations

import jwt
import pytest

from switchboard.cli import main


def test_the_token_command_mints_a_verifiable_token_and_warns_it_is_for_development(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SWITCHBOARD_JWT_SECRET", "dev-secret-long-enough-for-hs256-keys!")
    monkeypatch.setenv("SWITCHBOARD_JWT_AUDIENCE", "authenticated")
    monkeypatch.delenv("SWITCHBOARD_JWT_ISSUER", raising=False)
    assert main(["token", "--user", "alice", "--org", "acme", "--operator", "--ttl", "60"]) == 0
    out, err = capsys.readouterr()
    assert "DEVELOPMENT TOKEN" in err
    claims = jwt.decode(
        out.strip(), "dev-secret-long-enough-for-hs256-keys!", algorithms=["HS256"], audience="authenticated"
    )
    assert (claims["sub"], claims["org_id"], claims["roles"]) == ("alice", "acme", ["operator"])
    assert claims["exp"] - claims["iat"] == 60


def test_the_token_command_explains_a_missing_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SWITCHBOARD_JWT_SECRET", raising=False)
    assert main(["token", "--user", "alice"]) == 2
    assert "SWITCHBOARD_JWT_SECRET" in capsys.readouterr().err


def test_the_session_api_command_defaults_to_port_50053() -> None:
    from switchboard.cli import build_parser

    args = build_parser().parse_args(["session-api"])
    assert (args.host, args.port) == ("127.0.0.1", 50053)
