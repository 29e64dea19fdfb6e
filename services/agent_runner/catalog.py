"""Agents SDK objects for one run, from the agents file.

MCP servers are opened per run: the built-in task server is bound to the
run's user, and each external server gets its own session, closed when the
run ends. A server that cannot be reached is left out with a notice instead of
failing the answer.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from agents import Agent, RunContextWrapper, function_tool
from agents.mcp import MCPServer, MCPServerStdio, MCPServerStreamableHttp
from agents.mcp.server import _MCPServerWithClientSession
from agents.tool import Tool
from agents.tool_context import ToolContext
from chatkit.types import ThreadItemDoneEvent
from mcp.client._memory import InMemoryTransport
from mcp.server.mcpserver import MCPServer as McpSdkServer

from services.agent_runner.handoff import Handoffs
from services.agent_runner.models import ModelSource
from services.agent_runner.tasks import TASK_USER, TaskRepository, build_task_server
from services.agent_runner.tool_items import RunState, record_mcp_error, record_tool_failure
from switchboard.agents_file import AgentsFile, AgentSpec, McpServerSpec
from switchboard.errors import FailedPrecondition
from switchboard.principal import Principal

log = logging.getLogger(__name__)

ESCALATED_MESSAGE = (
    "I've asked a person from our team to take over. They will reply here in this chat; I won't answer"
    " while you wait. If nobody is free within {minutes} minutes, I'll be back and your request stays"
    " in their queue."
)


class InProcessMcpServer(_MCPServerWithClientSession):
    """An ``mcp`` SDK server reached over the MCP protocol through in-memory streams.

    The agent talks to it exactly as to an external server (initialize,
    list_tools, call_tool), without a socket or a process.
    """

    def __init__(self, server: McpSdkServer, *, name: str, require_approval: Any = None) -> None:
        super().__init__(
            cache_tools_list=True,
            require_approval=require_approval,
            client_session_timeout_seconds=30,
            failure_error_function=record_tool_failure,
            custom_data_extractor=record_mcp_error,
            use_structured_content=True,
        )
        self._server = server
        self._name = name

    def create_streams(self) -> AbstractAsyncContextManager[Any]:
        """In-memory streams to the server, which runs while they are open."""
        return InMemoryTransport(self._server)

    @property
    def name(self) -> str:
        """The server's name."""
        return self._name


def external_mcp_server(spec: McpServerSpec, require_approval: Any = None) -> MCPServer:
    """The Agents SDK client of an external MCP server (``require_approval``: tool name -> "always")."""
    common: dict[str, Any] = {
        "name": spec.name,
        "require_approval": require_approval,
        "cache_tools_list": True,
        "client_session_timeout_seconds": spec.timeout_seconds,
        "failure_error_function": record_tool_failure,
        "custom_data_extractor": record_mcp_error,
    }
    if spec.command:
        return MCPServerStdio(params={"command": spec.command, "args": list(spec.args), "env": spec.env}, **common)
    return MCPServerStreamableHttp(
        params={"url": spec.url or "", "headers": spec.headers, "timeout": spec.timeout_seconds}, **common
    )


ASK_USER = "ask_user"


def ask_user_tool() -> Tool:
    """``ask_user(question, options)``: the user picks an option (a ChatKit structured input).

    The call always pauses the run (the SDK's approval interruption); the runner shows the
    question, and the user's answer resumes the run with the call approved: the tool then
    returns the answer it finds in the run's context.
    """

    @function_tool(name_override=ASK_USER, failure_error_function=record_tool_failure, needs_approval=True)
    async def ask_user(ctx: ToolContext[RunState], question: str, options: list[str]) -> str:
        """Ask the user to choose one of a few options, instead of guessing. Wait for the answer.

        Args:
            question: The question, one short sentence.
            options: Two to six short options.
        """
        answer = ctx.context.answers.get(ctx.tool_call_id)
        if answer is None:
            return json.dumps({"answer": None, "note": "the user has not answered"})
        return json.dumps({"question": question, "answer": answer})

    return ask_user


def escalate_tool(handoffs: Handoffs, *, needs_approval: bool = False) -> Tool:
    """``escalate_to_human(reason)``: the thread waits for a person (an escalation in the operators' queue)."""

    @function_tool(
        name_override="escalate_to_human", failure_error_function=record_tool_failure, needs_approval=needs_approval
    )
    async def escalate_to_human(ctx: RunContextWrapper[RunState], reason: str) -> str:
        """Hand the conversation to a person. Use when the user asks for a human or you cannot help.

        Args:
            reason: One sentence on why a person is needed.
        """
        state: RunState = ctx.context
        reason = " ".join(reason.split())[:2000] or "the user asked for a person"
        view, shown = await handoffs.escalate(state.principal, state.chatkit.thread.id, reason)
        for item in shown:
            await state.chatkit.stream(ThreadItemDoneEvent(item=item))  # the notice, in this answer's stream
        state.escalated = True
        minutes = max(1, round(handoffs.settings.timeout_seconds / 60))
        # JSON, which a model reads as data (the SDK would send a dict as its Python repr).
        return json.dumps(
            {
                "escalated": True,
                "escalation_id": view.handler.escalation_id,
                "handled_by": view.handler.kind,
                "message": ESCALATED_MESSAGE.format(minutes=minutes),
            }
        )

    return escalate_to_human


