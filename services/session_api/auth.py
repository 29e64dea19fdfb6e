"""Bearer token verification: identity-provider JWTs and session_api's own session tokens.

Identity-provider tokens are verified with a shared secret (HS256) or with keys
from a JWKS URL (RS256, ES256, EdDSA). The algorithm is pinned per key type, so
a token cannot choose how it is checked: ``alg: none`` never verifies, and an
HS256 token is never checked against an RSA public key (key confusion).

Session tokens (the ``client_secret`` of a session) are HS256 JWTs signed with
session_api's own key and marked by their ``kid``; they are accepted like
identity-provider tokens, but only while their session is active.

Successful verifications are cached (bounded, until the token expires).
Failures raise ``Unauthenticated`` with a generic message; the reason goes to
the log with a fingerprint of the token, never the token itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
from prometheus_client import Counter

from services.session_api.domain import VerifiedToken
from switchboard.config import env_float, env_int, env_str
from switchboard.errors import InvalidArgument, Unauthenticated
from switchboard.expiring_cache import ExpiringCache
from switchboard.principal import Principal

log = logging.getLogger(__name__)


SESSION_KEY_ID = "switchboard-session-v1"
SESSION_ISSUER = "switchboard:session_api"
SESSION_AUDIENCE = "switchboard:session"
SESSION_TOKEN_USE = "session"
HMAC_ALGORITHM = "HS256"
MAX_JWKS_BYTES = 1024 * 1024
REJECTED = "the token is invalid or expired"

AUTH_VERIFICATIONS = Counter(
    "switchboard_auth_verifications_total",
    "Bearer token verifications, by token kind, outcome and whether the cache answered.",
    ["kind", "outcome", "cached"],
)


MAX_EXP = 253402300799  # 9999-12-31T23:59:59Z


class TokenRejected(Exception):
    """Why a token was refused (for the log only)."""


@dataclass(frozen=True)
class AuthConfig:
    """How tokens are verified and minted.

    Attributes:
        jwt_secret: The identity provider's shared HS256 secret.
        jwks_url: The identity provider's JWKS URL (RS256, ES256, EdDSA keys).
        audiences: Accepted ``aud`` values; empty: tokens must carry no ``aud``.
        issuer: The required ``iss``, if any.
        leeway_seconds: Clock skew tolerated on ``exp``, ``nbf`` and ``iat``.
        max_token_length: Longer tokens are refused before any parsing.
        org_claims: Claim paths (dotted) tried in order for the org id.
        roles_claims: Claim paths (dotted) whose roles are merged.
        jwks_cache_seconds: How long fetched keys are used before a refetch.
        jwks_min_refresh_seconds: At most one refetch per this interval on an unknown ``kid``.
        cache_size: Verified tokens remembered (least recently used go first).
        session_secret: The key of session tokens (shared by every replica).
        session_token_ttl_seconds: Lifetime of a session token.
    """

    jwt_secret: str | None = None
    jwks_url: str | None = None
    audiences: tuple[str, ...] = ()
    issuer: str | None = None
    leeway_seconds: float = 30.0
    max_token_length: int = 8192
    org_claims: tuple[str, ...] = ("org_id", "app_metadata.org_id")
    roles_claims: tuple[str, ...] = ("roles", "app_metadata.roles")
    jwks_cache_seconds: float = 300.0
    jwks_min_refresh_seconds: float = 30.0
    cache_size: int = 10_000
    session_secret: str | None = None
    session_token_ttl_seconds: int = 900

    @classmethod
    def from_env(cls) -> AuthConfig:
        """Read the ``SWITCHBOARD_JWT_*``, ``SWITCHBOARD_JWKS_*`` and ``SWITCHBOARD_SESSION_*`` variables."""
        return cls(
            jwt_secret=env_str("SWITCHBOARD_JWT_SECRET"),
            jwks_url=env_str("SWITCHBOARD_JWKS_URL"),
            audiences=_csv(env_str("SWITCHBOARD_JWT_AUDIENCE")),
            issuer=env_str("SWITCHBOARD_JWT_ISSUER"),
            leeway_seconds=env_float("SWITCHBOARD_JWT_LEEWAY_SECONDS", 30.0),
            max_token_length=env_int("SWITCHBOARD_JWT_MAX_LENGTH", 8192, minimum=256),
            org_claims=_csv(env_str("SWITCHBOARD_JWT_ORG_CLAIMS", "org_id,app_metadata.org_id")),
            roles_claims=_csv(env_str("SWITCHBOARD_JWT_ROLES_CLAIMS", "roles,app_metadata.roles")),
            jwks_cache_seconds=env_float("SWITCHBOARD_JWKS_CACHE_SECONDS", 300.0, minimum=1.0),
            jwks_min_refresh_seconds=env_float("SWITCHBOARD_JWKS_MIN_REFRESH_SECONDS", 30.0),
            cache_size=env_int("SWITCHBOARD_AUTH_CACHE_SIZE", 10_000, minimum=0),
            session_secret=env_str("SWITCHBOARD_SESSION_SECRET"),
            session_token_ttl_seconds=env_int("SWITCHBOARD_SESSION_TOKEN_TTL_SECONDS", 900, minimum=10),
        )

    def session_key(self) -> bytes:
        """The key of session tokens.

        ``SWITCHBOARD_SESSION_SECRET`` when set; otherwise derived from the
        identity provider's secret (a different key, so neither kind of token
        passes for the other); otherwise random, which only works with one replica.
        """
        if self.session_secret:
            return self.session_secret.encode()
        if self.jwt_secret:
            return hmac.new(self.jwt_secret.encode(), b"switchboard session token key v1", hashlib.sha256).digest()
        log.warning(
            "neither SWITCHBOARD_SESSION_SECRET nor SWITCHBOARD_JWT_SECRET is set: session tokens use a random key "
            "and only this process accepts them; set SWITCHBOARD_SESSION_SECRET when running replicas"
        )
        return secrets.token_bytes(32)


def _csv(raw: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (raw or "").split(",") if part.strip())


def fingerprint(token: str) -> str:
    """A short, non-reversible name of a token for logs."""
    return hashlib.sha256(token.encode(errors="replace")).hexdigest()[:12]


# -- JWKS ------------------------------------------------------------------------


def pinned_algorithm(jwk: dict[str, Any]) -> str | None:
    """The one algorithm a JWKS key may verify, from its key type (None: not accepted)."""
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if kty == "RSA":
        return "RS256"
    if kty == "EC" and crv == "P-256":
        return "ES256"
    if kty == "OKP" and crv == "Ed25519":
        return "EdDSA"
    return None


class JwksKeySet:
    """Signing keys from a JWKS URL, cached and refreshed with a rate limit.

    Keys are fetched on first use, refetched when older than ``cache_seconds``,
    and refetched early when a token names an unknown ``kid`` (key rotation),
    but never more often than once per ``min_refresh_seconds``, so forged kids
    cannot turn each request into a fetch. A failed fetch keeps the old keys.

    Args:
        url: The JWKS URL.
        cache_seconds: Lifetime of fetched keys.
        min_refresh_seconds: Minimum interval between fetches.
        timeout: Seconds for one fetch.
    """

    def __init__(self, url: str, *, cache_seconds: float, min_refresh_seconds: float, timeout: float = 5.0) -> None:
        self.url = url
        self._cache_seconds = cache_seconds
        self._min_refresh = min_refresh_seconds
        self._timeout = timeout
        self._keys: dict[str, tuple[str, Any]] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def key_for(self, kid: str | None, alg: str) -> Any:
        """The verification key of ``kid`` for ``alg``.

        Raises:
            TokenRejected: no such key, or the key does not verify ``alg``.
        """
        now = time.monotonic()
        if self._fetched_at is None or now - self._fetched_at > self._cache_seconds:
            await self._refresh(reason="stale" if self._fetched_at else "first use")
        found = self._lookup(kid, alg)
        if found is None and kid is not None and kid not in self._keys:
            await self._refresh(reason=f"unknown kid {kid[:64]!r}")
            found = self._lookup(kid, alg)
        if found is None:
            raise TokenRejected(f"no JWKS key for kid={(kid or '')[:64]!r}")
        key_alg, key = found
        if key_alg != alg:
            raise TokenRejected(f"token alg {alg} does not match the key's pinned {key_alg}")
        return key

    def _lookup(self, kid: str | None, alg: str) -> tuple[str, Any] | None:
        if kid is not None:
            return self._keys.get(kid)
        candidates = [entry for entry in self._keys.values() if entry[0] == alg]
        return candidates[0] if len(candidates) == 1 else None

    async def _refresh(self, *, reason: str) -> None:
        async with self._lock:
            now = time.monotonic()
            if self._attempted_at is not None and now - self._attempted_at < self._min_refresh:
                return
            self._attempted_at = now
            try:
                keys = await self._fetch()
            except Exception as error:
                log.warning("JWKS fetch from %s failed (%s): keeping %d cached keys", self.url, error, len(self._keys))
                return
            self._keys = keys
            self._fetched_at = now
            log.info("JWKS fetched from %s (%s): %d keys", self.url, reason, len(keys))

    async def _fetch(self) -> dict[str, tuple[str, Any]]:
        self.fetches += 1
        async with httpx.AsyncClient(timeout=self._timeout, follow_redirects=False) as client:
            response = await client.get(self.url, headers={"Accept": "application/json"})
            response.raise_for_status()
            if len(response.content) > MAX_JWKS_BYTES:
                raise ValueError(f"the JWKS is larger than {MAX_JWKS_BYTES} bytes")
            document = json.loads(response.content)
        keys: dict[str, tuple[str, Any]] = {}
        for index, jwk in enumerate(document.get("keys", []) if isinstance(document, dict) else []):
            if not isinstance(jwk, dict):
                continue
            alg = pinned_algorithm(jwk)
            kid = str(jwk.get("kid") or f"#{index}")
            if alg is None or jwk.get("use", "sig") != "sig" or jwk.get("alg", alg) != alg:
                log.warning("JWKS key %r skipped: only RSA/RS256, P-256/ES256 and Ed25519/EdDSA keys are used", kid)
                continue
            try:
                keys[kid] = (alg, jwt.PyJWK(jwk, algorithm=alg).key)
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as error:
                log.warning("JWKS key %r skipped: %s", kid, error)
        return keys


# -- the verification cache --------------------------------------------------------


class VerificationCache:
    """Verified tokens by digest until they expire; least recently used go first.

    Args:
        max_entries: The bound (0 disables caching).
    """

    def __init__(self, max_entries: int) -> None:
        self._entries: ExpiringCache[bytes, VerifiedToken] = ExpiringCache(max_entries)

    def get(self, digest: bytes, now: float) -> VerifiedToken | None:
        """The cached verification, unless expired."""
        return self._entries.get(digest, now)

    def put(self, digest: bytes, verified: VerifiedToken) -> None:
        """Remember a verification until its token expires."""
        self._entries.put(digest, verified, verified.expires_at.timestamp())

    def __len__(self) -> int:
        return len(self._entries)


# -- the verifier -------------------------------------------------------------------


def _claim(claims: dict[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _roles(value: Any) -> list[str]:
    if isinstance(value, str):
        return [r for r in value.replace(",", " ").split() if r]
    if isinstance(value, list):
        return [r for r in value if isinstance(r, str) and r]
    return []


class TokenVerifier:
    """Decides who the bearer of a token is.

    Args:
        config: Secrets, JWKS URL, expected claims, limits.
        session_is_active: Whether a session still accepts its client secret.
    """

    def __init__(self, config: AuthConfig, session_is_active: Callable[[str], Awaitable[bool]]) -> None:
        self.config = config
        self._session_is_active = session_is_active
        self._session_key = config.session_key()
        self._jwks = (
            JwksKeySet(
                config.jwks_url,
                cache_seconds=config.jwks_cache_seconds,
                min_refresh_seconds=config.jwks_min_refresh_seconds,
            )
            if config.jwks_url
            else None
        )
        self.cache = VerificationCache(config.cache_size)
        if not config.jwt_secret and not config.jwks_url:
            log.warning(
                "neither SWITCHBOARD_JWT_SECRET nor SWITCHBOARD_JWKS_URL is set: only session tokens are accepted"
            )

    @property
    def jwks(self) -> JwksKeySet | None:
        """The JWKS key set, when one is configured."""
        return self._jwks

    async def verify(self, token: str) -> VerifiedToken:
        """The principal of a bearer token.

        Raises:
            Unauthenticated: the token is not acceptable (the reason is logged).
        """
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        if not token:
            AUTH_VERIFICATIONS.labels("unknown", "rejected", "false").inc()
            log.info("token rejected: empty")
            raise Unauthenticated(REJECTED)
        if len(token) > self.config.max_token_length:
            AUTH_VERIFICATIONS.labels("unknown", "rejected", "false").inc()
            log.info("token rejected: %d characters, over the limit of %d", len(token), self.config.max_token_length)
            raise Unauthenticated(REJECTED)
        digest = hashlib.sha256(token.encode()).digest()
        cached = self.cache.get(digest, time.time())
        if cached is not None:
            if cached.kind == "session":
                await self._require_active_session(cached.principal, token)
            AUTH_VERIFICATIONS.labels(cached.kind, "ok", "true").inc()
            return cached
        try:
            verified = await self._verify_uncached(token)
        except TokenRejected as error:
            AUTH_VERIFICATIONS.labels("unknown", "rejected", "false").inc()
            log.info("token %s rejected: %s", fingerprint(token), error)
            raise Unauthenticated(REJECTED) from None
        if verified.kind == "session":
            await self._require_active_session(verified.principal, token)
        self.cache.put(digest, verified)
        AUTH_VERIFICATIONS.labels(verified.kind, "ok", "false").inc()
        return verified

    async def _require_active_session(self, principal: Principal, token: str) -> None:
        assert principal.session_id is not None
        if not await self._session_is_active(principal.session_id):
            AUTH_VERIFICATIONS.labels("session", "rejected", "false").inc()
            log.info("token %s rejected: session %s is not active", fingerprint(token), principal.session_id)
            raise Unauthenticated(REJECTED)

    async def _verify_uncached(self, token: str) -> VerifiedToken:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise TokenRejected(f"malformed: {error}") from None
        alg = header.get("alg")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenRejected("kid is not a string")
        if kid == SESSION_KEY_ID:
            return self._verify_session_token(token, alg)
        if alg == HMAC_ALGORITHM:
            if not self.config.jwt_secret:
                raise TokenRejected("an HS256 token, but SWITCHBOARD_JWT_SECRET is not set")
            key: Any = self.config.jwt_secret
        elif alg in ("RS256", "ES256", "EdDSA"):
            if self._jwks is None:
                raise TokenRejected(f"an {alg} token, but SWITCHBOARD_JWKS_URL is not set")
            key = await self._jwks.key_for(kid, alg)
        else:
            raise TokenRejected(f"algorithm {str(alg)[:20]!r} is not accepted")
        claims = self._decode(
            token,
            key,
            alg,
            audience=list(self.config.audiences) or None,
            issuer=self.config.issuer,
        )
        if claims.get("token_use") == SESSION_TOKEN_USE:
            raise TokenRejected("a session token must be signed by session_api")
        org = next((v for v in (_claim(claims, p) for p in self.config.org_claims) if isinstance(v, str) and v), None)
        roles = sorted({r for path in self.config.roles_claims for r in _roles(_claim(claims, path))})
        return VerifiedToken(
            principal=self._principal(claims, org_id=org, roles=roles, session_id=None),
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            kind="identity_provider",
        )

    def _verify_session_token(self, token: str, alg: Any) -> VerifiedToken:
        if alg != HMAC_ALGORITHM:
            raise TokenRejected(f"a session token with alg {str(alg)[:20]!r}")
        claims = self._decode(token, self._session_key, alg, audience=SESSION_AUDIENCE, issuer=SESSION_ISSUER)
        session_id = claims.get("sid")
        if claims.get("token_use") != SESSION_TOKEN_USE or not isinstance(session_id, str) or not session_id:
            raise TokenRejected("a session token without its session")
        org = claims.get("org") if isinstance(claims.get("org"), str) else None
        return VerifiedToken(
            principal=self._principal(claims, org_id=org, roles=_roles(claims.get("roles")), session_id=session_id),
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            kind="session",
        )

    def _decode(self, token: str, key: Any, alg: str, *, audience: str | list[str] | None, issuer: str | None) -> Any:
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=audience,
                issuer=issuer,
                leeway=self.config.leeway_seconds,
                options={"require": ["exp", "sub"], "verify_signature": True},
            )
        except jwt.PyJWTError as error:
            raise TokenRejected(f"{type(error).__name__}: {error}") from None

    @staticmethod
    def _principal(
        claims: dict[str, Any], *, org_id: str | None, roles: list[str], session_id: str | None
    ) -> Principal:
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub.strip():
            raise TokenRejected("sub is empty")
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise TokenRejected("exp is not a number")
        if not math.isfinite(exp) or not 0 < exp <= MAX_EXP:
            # NaN never compares as expired and 1e300 overflows a datetime: neither is a time.
            raise TokenRejected("exp is not a time before the year 10000")
        try:
            return Principal.create(user_id=sub, org_id=org_id, roles=roles, session_id=session_id)
        except (InvalidArgument, Unauthenticated) as error:
            raise TokenRejected(f"the token's principal is not acceptable: {error.message}") from None

    # -- session tokens -----------------------------------------------------------

    def mint_session_token(self, principal: Principal, session_id: str) -> tuple[str, datetime]:
        """A client secret bound to ``principal``'s user and to ``session_id``."""
        now = int(time.time())
        expires = now + self.config.session_token_ttl_seconds
        claims = {
            "sub": principal.user_id,
            "sid": session_id,
            "org": principal.org_id,
            "roles": list(principal.roles),
            "token_use": SESSION_TOKEN_USE,
            "iss": SESSION_ISSUER,
            "aud": SESSION_AUDIENCE,
            "iat": now,
            "exp": expires,
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(claims, self._session_key, algorithm=HMAC_ALGORITHM, headers={"kid": SESSION_KEY_ID})
        return token, datetime.fromtimestamp(expires, UTC)


def mint_development_token(
    secret: str,
    *,
    user_id: str,
    org_id: str | None = None,
    roles: list[str] | None = None,
    ttl_seconds: int = 3600,
    audience: str | None = None,
    issuer: str | None = None,
) -> str:
    """An HS256 token as the identity provider would sign it (for local development only)."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + ttl_seconds, "roles": roles or []}
    if org_id:
        claims["org_id"] = org_id
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm=HMAC_ALGORITHM)
