"""Who calls a gRPC service: every call carries credentials, and the server derives the principal.

Two kinds of credentials travel in the ``authorization`` call metadata as
``Bearer <token>``:

- An end user's bearer token (an identity provider's JWT or a session's client
  secret), verified by the same rules as the edge: session_api verifies it
  itself, the other services ask session_api (``TokenAuthenticator``, with its
  cache). The principal is the token's; the request may not claim another.
- A service token: a short-lived HS256 JWT signed with the deployment's internal
  key (``SWITCHBOARD_INTERNAL_SECRET``, at least 32 characters), bound to one
  audience (the service called) and marked by its ``kid``. It carries either
  the end user a service acts for (``sub``, ``org``, ``roles``, ``sid``: the
  edge and the runner call on behalf of the user, with that user's rights) or a
  service identity with scopes (``scope``: ``threads:read`` ...; ``*`` for all,
  ``threads:*`` for a family), optionally bound to one org. A service identity
  names in the request body the user it acts upon.

Decisions:

- The ``principal`` field stays in request bodies (clients keep their shape),
  but it must agree with the credentials: with a user's token or a token acting
  for a user, a field that is set must equal the authenticated one (roles: a
  subset of the token's), and an unset body takes the token's principal; with a
  service identity the body names the user, inside the token's org if it has one.
- HS256 with one shared internal key (no key pair): every Switchboard process
  already shares the deployment's secrets, and verification stays a few
  microseconds on the hot path. Tokens live 5 minutes; clients reuse one for 4.
- A holder of the internal key is a Switchboard service: without a user in the
  request its token carries the scope ``*``.
- ``SetHandler`` and ``ExpireWaiting`` (who answers a thread; expiring waits)
  are for services only: an end user's own token may not call them.
- Authentication is on unless ``SWITCHBOARD_GRPC_AUTH=off``, a development flag
  that ``switchboard up`` never sets; with it on, a server without an internal
  key refuses to start.
"""

from __future__ import annotations

import contextvars
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import jwt

from switchboard.config import env_str
from switchboard.errors import InvalidArgument, PermissionDenied, Unauthenticated
from switchboard.expiring_cache import ExpiringCache
from switchboard.principal import MAX_ID_LENGTH, Principal

log = logging.getLogger(__name__)

SERVICE_KEY_ID = "switchboard-service"
ISSUER = "switchboard"
ALGORITHM = "HS256"
TOKEN_SECONDS = 300
REUSE_SECONDS = 240
MIN_SECRET_CHARS = 32
MAX_TOKEN_CHARS = 8192
MAX_SERVICE_NAME = 64
LEEWAY_SECONDS = 5.0
AUDIENCES = ("thread_store", "session_api", "agent_runner", "edge")