@dataclass
class RunAgents:
    """The starting agent of a run and what its MCP servers could not do."""

    starting: Agent[RunState]
    notices: list[str]
    ids: dict[int, str] = field(default_factory=dict)  # id() of each built agent -> its id in the agents file

    def agent_id(self, agent: object) -> str | None:
        """The agents-file id of an agent of this run (the one that answered last), or None."""
        return self.ids.get(id(agent))


class AgentCatalog:
    """Builds the agents of a run.

    Args:
        agents: The agents file.
        models: Where models come from.
        tasks: The task repository, for the built-in task server.
        handoffs: Where ``escalate_to_human`` hands threads to people.
        external_server: Builds clients of external MCP servers (tests swap it).
    """

    def __init__(
        self,
        agents: AgentsFile,
        models: ModelSource,
        tasks: TaskRepository,
        handoffs: Handoffs,
        external_server: Callable[[McpServerSpec, Any], MCPServer] = external_mcp_server,
    ) -> None:
        self.agents = agents
        self.models = models
        self._tasks = tasks
        self._task_server = build_task_server(tasks)  # once: each run binds its user (TASK_USER)
        # MCP tools named in the agents file's needs_approval wait for a click on a card.
        self._approvals = {name: "always" for name in agents.needs_approval} or None
        self._tools = {
            "escalate_to_human": escalate_tool(handoffs, needs_approval="escalate_to_human" in agents.needs_approval),
            ASK_USER: ask_user_tool(),
        }
        self._external_server = external_server

    def spec(self, agent_id: str | None) -> AgentSpec:
        """The spec of an agent (None: the default).

        Raises:
            InvalidArgument: there is no such agent.
            FailedPrecondition: the agent is an OpenAI-hosted workflow (its turns run at OpenAI).
        """
        spec = self.agents.agent(agent_id)
        if spec.workflow is not None:
            raise FailedPrecondition(
                f"agent {spec.id!r} is an OpenAI-hosted ChatKit workflow: its conversations run at OpenAI "
                "(start a hosted session with POST /chatkit/sessions), not in agent_runner"
            )
        return spec

    async def build(
        self, spec: AgentSpec, principal: Principal, stack: AsyncExitStack, *, announce_offline: bool
    ) -> RunAgents:
        """The agent graph reachable from ``spec``, with MCP servers connected on ``stack``."""
        notices: list[str] = []
        servers: dict[str, MCPServer] = {}
        reachable = self._reachable(spec)
        # The run's task (and the in-process MCP session it opens) acts for this user only.
        TASK_USER.set(principal.user_id)
        for name in sorted({s for a in reachable for s in a.mcp_servers}):
            server: MCPServer
            if name == "tasks":
                server = InProcessMcpServer(self._task_server, name="tasks", require_approval=self._approvals)
            else:
                server = self._external_server(self.agents.mcp_servers[name], self._approvals)
            try:
                await server.connect()  # type: ignore[no-untyped-call]
            except Exception as error:
                log.warning("MCP server %s is unreachable: %s", name, error)
                notices.append(f"The tools of “{name}” are unavailable right now ({error}); answering without them.")
                with contextlib.suppress(Exception):
                    await server.cleanup()  # type: ignore[no-untyped-call]
                continue
            stack.push_async_callback(server.cleanup)
            servers[name] = server
        built: dict[str, Agent[RunState]] = {}
        for agent_spec in reachable:
            built[agent_spec.id] = Agent[RunState](
                name=agent_spec.name,
                instructions=agent_spec.instructions,
                model=self.models.model_for(agent_spec.model, announce_offline=announce_offline),
                mcp_servers=[servers[s] for s in agent_spec.mcp_servers if s in servers],
                tools=[tool for name, tool in self._tools.items() if name in agent_spec.tools],
                handoff_description=agent_spec.instructions.split(".")[0][:200],
            )
        for agent_spec in reachable:
            built[agent_spec.id].handoffs = [built[h] for h in agent_spec.handoffs]
        return RunAgents(
            starting=built[spec.id], notices=notices, ids={id(agent): agent_id for agent_id, agent in built.items()}
        )

    def _reachable(self, spec: AgentSpec) -> list[AgentSpec]:
        seen: dict[str, AgentSpec] = {}
        pending = [spec]
        while pending:
            current = pending.pop()
            if current.id in seen:
                continue
            seen[current.id] = current
            pending.extend(self.agents.agents[h] for h in current.handoffs)
        return list(seen.values())
