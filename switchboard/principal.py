"""The caller of an API: who they are and what they may see."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from switchboard.errors import InvalidArgument, Unauthenticated

OPERATOR_ROLE = "operator"
MAX_ID_LENGTH = 255


class Caller(Protocol):
    """What a call needs to know of its caller: a ``Principal``, or a ChatKit store
    context that carries one (the edge's ``RequestContext``)."""

    @property
    def user_id(self) -> str:
        """The user id."""
        ...

    @property
    def org_id(self) -> str | None:
        """The org, if any."""
        ...

    @property
    def roles(self) -> Sequence[str]:
        """Role names."""
        ...

    @property
    def session_id(self) -> str | None:
        """The chat session, if any."""
        ...


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    Attributes:
        user_id: The stable user id (the JWT ``sub``).
        org_id: The organisation the user acts for, if any.
        roles: Role names; ``operator`` admits the console and org-wide reads.
        session_id: The chat session the call belongs to, if any.
    """

    user_id: str
    org_id: str | None = None
    roles: tuple[str, ...] = field(default_factory=tuple)
    session_id: str | None = None

    @property
    def is_operator(self) -> bool:
        """Whether this principal has the operator role."""
        return OPERATOR_ROLE in self.roles

    @classmethod
    def create(
        cls,
        *,
        user_id: str,
        org_id: str | None = None,
        roles: tuple[str, ...] | list[str] = (),
        session_id: str | None = None,
    ) -> Principal:
        """Validate raw values from outside and build a principal.

        This is the one validation of a principal, wherever it comes from (a
        request's protobuf, a verified token's claims): Postgres text cannot hold
        NUL characters, and ids are bounded.

        Raises:
            Unauthenticated: ``user_id`` is empty.
            InvalidArgument: a field is too long or holds a NUL character.
        """
        if not user_id or not user_id.strip():
            raise Unauthenticated("the request carries no principal (user_id is empty)")
        fields = [("user_id", user_id), ("org_id", org_id), ("session_id", session_id)]
        fields += [("roles", role) for role in roles]
        for name, value in fields:
            if value is not None and len(value) > MAX_ID_LENGTH:
                raise InvalidArgument(f"principal.{name} is longer than {MAX_ID_LENGTH} characters")
            if value is not None and "\x00" in value:
                raise InvalidArgument(f"principal.{name} contains a NUL character")
        return cls(
            user_id=user_id,
            org_id=org_id or None,
            roles=tuple(sorted({r for r in roles if r})),
            session_id=session_id or None,
        )