_PACKAGE = "/switchboard.api.v1."
# The scope each method needs from a service identity, per service.
METHOD_SCOPES: dict[str, dict[str, str]] = {
    "thread_store": {
        "GetThread": "threads:read",
        "ListThreads": "threads:read",
        "GetItem": "threads:read",
        "ListItems": "threads:read",
        "GetAttachment": "threads:read",
        "Watch": "threads:read",
        "SaveThread": "threads:write",
        "DeleteThread": "threads:write",
        "AddItem": "threads:write",
        "SaveItem": "threads:write",
        "DeleteItem": "threads:write",
        "BeginTurn": "threads:write",
        "SaveAttachment": "threads:write",
        "DeleteAttachment": "threads:write",
        "SetHandler": "threads:admin",
        "ExpireWaiting": "threads:admin",
    },
    "session_api": {
        "Authenticate": "sessions:authenticate",
        "CreateSession": "sessions:write",
        "GetSession": "sessions:read",
        "ListSessions": "sessions:read",
        "RefreshSession": "sessions:write",
        "ListHostedThreads": "sessions:read",
        "ListHostedItems": "sessions:read",
        "AttachThread": "sessions:write",
        "CancelSession": "sessions:write",
        "EndSession": "sessions:write",
        "RecordEvent": "sessions:write",
        "ListEvents": "sessions:read",
        "GetMetrics": "sessions:read",
        "Watch": "sessions:read",
        "OpenEscalation": "escalations:write",
        "GetEscalation": "escalations:read",
        "ListEscalations": "escalations:read",
        "ClaimEscalation": "escalations:write",
        "ResolveEscalation": "escalations:write",
        "AddWebhookEndpoint": "webhooks:admin",
        "ListWebhookEndpoints": "webhooks:admin",
        "RemoveWebhookEndpoint": "webhooks:admin",
        "TestWebhookEndpoint": "webhooks:admin",
        "ListWebhookDeliveries": "webhooks:admin",
        "RedeliverWebhooks": "webhooks:admin",
    },
    "agent_runner": {
        "Run": "runs:write",
        "Cancel": "runs:write",
        "Join": "runs:read",
        "GetRun": "runs:read",
        "ListRuns": "runs:read",
        "Escalate": "handoffs:write",
        "TakeOver": "handoffs:write",
        "PostOperatorMessage": "handoffs:write",
        "HandBack": "handoffs:write",
    },
}
_PROTO_SERVICE = {"thread_store": "ThreadStore", "session_api": "SessionApi", "agent_runner": "AgentRunner"}
# Full method name -> scope needed.
SCOPE_OF_METHOD: dict[str, str] = {
    f"{_PACKAGE}{_PROTO_SERVICE[service]}/{method}": scope
    for service, methods in METHOD_SCOPES.items()
    for method, scope in methods.items()
}
SERVICE_ONLY = frozenset({f"{_PACKAGE}ThreadStore/SetHandler", f"{_PACKAGE}ThreadStore/ExpireWaiting"})
ALL_SCOPES = frozenset(SCOPE_OF_METHOD.values())
# Methods any caller may use without credentials.
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


@dataclass(frozen=True, slots=True)
class Credential:
    """Who an authenticated call comes from.

    Attributes:
        kind: ``user`` (an end user's own token), ``on_behalf`` (a service acting
            for a user) or ``service`` (a service identity with scopes).
        principal: The user (``user`` and ``on_behalf``).
        service: The calling service's name (``on_behalf`` and ``service``).
        scopes: What a service identity may do.
        org_id: The one org a service identity is bound to, if any.
    """

    kind: Literal["user", "on_behalf", "service"]
    principal: Principal | None = None
    service: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    org_id: str | None = None

    def allows(self, scope: str) -> bool:
        """Whether a service identity's scopes include ``scope`` (``*`` and ``family:*`` count)."""
        family = scope.split(":", 1)[0]
        return "*" in self.scopes or scope in self.scopes or f"{family}:*" in self.scopes


_CURRENT: contextvars.ContextVar[Credential | None] = contextvars.ContextVar("switchboard_credential", default=None)


def current_credential() -> Credential | None:
    """The credential of the call being served (None when authentication is off)."""
    return _CURRENT.get()


def set_current_credential(credential: Credential | None) -> contextvars.Token[Credential | None]:
    """Make ``credential`` the current call's (the server's interceptor does this)."""
    return _CURRENT.set(credential)


def caller_is_service() -> bool:
    """Whether the current call comes from a service (acting for a user or as itself)."""
    credential = _CURRENT.get()
    return credential is not None and credential.kind != "user"


def check_principal(credential: Credential | None, claimed: Principal | None) -> Principal:
    """The principal a call acts for: the credential's, never one the body invents.

    Args:
        credential: The call's credential (None: authentication is off, the body is trusted).
        claimed: The principal written in the request body, if any.

    Raises:
        Unauthenticated: no principal at all (a service identity must name the user).
        PermissionDenied: the body claims someone the credentials do not allow.
    """
    if credential is None or credential.kind == "service":
        if claimed is None:
            raise Unauthenticated("the request names no principal: a service token acts for the user it names")
        if credential is not None and credential.org_id and claimed.org_id != credential.org_id:
            raise PermissionDenied("this service token is bound to another org")
        return claimed
    own = credential.principal
    assert own is not None
    if claimed is None:
        return own
    if claimed.user_id != own.user_id:
        raise PermissionDenied("the request's principal is not the authenticated user")
    if claimed.org_id is not None and claimed.org_id != own.org_id:
        raise PermissionDenied("the request's principal.org_id is not the authenticated user's org")
    if claimed.session_id is not None and claimed.session_id != own.session_id:
        raise PermissionDenied("the request's principal.session_id is not the authenticated session")
    if not set(claimed.roles) <= set(own.roles):
        raise PermissionDenied("the request's principal claims roles the credentials do not grant")
    roles = claimed.roles if claimed.roles else own.roles
    return Principal(user_id=own.user_id, org_id=own.org_id, roles=roles, session_id=own.session_id)


