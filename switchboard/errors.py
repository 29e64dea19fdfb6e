"""Typed domain errors.

Domain and storage code raise these; they never import grpc. Each carries the
name of the gRPC status it maps to, and one server interceptor
(``switchboard.grpc_runtime.DomainErrorInterceptor``) turns them into statuses.
"""

from __future__ import annotations


class SwitchboardError(Exception):
    """Base class of every error a client may be shown.

    Attributes:
        status: The name of the ``grpc.StatusCode`` this error maps to.
    """

    status = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(SwitchboardError):
    """The request is malformed; the message says what to fix."""

    status = "INVALID_ARGUMENT"


class NotFound(SwitchboardError):
    """The object does not exist, or belongs to someone else (ids leak nothing)."""

    status = "NOT_FOUND"


class AlreadyExists(SwitchboardError):
    """The object already exists."""

    status = "ALREADY_EXISTS"


class PermissionDenied(SwitchboardError):
    """The caller is known but may not do this."""

    status = "PERMISSION_DENIED"


class Unauthenticated(SwitchboardError):
    """The caller could not be identified."""

    status = "UNAUTHENTICATED"


class FailedPrecondition(SwitchboardError):
    """The system is not in a state that allows this (e.g. claimed by another)."""

    status = "FAILED_PRECONDITION"


class ResourceExhausted(SwitchboardError):
    """A size or rate limit was exceeded."""

    status = "RESOURCE_EXHAUSTED"


class Unavailable(SwitchboardError):
    """A dependency is down; retrying later may succeed."""

    status = "UNAVAILABLE"
