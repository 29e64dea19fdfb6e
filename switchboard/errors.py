"""Typed domain errors, and the one table of what each means on the wire.

Domain and storage code raise these; they never import grpc. Each carries the
name of the gRPC status it maps to and the HTTP status the edge answers with:
one server interceptor (``switchboard.grpc_runtime.DomainErrorInterceptor``)
turns them into gRPC statuses, clients turn statuses back into them
(``error_for_status``), and the edge answers ``http_status``.
"""

from __future__ import annotations

from collections.abc import Mapping


class SwitchboardError(Exception):
    """Base class of every error a client may be shown.

    Attributes:
        status: The name of the ``grpc.StatusCode`` this error maps to.
        http_status: The HTTP status the edge answers with.
    """

    status = "INTERNAL"
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(SwitchboardError):
    """The request is malformed; the message says what to fix."""

    status = "INVALID_ARGUMENT"
    http_status = 400


class NotFound(SwitchboardError):
    """The object does not exist, or belongs to someone else (ids leak nothing)."""

    status = "NOT_FOUND"
    http_status = 404


class AlreadyExists(SwitchboardError):
    """The object already exists."""

    status = "ALREADY_EXISTS"
    http_status = 409


class PermissionDenied(SwitchboardError):
    """The caller is known but may not do this."""

    status = "PERMISSION_DENIED"
    http_status = 403


class Unauthenticated(SwitchboardError):
    """The caller could not be identified."""

    status = "UNAUTHENTICATED"
    http_status = 401


class FailedPrecondition(SwitchboardError):
    """The system is not in a state that allows this (e.g. claimed by another)."""

    status = "FAILED_PRECONDITION"
    http_status = 409


class ResourceExhausted(SwitchboardError):
    """A size or rate limit was exceeded."""

    status = "RESOURCE_EXHAUSTED"
    http_status = 413


class Unavailable(SwitchboardError):
    """A dependency is down; retrying later may succeed.

    Attributes:
        retry_after: Seconds the caller should wait, when the dependency said (None: soon).
    """

    status = "UNAVAILABLE"
    http_status = 503

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamRefused(SwitchboardError):
    """A service Switchboard calls for the deployment (OpenAI's API) refused the request:
    its configuration (an API key, a workflow id) needs fixing, so retrying will not help.

    Over gRPC it is FAILED_PRECONDITION marked with ``switchboard-error: upstream_refused``
    in the trailers (gRPC has no "bad gateway"); the edge answers 502.
    """

    status = "FAILED_PRECONDITION"
    http_status = 502


# gRPC status name -> the error a client raises for it. A deadline that ran out
# means the service did not answer in time: to the caller, it is unavailable.
_BY_STATUS: dict[str, type[SwitchboardError]] = {
    cls.status: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        Unauthenticated,
        FailedPrecondition,
        ResourceExhausted,
        Unavailable,
    )
}
_BY_STATUS["DEADLINE_EXCEEDED"] = Unavailable


# What a status name alone cannot say travels in the call's trailing metadata.
ERROR_KIND_KEY = "switchboard-error"
RETRY_AFTER_KEY = "retry-after"
_BY_KIND: dict[str, type[SwitchboardError]] = {"upstream_refused": UpstreamRefused}


def error_trailers(error: SwitchboardError) -> tuple[tuple[str, str], ...]:
    """The trailing metadata that carries what ``error``'s status does not (its kind, a retry time)."""
    trailers: list[tuple[str, str]] = []
    for kind, cls in _BY_KIND.items():
        if type(error) is cls:
            trailers.append((ERROR_KIND_KEY, kind))
    if isinstance(error, Unavailable) and error.retry_after is not None:
        trailers.append((RETRY_AFTER_KEY, f"{error.retry_after:.3f}"))
    return tuple(trailers)


def error_for_status(status: str, message: str, trailers: Mapping[str, str] | None = None) -> SwitchboardError:
    """The typed error of a gRPC status name and its trailers (INTERNAL and unknown ones:
    ``SwitchboardError``)."""
    trailers = trailers or {}
    kind = _BY_KIND.get(trailers.get(ERROR_KIND_KEY, ""))
    if kind is not None and kind.status == status:
        return kind(message)
    cls = _BY_STATUS.get(status, SwitchboardError)
    if cls is Unavailable:
        try:
            retry_after = float(trailers[RETRY_AFTER_KEY])
        except (KeyError, ValueError):
            retry_after = None
        return Unavailable(message, retry_after=retry_after)
    return cls(message)
