"""OpenAI-hosted ChatKit sessions: workflows built in Agent Builder and run by OpenAI.

An agent of the agents file with a ``workflow`` (or, for sessions that name no agent,
the deployment's ``SWITCHBOARD_CHATKIT_WORKFLOW_ID``) is hosted: its sessions are
created through OpenAI's ChatKit sessions API with the official ``openai`` client,
and the browser talks to OpenAI with the client secret OpenAI issued. Switchboard
keeps the session record (audit, escalations, metrics, the console) and the link.

Decisions:
- OpenAI knows a user by a stable, opaque id (``hosted_user``): a hash of the org and
  user id, never the raw id or an email, and the same in every session, so ChatKit's
  history (threads are scoped to that id) follows the user.
- Calls are made once, without the client's own retries (``max_retries=0``), with a
  short timeout (``SWITCHBOARD_CHATKIT_API_TIMEOUT_SECONDS``, default 10): a user is
  waiting, and ChatKit retries ``getClientSecret`` itself. OpenAI's refusals become
  ``UpstreamRefused`` (502 with OpenAI's reason: a bad key, an unknown workflow), a
  429 becomes ``Unavailable`` with OpenAI's ``Retry-After``, a 5xx or no answer
  ``Unavailable``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import openai
from openai import AsyncOpenAI, omit

from switchboard.agents_file import AgentsFile, HostedWorkflow, parse_workflow
from switchboard.config import env_float, env_str
from switchboard.errors import InvalidArgument, NotFound, Unavailable, UpstreamRefused
from switchboard.principal import Principal

log = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER = 10.0  # seconds, when OpenAI's 429 names none


def hosted_user(principal: Principal) -> str:
    """The stable, opaque id OpenAI knows this user by."""
    digest = hashlib.sha256(f"{principal.org_id or ''}\x1f{principal.user_id}".encode()).hexdigest()
    return f"sb_{digest[:40]}"


@dataclass(frozen=True)
class HostedWorkflows:
    """Which sessions are hosted, and by which workflow.

    Args:
        agents: Agent id -> its workflow (the agents file's ``[agents.<id>.workflow]``).
        default: The deployment's workflow (``SWITCHBOARD_CHATKIT_WORKFLOW_ID``) for
            sessions that name no agent; None: those sessions are self-hosted.
    """

    agents: dict[str, HostedWorkflow]
    default: HostedWorkflow | None = None
    default_agent: str = ""

    @classmethod
    def from_agents(cls, agents: AgentsFile, default: HostedWorkflow | None = None) -> HostedWorkflows:
        """The hosted agents of an agents file, and the deployment's default workflow."""
        hosted = {spec.id: spec.workflow for spec in agents.agents.values() if spec.workflow is not None}
        return cls(agents=hosted, default=default, default_agent=agents.default_agent)

    @staticmethod
    def default_from_env() -> HostedWorkflow | None:
        """``SWITCHBOARD_CHATKIT_WORKFLOW_ID`` (and ``_VERSION``) as a workflow, or None."""
        workflow_id = env_str("SWITCHBOARD_CHATKIT_WORKFLOW_ID")
        if not workflow_id:
            return None
        raw: dict[str, Any] = {"id": workflow_id}
        version = env_str("SWITCHBOARD_CHATKIT_WORKFLOW_VERSION")
        if version:
            raw["version"] = version
        return parse_workflow(raw, "SWITCHBOARD_CHATKIT_WORKFLOW_ID")

    def for_agent(self, agent_id: str) -> HostedWorkflow | None:
        """The workflow of a session's agent (empty: the deployment's, else the default agent's)."""
        if not agent_id:
            return self.default or self.agents.get(self.default_agent)
        return self.agents.get(agent_id)


@dataclass(frozen=True)
class OpenAISession:
    """A session OpenAI created."""

    id: str
    client_secret: str
    expires_at: datetime
    status: str


@dataclass(frozen=True)
class HostedPage:
    """A page of OpenAI ChatKit objects, as OpenAI returned them."""

    data: list[dict[str, Any]]
    has_more: bool
    next_after: str


class HostedChatKit:
    """OpenAI's ChatKit API (sessions and threads) through the official ``openai`` client.

    Args:
        client: An ``AsyncOpenAI`` client (its base URL is ``OPENAI_BASE_URL`` when set).
    """

    def __init__(self, client: AsyncOpenAI) -> None:
        self._client = client

    @classmethod
    def from_env(cls) -> HostedChatKit | None:
        """A client from ``OPENAI_API_KEY`` (and ``OPENAI_BASE_URL``), or None without a key."""
        key = os.environ.get("OPENAI_API_KEY")
        if not key:
            return None
        timeout = env_float("SWITCHBOARD_CHATKIT_API_TIMEOUT_SECONDS", 10.0)
        return cls(AsyncOpenAI(api_key=key, timeout=timeout, max_retries=0))

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.close()

    async def create_session(self, *, user: str, workflow: HostedWorkflow) -> OpenAISession:
        """Create an OpenAI ChatKit session for ``user`` running ``workflow``."""
        with _mapped("creating the ChatKit session"):
            created = await self._client.beta.chatkit.sessions.create(
                user=user,
                workflow=workflow.workflow_param(),  # type: ignore[arg-type]
                chatkit_configuration=workflow.configuration_param(),  # type: ignore[arg-type]
                expires_after={"anchor": "created_at", "seconds": workflow.expires_seconds},
                rate_limits={"max_requests_per_1_minute": workflow.max_requests_per_minute},
            )
        return OpenAISession(
            id=created.id,
            client_secret=created.client_secret,
            expires_at=datetime.fromtimestamp(created.expires_at, UTC),
            status=created.status,
        )

    async def cancel_session(self, openai_session_id: str) -> None:
        """Cancel an OpenAI ChatKit session; one OpenAI no longer knows counts as cancelled."""
        try:
            with _mapped("cancelling the ChatKit session", gone_on_404=True):
                await self._client.beta.chatkit.sessions.cancel(openai_session_id)
        except _Gone:
            log.info("OpenAI no longer knows ChatKit session %s; counted as cancelled", openai_session_id)

    async def list_threads(self, *, user: str, limit: int, after: str) -> HostedPage:
        """``user``'s ChatKit threads at OpenAI, newest first."""
        with _mapped("listing ChatKit threads"):
            page = await self._client.beta.chatkit.threads.list(
                user=user, limit=limit, order="desc", after=after or omit
            )
        return _page([thread.model_dump(mode="json") for thread in page.data], bool(page.has_more))

    async def list_items(self, *, user: str, thread_id: str, limit: int, after: str) -> HostedPage:
        """A thread's items at OpenAI, oldest first; another user's thread is ``NotFound``."""
        try:
            with _mapped("reading the ChatKit thread", gone_on_404=True):
                thread = await self._client.beta.chatkit.threads.retrieve(thread_id)
                if thread.user != user:
                    raise _Gone
                page = await self._client.beta.chatkit.threads.list_items(
                    thread_id, limit=limit, order="asc", after=after or omit
                )
        except _Gone:
            raise NotFound(f"thread {thread_id!r} not found") from None
        return _page([item.model_dump(mode="json") for item in page.data], bool(page.has_more))


def _page(data: list[dict[str, Any]], has_more: bool) -> HostedPage:
    next_after = str(data[-1].get("id", "")) if data and has_more else ""
    return HostedPage(data=data, has_more=bool(has_more), next_after=next_after)


class _Gone(Exception):
    """OpenAI answered 404 for an object of ours."""


class _mapped:
    """Turn the ``openai`` client's errors into Switchboard's (see the module's decisions)."""

    def __init__(self, doing: str, *, gone_on_404: bool = False) -> None:
        self._doing = doing
        self._gone_on_404 = gone_on_404

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        if error is None or not isinstance(error, openai.OpenAIError):
            return
        if isinstance(error, openai.RateLimitError):
            raise Unavailable(
                f"OpenAI's ChatKit API is rate-limiting this deployment ({self._doing}); retry later",
                retry_after=_retry_after(error.response.headers),
            ) from error
        if self._gone_on_404 and isinstance(error, openai.NotFoundError):
            raise _Gone from error
        if isinstance(error, openai.APIStatusError) and error.status_code < 500:
            reason = _reason(error)
            log.warning("OpenAI refused %s: %s %s", self._doing, error.status_code, reason)
            raise UpstreamRefused(
                f"OpenAI's ChatKit API refused {self._doing} ({error.status_code}: {reason}); "
                "check OPENAI_API_KEY and the workflow id"
            ) from error
        if isinstance(error, openai.APIStatusError):
            log.warning("OpenAI failed %s: %s", self._doing, error.status_code)
            raise Unavailable(
                f"OpenAI's ChatKit API failed {self._doing} ({error.status_code}); retry in a moment"
            ) from error
        log.warning("OpenAI unreachable %s: %s", self._doing, error)
        raise Unavailable(f"OpenAI's ChatKit API did not answer ({self._doing}); retry in a moment") from error


def _reason(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])[:300]
    return str(error.message)[:300]


def _retry_after(headers: Any) -> float:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return DEFAULT_RETRY_AFTER


def check_page(limit: int, *, default: int, after: str) -> tuple[int, str]:
    """A hosted page request's limit (1-100) and cursor, validated."""
    if limit < 0 or limit > 100:
        raise InvalidArgument("limit must be from 1 to 100 (0: the default)")
    if after and (len(after) > 255 or not after.replace("_", "").replace("-", "").isalnum()):
        raise InvalidArgument("after must be an id from the previous page")
    return limit or default, after
