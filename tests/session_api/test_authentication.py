"""Bearer tokens through Authenticate: forged and bad ones refused, good ones of every algorithm accepted."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from prometheus_client import REGISTRY

from services.session_api.auth import REJECTED, SESSION_KEY_ID, JwksKeySet, VerificationCache
from services.session_api.client import SessionApiClient
from services.session_api.domain import VerifiedToken
from switchboard.errors import Unauthenticated
from switchboard.principal import Principal
from tests.session_api.conftest import HS_SECRET, IdentityProvider, RunningSessionApi, make_key

AUTH_LOGGER = "services.session_api.auth"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed(header: dict[str, object], claims: dict[str, object], key: bytes) -> str:
    """A JWT signed with HMAC-SHA256 by hand (PyJWT rightly refuses some of these keys)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def default_claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": "user-1",
        "aud": "switchboard-tests",
        "iss": "https://idp.test",
        "iat": now,
        "exp": now + 300,
    }
    claims.update(overrides)
    return claims


def alg_none(idp: IdentityProvider) -> str:
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(default_claims()).encode())}."


def hs_rs_confusion(idp: IdentityProvider) -> str:
    # The classic attack: HMAC-sign with the RSA *public* key, which verifiers that
    # let the token pick its algorithm would use as the HMAC secret.
    rsa = idp.keys["RS256"]
    pem = rsa.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hand_signed({"alg": "HS256", "typ": "JWT", "kid": rsa.kid}, default_claims(), pem)


def forged_with_known_kid(idp: IdentityProvider) -> str:
    impostor = make_key("RS256", kid=idp.keys["RS256"].kid)
    return idp.token("RS256", key=impostor)


def es256_signed_under_rsa_kid(idp: IdentityProvider) -> str:
    signer = make_key("ES256", kid=idp.keys["RS256"].kid)
    return idp.token("ES256", key=signer)


def long_token(idp: IdentityProvider) -> str:
    return idp.token(padding="x" * 5000)


BAD_TOKENS: list[tuple[str, Callable[[IdentityProvider], str], str]] = [
    ("alg none", alg_none, "algorithm 'none' is not accepted"),
    ("HS256 signed with the RSA public key", hs_rs_confusion, "InvalidSignatureError"),
    (
        "HS256 with the wrong secret",
        lambda idp: jwt.encode(default_claims(), "wrong-secret-" * 4, "HS256"),
        "InvalidSignatureError",
    ),
    ("RS256 forged with a known kid", forged_with_known_kid, "InvalidSignatureError"),
    ("ES256 under an RSA key's kid", es256_signed_under_rsa_kid, "does not match the key's pinned RS256"),
    ("HS512", lambda idp: jwt.encode(default_claims(), HS_SECRET * 2, "HS512"), "algorithm 'HS512' is not accepted"),
    ("missing exp", lambda idp: idp.token(drop=("exp",)), "MissingRequiredClaimError"),
    ("expired", lambda idp: idp.token(exp=int(time.time()) - 60), "ExpiredSignatureError"),
    ("nbf in the future", lambda idp: idp.token(nbf=int(time.time()) + 60), "ImmatureSignatureError"),
    ("wrong audience", lambda idp: idp.token(aud="someone-else"), "InvalidAudienceError"),
    ("missing audience", lambda idp: idp.token(drop=("aud",)), "MissingRequiredClaimError"),
    ("wrong issuer", lambda idp: idp.token(iss="https://evil.test"), "InvalidIssuerError"),
    ("missing sub", lambda idp: idp.token(drop=("sub",)), "MissingRequiredClaimError"),
    ("blank sub", lambda idp: idp.token(sub="  "), "sub is empty"),
    ("exp past any datetime", lambda idp: idp.token(exp=1e300), "exp is not a time"),
    ("absurdly long", long_token, "over the limit of 4096"),
    ("not a JWT", lambda idp: "not-a-jwt", "malformed"),
    ("unknown kid", lambda idp: idp.token("RS256", key=make_key("RS256")), "no JWKS key"),
    (
        "session use claimed by an IdP token",
        lambda idp: idp.token(token_use="session"),
        "must be signed by session_api",
    ),
    (
        "session kid signed with the IdP secret",
        lambda idp: jwt.encode(
            default_claims(sid="sess_x", token_use="session", iss="switchboard:session_api", aud="switchboard:session"),
            HS_SECRET,
            "HS256",
            headers={"kid": SESSION_KEY_ID},
        ),
        "InvalidSignatureError",
    ),
]


@pytest.mark.parametrize(("case", "make", "reason"), BAD_TOKENS, ids=[case for case, _, _ in BAD_TOKENS])
async def test_forged_and_bad_tokens_are_unauthenticated_with_the_reason_only_in_the_log(
    client: SessionApiClient,
    identity_provider: IdentityProvider,
    caplog: pytest.LogCaptureFixture,
    case: str,
    make: Callable[[IdentityProvider], str],
    reason: str,
) -> None:
    token = make(identity_provider)
    caplog.set_level(logging.INFO, logger=AUTH_LOGGER)
    with pytest.raises(Unauthenticated) as raised:
        await client.authenticate(token)
    assert raised.value.message == REJECTED
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == AUTH_LOGGER)
    assert reason in logged, f"{case}: expected {reason!r} in the log, got {logged!r}"
    assert token not in logged