def check_method(credential: Credential, method: str) -> None:
    """Whether ``credential`` may call ``method`` at all (before the body is read).

    Raises:
        PermissionDenied: a service identity without the method's scope, or an
            end user's token on a service-only method.
    """
    if credential.kind == "user":
        if method in SERVICE_ONLY:
            raise PermissionDenied("this method is for Switchboard's own services; an end user's token cannot call it")
        return
    if credential.kind == "service":
        scope = SCOPE_OF_METHOD.get(method)
        if scope is None or not credential.allows(scope):
            raise PermissionDenied(f"this service token lacks the scope {scope or method!r}")


# -- service tokens ---------------------------------------------------------------


def check_secret(secret: str | None, *, where: str = "SWITCHBOARD_INTERNAL_SECRET") -> bytes:
    """The internal key, refused when short.

    Raises:
        InvalidArgument: missing or shorter than ``MIN_SECRET_CHARS``, with how to make one.
    """
    if not secret or len(secret) < MIN_SECRET_CHARS:
        raise InvalidArgument(
            f"{where} must be at least {MIN_SECRET_CHARS} characters (make one with:"
            ' python3 -c "import secrets; print(secrets.token_urlsafe(48))")'
        )
    return secret.encode()


def check_scopes(scopes: Sequence[str]) -> tuple[str, ...]:
    """Scopes for a service identity: each a known scope, ``family:*`` or ``*``.

    Raises:
        InvalidArgument: an unknown scope, naming the known ones.
    """
    families = {s.split(":", 1)[0] for s in ALL_SCOPES}
    for scope in scopes:
        family, _, action = scope.partition(":")
        if scope == "*" or scope in ALL_SCOPES or (action == "*" and family in families):
            continue
        raise InvalidArgument(f"unknown scope {scope!r}; known: {', '.join(sorted(ALL_SCOPES))}, family:* or *")
    return tuple(scopes)


def mint_service_token(
    secret: bytes,
    *,
    audience: str,
    service: str,
    principal: Principal | None = None,
    scopes: Sequence[str] = (),
    org_id: str | None = None,
    seconds: float = TOKEN_SECONDS,
) -> tuple[str, float]:
    """A service token for one audience: acting for ``principal``, or as ``service`` with ``scopes``.

    Returns:
        The token and when it expires (epoch seconds).

    Raises:
        InvalidArgument: an unknown audience or scope, or a bad service name.
    """
    if audience not in AUDIENCES:
        raise InvalidArgument(f"unknown audience {audience!r}; one of {', '.join(AUDIENCES)}")
    if not service or len(service) > MAX_SERVICE_NAME or not service.isprintable():
        raise InvalidArgument(f"a service name is 1 to {MAX_SERVICE_NAME} printable characters")
    now = time.time()
    expires = now + seconds
    claims: dict[str, Any] = {"iss": ISSUER, "aud": audience, "iat": int(now), "exp": int(expires), "svc": service}
    claims["jti"] = secrets.token_hex(8)
    if principal is not None:
        claims["sub"] = principal.user_id
        if principal.org_id:
            claims["org"] = principal.org_id
        if principal.roles:
            claims["roles"] = list(principal.roles)
        if principal.session_id:
            claims["sid"] = principal.session_id
    else:
        claims["scope"] = " ".join(check_scopes(scopes))
        if org_id:
            claims["org"] = org_id
    token = jwt.encode(claims, secret, algorithm=ALGORITHM, headers={"kid": SERVICE_KEY_ID})
    return token, float(int(expires))


