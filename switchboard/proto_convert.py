"""Conversions between protobuf messages and Switchboard's own types, shared by every servicer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from switchboard.api.v1 import common_pb2
from switchboard.errors import InvalidArgument
from switchboard.principal import Caller, Principal
from switchboard.service_auth import check_principal, current_credential


def principal_from_proto(message: common_pb2.Principal) -> Principal:
    """Validate a principal in protobuf form (``Principal.create``).

    Raises:
        Unauthenticated: it has no user id.
        InvalidArgument: a field is too long or holds a NUL character.
    """
    return Principal.create(
        user_id=message.user_id,
        org_id=message.org_id or None,
        roles=list(message.roles),
        session_id=message.session_id or None,
    )


def request_principal(request: Any) -> Principal:
    """The principal a call acts for: its credentials' (``check_principal``), which the request's
    ``principal`` field, when set, must agree with.

    Raises:
        Unauthenticated: no principal at all.
        PermissionDenied: the body claims someone the credentials do not allow.
        InvalidArgument: a malformed principal field.
    """
    claimed = None
    if request.HasField("principal") and request.principal.user_id:
        claimed = principal_from_proto(request.principal)
    return check_principal(current_credential(), claimed)


def principal_to_proto(caller: Caller) -> common_pb2.Principal:
    """The protobuf form of a caller: a ``Principal``, or any store context with the same
    fields (a ChatKit request context).

    Raises:
        ValueError: the caller has no user id.
    """
    if not caller.user_id:
        raise ValueError("the caller must have a non-empty user_id")
    return common_pb2.Principal(
        user_id=caller.user_id,
        org_id=caller.org_id or "",
        roles=list(caller.roles),
        session_id=caller.session_id or "",
    )


def enum_name(enum: Any, value: int, prefix: str) -> str | None:
    """The lower-case name of a protobuf enum value without its prefix
    (``SESSION_STATUS_ACTIVE`` -> ``active``); None for the UNSPECIFIED zero.

    Raises:
        InvalidArgument: the value is not one of the enum's.
    """
    if value == 0:
        return None
    try:
        name: str = enum.Name(value)
    except ValueError:
        raise InvalidArgument(f"{value} is not a valid {prefix.rstrip('_').lower()}") from None
    return name.removeprefix(prefix).lower()


def enum_value(enum: Any, name: str, prefix: str) -> Any:
    """The protobuf enum value of a lower-case name (the inverse of ``enum_name``).

    Raises:
        InvalidArgument: no value has this name.
    """
    try:
        value = enum.Value(prefix + name.upper())
    except ValueError:
        raise InvalidArgument(f"{name!r} is not a valid {prefix.rstrip('_').lower()}") from None
    return value


def order_from_proto(value: int, *, default: str) -> str:
    """``SortOrder`` to ``"asc"``/``"desc"``; UNSPECIFIED takes the method's default."""
    if value == common_pb2.SORT_ORDER_ASC:
        return "asc"
    if value == common_pb2.SORT_ORDER_DESC:
        return "desc"
    return default


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(moment: datetime) -> Timestamp:
    """A protobuf Timestamp of an aware datetime (arithmetic, not ``FromDatetime``: this is on the hot path)."""
    delta = moment - _EPOCH
    return Timestamp(seconds=delta.days * 86400 + delta.seconds, nanos=delta.microseconds * 1000)


def from_timestamp(ts: Timestamp) -> datetime:
    """An aware UTC datetime of a protobuf Timestamp."""
    return ts.ToDatetime(tzinfo=UTC)


def optional_timestamp(message: Any, field: str) -> datetime | None:
    """A message's optional Timestamp field as an aware UTC datetime; None when it is not set."""
    return from_timestamp(getattr(message, field)) if message.HasField(field) else None