async def test_an_empty_token_is_unauthenticated(client: SessionApiClient) -> None:
    with pytest.raises(Unauthenticated):
        await client.authenticate("")


@pytest.mark.parametrize("alg", ["HS256", "RS256", "ES256", "EdDSA"])
async def test_valid_tokens_of_each_algorithm_give_the_principal(
    client: SessionApiClient, identity_provider: IdentityProvider, alg: str
) -> None:
    token = identity_provider.token(alg, sub=f"alice-{alg}", org_id="acme", roles=["operator"])
    reply = await client.authenticate(token)
    assert reply.kind == "identity_provider"
    assert reply.principal.user_id == f"alice-{alg}"
    assert reply.principal.org_id == "acme"
    assert list(reply.principal.roles) == ["operator"]
    assert reply.principal.session_id is None
    assert abs(reply.expires_at.timestamp() - (time.time() + 300)) <= 5


async def test_supabase_style_org_and_roles_come_from_app_metadata(
    client: SessionApiClient, identity_provider: IdentityProvider
) -> None:
    token = identity_provider.token(
        sub="supa-1", role="authenticated", app_metadata={"org_id": "acme", "roles": ["operator", "billing"]}
    )
    principal = await client.authenticate_principal(token)
    assert principal == Principal(user_id="supa-1", org_id="acme", roles=("billing", "operator"))


async def test_a_bearer_prefix_is_accepted(client: SessionApiClient, identity_provider: IdentityProvider) -> None:
    reply = await client.authenticate("Bearer " + identity_provider.token(sub="prefixed"))
    assert reply.principal.user_id == "prefixed"


async def test_a_slightly_skewed_clock_is_tolerated(
    client: SessionApiClient, identity_provider: IdentityProvider
) -> None:
    token = identity_provider.token(sub="skewed", nbf=int(time.time()) + 3)
    assert (await client.authenticate(token)).principal.user_id == "skewed"


async def test_a_verified_token_is_answered_from_the_cache_the_second_time(
    session_api: RunningSessionApi, identity_provider: IdentityProvider
) -> None:
    labels = {"kind": "identity_provider", "outcome": "ok", "cached": "true"}
    before = REGISTRY.get_sample_value("switchboard_auth_verifications_total", labels) or 0.0
    token = identity_provider.token("EdDSA", sub="cached-user")
    first = await session_api.client.authenticate(token)
    second = await session_api.client.authenticate(token)
    assert first == second
    after = REGISTRY.get_sample_value("switchboard_auth_verifications_total", labels) or 0.0
    assert after - before == 1


async def test_key_rotation_accepts_the_new_key_and_drops_the_old(
    client: SessionApiClient, identity_provider: IdentityProvider
) -> None:
    old = identity_provider.keys["ES256"]
    new = make_key("ES256")
    published = list(identity_provider.jwks.keys)
    try:
        assert (await client.authenticate(identity_provider.token("ES256", key=old, sub="before"))).principal.user_id
        # The provider rotates: the new key is published and the old one retired.
        identity_provider.jwks.keys = [k for k in published if k["kid"] != old.kid] + [new.jwk]
        # The new kid is unknown to the server, so it refreshes the keys...
        accepted = await client.authenticate(identity_provider.token("ES256", key=new, sub="rotated"))
        assert accepted.principal.user_id == "rotated"
        # ...and a fresh token of the retired key no longer passes.
        with pytest.raises(Unauthenticated):
            await client.authenticate(identity_provider.token("ES256", key=old, sub="retired"))
    finally:
        identity_provider.jwks.keys = published


async def test_unknown_kids_refetch_the_jwks_at_most_once_per_interval(identity_provider: IdentityProvider) -> None:
    keys = JwksKeySet(identity_provider.jwks.url, cache_seconds=300, min_refresh_seconds=60)
    rsa = identity_provider.keys["RS256"]
    assert await keys.key_for(rsa.kid, "RS256") is not None
    for n in range(20):
        with pytest.raises(Exception, match="no JWKS key"):
            await keys.key_for(f"forged-{n}", "RS256")
    assert keys.fetches == 1


async def test_a_jwks_outage_keeps_the_cached_keys(identity_provider: IdentityProvider) -> None:
    keys = JwksKeySet(identity_provider.jwks.url, cache_seconds=0.01, min_refresh_seconds=0)
    rsa = identity_provider.keys["RS256"]
    await keys.key_for(rsa.kid, "RS256")
    keys.url = "http://127.0.0.1:9/unreachable"
    await asyncio.sleep(0.02)
    assert await keys.key_for(rsa.kid, "RS256") is not None
    assert keys.fetches == 2


def test_the_verification_cache_is_bounded_and_forgets_expired_tokens() -> None:
    cache = VerificationCache(max_entries=2)
    soon = datetime.now(UTC) + timedelta(seconds=60)
    for n in range(3):
        cache.put(bytes([n]), VerifiedToken(Principal(user_id=f"u{n}"), soon, "identity_provider"))
    assert len(cache) == 2
    assert cache.get(bytes([0]), time.time()) is None
    assert cache.get(bytes([2]), time.time()) is not None
    assert cache.get(bytes([2]), soon.timestamp() + 1) is None
