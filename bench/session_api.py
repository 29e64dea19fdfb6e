"""Token verification: cached and uncached verifications per second, and the Authenticate round trip.

Every figure is measured in each of ``ROUNDS`` interleaved rounds and the
median is printed, so a noisy neighbour skews all of them alike. Uncached
verifications use a verifier whose cache is off; each algorithm's keys are
generated here and served as a JWKS from a local HTTP server, like an identity
provider's.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from bench.common import bench_storage, median, pct, print_table
from services.session_api.auth import AuthConfig, TokenVerifier
from services.session_api.client import SessionApiClient
from services.session_api.server import SessionApiConfig, build_session_api
from switchboard.principal import Principal

ROUNDS = 5
VERIFY_SECONDS = 0.4
ROUND_TRIPS = 400
SECRET = "bench-secret-bench-secret-bench-secret"
AUDIENCE = "bench"


def _keys() -> dict[str, tuple[Any, dict[str, Any]]]:
    keys: dict[str, tuple[Any, dict[str, Any]]] = {}
    pairs: list[tuple[str, Any, Any]] = [
        ("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048), jwt.algorithms.RSAAlgorithm),
        ("ES256", ec.generate_private_key(ec.SECP256R1()), jwt.algorithms.ECAlgorithm),
        ("EdDSA", ed25519.Ed25519PrivateKey.generate(), jwt.algorithms.OKPAlgorithm),
    ]
    for alg, private, algorithm in pairs:
        jwk = json.loads(algorithm.to_jwk(private.public_key()))
        jwk.update({"kid": alg.lower(), "use": "sig"})
        keys[alg] = (private, jwk)
    return keys


def _serve_jwks(document: bytes) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/jwks.json"


def _token(alg: str, keys: dict[str, tuple[Any, dict[str, Any]]], n: int) -> str:
    claims = {"sub": f"bench-{n}", "aud": AUDIENCE, "exp": int(time.time()) + 3600, "n": n}
    if alg == "HS256":
        return jwt.encode(claims, SECRET, algorithm="HS256")
    return jwt.encode(claims, keys[alg][0], algorithm=alg, headers={"kid": alg.lower()})


async def _per_second(verify: Callable[[str], Awaitable[Any]], tokens: list[str]) -> float:
    done = 0
    started = time.perf_counter()
    deadline = started + VERIFY_SECONDS
    while time.perf_counter() < deadline:
        await verify(tokens[done % len(tokens)])
        done += 1
    return done / (time.perf_counter() - started)


async def _round_trips(client: SessionApiClient, token: str) -> list[float]:
    samples = []
    for _ in range(ROUND_TRIPS):
        started = time.perf_counter()
        await client.authenticate(token)
        samples.append(time.perf_counter() - started)
    return samples


async def main() -> None:
    """Print verifications per second (cached, uncached per algorithm) and Authenticate p50/p99."""
    keys = _keys()
    httpd, jwks_url = _serve_jwks(json.dumps({"keys": [jwk for _, jwk in keys.values()]}).encode())
    auth = AuthConfig(jwt_secret=SECRET, jwks_url=jwks_url, audiences=(AUDIENCE,), session_secret=SECRET + "-s")

    async def never_active(_session_id: str) -> bool:
        return False

    uncached = TokenVerifier(AuthConfig(**{**auth.__dict__, "cache_size": 0}), never_active)
    cached = TokenVerifier(auth, never_active)
    algorithms = ["HS256", "RS256", "ES256", "EdDSA"]
    # Distinct tokens, so nothing but the verifier's own cache could help.
    tokens = {alg: [_token(alg, keys, n) for n in range(2000)] for alg in algorithms}
    for alg in algorithms:
        await uncached.verify(tokens[alg][0])  # fetch the JWKS once, outside the measurement
    cached_token = [tokens["RS256"][0]]
    await cached.verify(cached_token[0])

    figures: dict[str, list[float]] = {}
    with bench_storage() as (database_url, redis_url):
        server, _service = await build_session_api(
            SessionApiConfig(database_url=database_url, redis_url=redis_url, auth=auth, migrate=False)
        )
        port = await server.start("127.0.0.1", 0)
        client = SessionApiClient(f"127.0.0.1:{port}")
        try:
            created = await client.create_session(Principal(user_id="bench-user", org_id="bench-org"))
            session_token = created.client_secret.token
            idp_token = tokens["EdDSA"][1]
            await client.authenticate(idp_token)
            await client.authenticate(session_token)
            for _ in range(ROUNDS):
                figures.setdefault("cached verifications/s", []).append(await _per_second(cached.verify, cached_token))
                for alg in algorithms:
                    rate = await _per_second(uncached.verify, tokens[alg])
                    figures.setdefault(f"uncached {alg} verifications/s", []).append(rate)
                for label, token in (("IdP token", idp_token), ("session token", session_token)):
                    samples = await _round_trips(client, token)
                    figures.setdefault(f"Authenticate over gRPC, {label}, p50 ms", []).append(pct(samples, 0.5) * 1000)
                    figures.setdefault(f"Authenticate over gRPC, {label}, p99 ms", []).append(pct(samples, 0.99) * 1000)
            await client.end_session(Principal(user_id="bench-user", org_id="bench-org"), created.session.id)
        finally:
            await client.close()
            await server.stop(grace=0)
            httpd.shutdown()
            httpd.server_close()

    rows = []
    for name, values in figures.items():
        value = median(values)
        rows.append((name, f"{value:,.0f}" if name.endswith("/s") else f"{value:.3f}"))
    print_table(f"token verification (median of {ROUNDS} interleaved rounds)", rows, ("figure", "value"))