def _str_claim(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_ID_LENGTH:
        raise Unauthenticated("the service token is malformed")
    return value or None


class ServiceTokenVerifier:
    """Verifies service tokens for one audience; remembers verified ones until they expire.

    Args:
        secret: The internal key.
        audience: This service's name (``thread_store``, ...).
        max_entries: Tokens remembered (the oldest go first).
    """

    def __init__(self, secret: bytes, *, audience: str, max_entries: int = 10_000) -> None:
        self._secret = secret
        self.audience = audience
        self._cache: ExpiringCache[str, Credential] = ExpiringCache(max_entries)

    def cached(self, token: str) -> Credential | None:
        """The credential of a token verified already and not expired (the hot path: one lookup)."""
        return self._cache.get(token)

    def verify(self, token: str) -> Credential:
        """The credential of a service token.

        Raises:
            Unauthenticated: forged, expired, for another audience, or malformed.
        """
        cached = self.cached(token)
        if cached is not None:
            return cached
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=ISSUER,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "aud", "iss", "svc"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the service token has expired; mint a new one") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated(f"the service token is not for {self.audience}") from None
        except jwt.PyJWTError as error:
            log.info("service token refused: %s", error)
            raise Unauthenticated("the service token is invalid") from None
        credential = _credential(claims)
        self._cache.put(token, credential, float(claims["exp"]))
        return credential


def _credential(claims: dict[str, Any]) -> Credential:
    service = _str_claim(claims, "svc")
    user_id = _str_claim(claims, "sub")
    org_id = _str_claim(claims, "org")
    if user_id is not None:
        roles = claims.get("roles") or []
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise Unauthenticated("the service token is malformed")
        principal = Principal.create(user_id=user_id, org_id=org_id, roles=roles, session_id=_str_claim(claims, "sid"))
        return Credential(kind="on_behalf", principal=principal, service=service)
    scope = claims.get("scope")
    if not isinstance(scope, str):
        raise Unauthenticated("the service token names neither a user nor scopes")
    return Credential(kind="service", service=service, scopes=frozenset(scope.split()), org_id=org_id)


def is_service_token(token: str) -> bool:
    """Whether a bearer token is shaped as a service token (its ``kid``; nothing is verified)."""
    try:
        return _key_id(token) == SERVICE_KEY_ID
    except Unauthenticated:
        return False


def _key_id(token: str) -> str | None:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        raise Unauthenticated("the bearer token is not a JWT") from None
    return kid if isinstance(kid, str) else None


# -- the server's side ---------------------------------------------------------------

UserVerifier = Callable[[str], Awaitable[Principal]]


def _bearer(metadata: Any) -> str:
    value: Any = None
    for key, item in metadata or ():
        if key == "authorization":
            value = item
            break
    if value is None:
        raise Unauthenticated(
            "this call needs credentials: 'authorization: Bearer <token>' metadata with a user's token"
            " or a service token (switchboard token --service NAME --scope SCOPE)"
        )
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    scheme, _, token = str(value).partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("the authorization metadata must be 'Bearer <token>'")
    if len(token) > MAX_TOKEN_CHARS:
        raise Unauthenticated("the bearer token is too long")
    return token


class ServerAuth:
    """How one gRPC server authenticates its calls.

    Args:
        audience: This service's name.
        secret: The internal key (None with ``enabled=False`` only).
        users: Verifies an end user's bearer token (None: this server accepts service tokens only).
        enabled: False only under the explicit development flag.
    """

    def __init__(self, audience: str, secret: bytes | None, *, users: UserVerifier | None, enabled: bool) -> None:
        if audience not in AUDIENCES:
            raise ValueError(f"unknown audience {audience!r}")
        if enabled and secret is None:
            raise ValueError("authentication needs the internal key")
        self.audience = audience
        self.enabled = enabled
        self.users = users
        self._services = ServiceTokenVerifier(secret, audience=audience) if secret is not None else None

    @classmethod
    def from_env(cls, audience: str, *, users: UserVerifier | None) -> ServerAuth:
        """Read ``SWITCHBOARD_GRPC_AUTH`` and ``SWITCHBOARD_INTERNAL_SECRET``.

        Raises:
            InvalidArgument: authentication is on and the internal key is missing or short.
        """
        flag = (env_str("SWITCHBOARD_GRPC_AUTH", "on") or "on").lower()
        if flag not in ("on", "off"):
            raise InvalidArgument(f"SWITCHBOARD_GRPC_AUTH={flag!r}: use on (the default) or off (development only)")
        raw = env_str("SWITCHBOARD_INTERNAL_SECRET")
        if flag == "off":
            log.warning(
                "SWITCHBOARD_GRPC_AUTH=off: %s trusts the principal in every request; never do this in production",
                audience,
            )
            return cls(audience, check_secret(raw) if raw else None, users=users, enabled=False)
        return cls(audience, check_secret(raw), users=users, enabled=True)

    async def authenticate(self, method: str, metadata: Any) -> Credential | None:
        """The credential of a call, allowed to call ``method`` (None for open methods or with authentication off).

        Raises:
            Unauthenticated: no, malformed, forged or expired credentials.
            PermissionDenied: credentials that may not call this method.
        """
        if not self.enabled or method.startswith(OPEN_PREFIXES):
            return None
        token = _bearer(metadata)
        known = self._services.cached(token) if self._services is not None else None
        if known is not None:
            credential = known
        elif self._services is not None and _key_id(token) == SERVICE_KEY_ID:
            credential = self._services.verify(token)
        elif self.users is None:
            raise Unauthenticated(f"{self.audience} accepts service tokens only here (no session_api to verify users)")
        else:
            credential = Credential(kind="user", principal=await self.users(token))
        check_method(credential, method)
        return credential


# -- the client's side ---------------------------------------------------------------

Metadata = tuple[tuple[str, str], ...]


class CallCredentials(Protocol):
    """Gives the metadata of each outgoing call."""

    def metadata(self, request: Any) -> Metadata:
        """The call metadata for ``request`` (its ``principal`` field, if any, may choose the token)."""
        ...


class BearerCredentials:
    """One bearer token for every call (a user's or an operator's token, or a minted service token).

    Args:
        token: The token, or a function giving the current one (a console that renews it).
    """

    def __init__(self, token: str | Callable[[], str]) -> None:
        self._token = token

    def metadata(self, request: Any) -> Metadata:
        token = self._token() if callable(self._token) else self._token
        return (("authorization", f"Bearer {token}"),)


class InternalCredentials:
    """Service tokens minted with the internal key: acting for the request's principal, or as the
    service itself (scope ``*``) when the request has none. Reused until a minute before expiry.

    Args:
        secret: The internal key.
        service: This process's service name (the tokens' ``svc``).
        audience: The service called.
    """

    def __init__(self, secret: bytes, *, service: str, audience: str, max_entries: int = 10_000) -> None:
        self._secret = secret
        self._service = service
        self._audience = audience
        self._held: ExpiringCache[bytes, Metadata] = ExpiringCache(max_entries)
        mint_service_token(secret, audience=audience, service=service, scopes=("*",))  # fail early on bad names

    def metadata(self, request: Any) -> Metadata:
        key = b""
        principal: Principal | None = None
        message = getattr(request, "principal", None)
        if message is not None and message.user_id:
            key = message.SerializeToString()
        held = self._held.get(key)
        if held is not None:
            return held
        if message is not None and key:
            try:
                principal = Principal.create(
                    user_id=message.user_id,
                    org_id=message.org_id or None,
                    roles=list(message.roles),
                    session_id=message.session_id or None,
                )
            except InvalidArgument:
                principal = None  # sent as the service itself: the server refuses the malformed body
        token, expires = mint_service_token(
            self._secret, audience=self._audience, service=self._service, principal=principal, scopes=("*",)
        )
        metadata: Metadata = (("authorization", f"Bearer {token}"),)
        self._held.put(key, metadata, expires - (TOKEN_SECONDS - REUSE_SECONDS))
        return metadata


def credentials_from_env(audience: str) -> CallCredentials | None:
    """The credentials a process calls ``audience`` with: service tokens when it holds the internal
    key (``SWITCHBOARD_INTERNAL_SECRET``, named ``SWITCHBOARD_SERVICE_NAME``), else the bearer token
    in ``SWITCHBOARD_TOKEN``, else none (the server must run with authentication off).

    Raises:
        InvalidArgument: the internal key is too short.
    """
    secret = env_str("SWITCHBOARD_INTERNAL_SECRET")
    if secret:
        name = env_str("SWITCHBOARD_SERVICE_NAME", "switchboard") or "switchboard"
        return InternalCredentials(check_secret(secret), service=name, audience=audience)
    token = env_str("SWITCHBOARD_TOKEN")
    return BearerCredentials(token) if token else None
