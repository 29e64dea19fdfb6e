"""Fixtures of the session_api tests: real gRPC servers on real Postgres and Redis,
identity-provider keys generated here and a JWKS served over local HTTP."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from services.session_api.auth import AuthConfig
from services.session_api.client import SessionApiClient
from services.session_api.server import SessionApiConfig, build_session_api
from services.session_api.service import SessionService
from switchboard.grpc_runtime import GrpcServer
from switchboard.principal import Principal

HS_SECRET = "test-hs256-secret-that-is-long-enough-for-sha256"
SESSION_SECRET = "test-session-secret-shared-by-replicas"
AUDIENCE = "switchboard-tests"
ISSUER = "https://idp.test"


@dataclass
class SigningKey:
    """A private key of the test identity provider and its public JWK."""

    kid: str
    alg: str
    private: Any
    jwk: dict[str, Any]


def make_key(alg: str, kid: str | None = None) -> SigningKey:
    """A fresh key pair for ``alg`` (RS256, ES256 or EdDSA)."""
    private: Any
    if alg == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        algorithm: Any = jwt.algorithms.RSAAlgorithm
    elif alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
        algorithm = jwt.algorithms.ECAlgorithm
    else:
        private = ed25519.Ed25519PrivateKey.generate()
        algorithm = jwt.algorithms.OKPAlgorithm
    kid = kid or f"{alg.lower()}-{uuid.uuid4().hex[:8]}"
    jwk = json.loads(algorithm.to_jwk(private.public_key()))
    jwk.update({"kid": kid, "use": "sig"})
    return SigningKey(kid=kid, alg=alg, private=private, jwk=jwk)


class JwksServer:
    """A JWKS endpoint on 127.0.0.1 whose keys a test may change (rotation)."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                body = json.dumps({"keys": outer.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/.well-known/jwks.json"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@dataclass
class IdentityProvider:
    """The test's identity provider: an HS256 secret and asymmetric keys in a JWKS."""

    jwks: JwksServer
    keys: dict[str, SigningKey] = field(default_factory=dict)

    def token(
        self,
        alg: str = "HS256",
        *,
        key: SigningKey | None = None,
        headers: dict[str, Any] | None = None,
        drop: tuple[str, ...] = (),
        **claims: Any,
    ) -> str:
        """A token as the provider signs it; ``claims`` override the defaults, ``drop`` removes some."""
        now = int(time.time())
        payload: dict[str, Any] = {"sub": "user-1", "aud": AUDIENCE, "iss": ISSUER, "iat": now, "exp": now + 300}
        payload.update(claims)
        for name in drop:
            payload.pop(name, None)
        if alg == "HS256":
            return jwt.encode(payload, HS_SECRET, algorithm="HS256", headers=headers)
        signing = key or self.keys[alg]
        return jwt.encode(payload, signing.private, algorithm=alg, headers={"kid": signing.kid, **(headers or {})})


@pytest.fixture(scope="session")
def identity_provider() -> Iterator[IdentityProvider]:
    """RS256, ES256 and EdDSA keys published in a local JWKS."""
    server = JwksServer()
    provider = IdentityProvider(jwks=server, keys={alg: make_key(alg) for alg in ("RS256", "ES256", "EdDSA")})
    server.keys = [k.jwk for k in provider.keys.values()]
    yield provider
    server.close()


def auth_config(jwks_url: str, **overrides: Any) -> AuthConfig:
    """The authentication settings of the test servers."""
    values: dict[str, Any] = {
        "jwt_secret": HS_SECRET,
        "jwks_url": jwks_url,
        "audiences": (AUDIENCE,),
        "issuer": ISSUER,
        "leeway_seconds": 5.0,
        "max_token_length": 4096,
        "jwks_min_refresh_seconds": 0.0,
        "session_secret": SESSION_SECRET,
        "session_token_ttl_seconds": 120,
    }
    values.update(overrides)
    return AuthConfig(**values)


@dataclass
class RunningSessionApi:
    """A started session_api and a client of it."""

    server: GrpcServer
    service: SessionService
    target: str
    client: SessionApiClient


async def start_session_api(database_url: str, redis_url: str | None, auth: AuthConfig) -> RunningSessionApi:
    """Start session_api on a free port."""
    server, service = await build_session_api(
        SessionApiConfig(database_url=database_url, redis_url=redis_url, auth=auth, migrate=False)
    )
    port = await server.start("127.0.0.1", 0)
    target = f"127.0.0.1:{port}"
    return RunningSessionApi(server=server, service=service, target=target, client=SessionApiClient(target))


@pytest.fixture(scope="session")
async def session_api(
    database_url: str, redis_url: str, identity_provider: IdentityProvider
) -> AsyncIterator[RunningSessionApi]:
    """One session_api for the whole test session."""
    running = await start_session_api(database_url, redis_url, auth_config(identity_provider.jwks.url))
    yield running
    await running.client.close()
    await running.server.stop(grace=0)


@pytest.fixture(scope="session")
async def replica(
    database_url: str, redis_url: str, identity_provider: IdentityProvider
) -> AsyncIterator[RunningSessionApi]:
    """A second session_api on the same Postgres and Redis (another replica)."""
    running = await start_session_api(database_url, redis_url, auth_config(identity_provider.jwks.url))
    yield running
    await running.client.close()
    await running.server.stop(grace=0)


@pytest.fixture
def client(session_api: RunningSessionApi) -> SessionApiClient:
    """A client of the shared session_api."""
    return session_api.client


@pytest.fixture
def user(user_id: str, unique_org: str) -> Principal:
    """A plain user of a fresh org."""
    return Principal(user_id=user_id, org_id=unique_org)


@pytest.fixture
def operator(unique_org: str) -> Principal:
    """An operator of the same org as ``user``."""
    return Principal(user_id=f"op-{uuid.uuid4().hex[:8]}", org_id=unique_org, roles=("operator",))
