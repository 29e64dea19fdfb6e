"""Conversions between protobuf messages and Switchboard's own types, shared by every servicer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from switchboard.api.v1 import common_pb2
from switchboard.principal import Principal


def principal_from_proto(message: common_pb2.Principal, *, present: bool = True) -> Principal:
    """Validate the principal a request carries.

    Raises:
        Unauthenticated: the request carries no principal.
    """
    return Principal.create(
        user_id=message.user_id if present else "",
        org_id=message.org_id or None,
        roles=list(message.roles),
        session_id=message.session_id or None,
    )


def principal_to_proto(principal: Principal) -> common_pb2.Principal:
    """The protobuf form of a principal."""
    return common_pb2.Principal(
        user_id=principal.user_id,
        org_id=principal.org_id or "",
        roles=list(principal.roles),
        session_id=principal.session_id or "",
    )


def context_to_proto(context: Any) -> common_pb2.Principal:
    """The principal of a client call's context: a ``Principal`` or any object with ``user_id``
    (and optionally ``org_id``, ``roles``, ``session_id``), such as a ChatKit request context.

    Raises:
        ValueError: the context has no user id.
    """
    user_id = getattr(context, "user_id", None)
    if not user_id:
        raise ValueError("the context must have a non-empty user_id")
    return common_pb2.Principal(
        user_id=user_id,
        org_id=getattr(context, "org_id", None) or "",
        roles=list(getattr(context, "roles", None) or ()),
        session_id=getattr(context, "session_id", None) or "",
    )


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
