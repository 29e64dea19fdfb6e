"""The agents file: which agents exist, their instructions, tools and handoffs.

A TOML file (``SWITCHBOARD_AGENTS_FILE``, default: ``agents.toml`` beside this
module) parsed once at start-up into plain, validated specs. agent_runner builds
Agents SDK objects from them (``services.agent_runner.catalog``); session_api
reads which agents are OpenAI-hosted ChatKit workflows (``[agents.<id>.workflow]``):
their sessions are created through OpenAI's ChatKit API and run at OpenAI, so
agent_runner never runs them.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from switchboard.errors import InvalidArgument

DEFAULT_AGENTS_FILE = Path(__file__).parent / "agents.toml"
BUILTIN_MCP_SERVERS = frozenset({"tasks"})
BUILTIN_TOOLS = frozenset({"escalate_to_human", "ask_user"})


# Tools that destroy data wait for the user's approval unless the agents file says otherwise.
DEFAULT_NEEDS_APPROVAL = frozenset({"delete_task"})


@dataclass(frozen=True)
class McpServerSpec:
    """An external MCP server: a stdio ``command`` or a streamable HTTP ``url``."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout_seconds: float = 10.0


WORKFLOW_ID = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")
StateValue = str | int | float | bool


@dataclass(frozen=True)
class HostedWorkflow:
    """An OpenAI ChatKit workflow (built in Agent Builder, run by OpenAI) and the ChatKit
    configuration its sessions get.

    Defaults follow OpenAI's own, except uploads (off unless asked for, as OpenAI's) and
    the expiry, which is Switchboard's session-secret lifetime so both modes refresh alike.
    """

    id: str
    version: str | None = None
    state_variables: dict[str, StateValue] = field(default_factory=dict)
    file_uploads: bool = False
    history: bool = True
    recent_threads: int | None = None
    titling: bool = True
    expires_seconds: int = 900
    max_requests_per_minute: int = 10

    def workflow_param(self) -> dict[str, Any]:
        """The ``workflow`` of ``client.beta.chatkit.sessions.create``."""
        out: dict[str, Any] = {"id": self.id}
        if self.version:
            out["version"] = self.version
        if self.state_variables:
            out["state_variables"] = dict(self.state_variables)
        return out

    def configuration_param(self) -> dict[str, Any]:
        """The ``chatkit_configuration`` of ``sessions.create``."""
        history: dict[str, Any] = {"enabled": self.history}
        if self.recent_threads is not None:
            history["recent_threads"] = self.recent_threads
        return {
            "file_upload": {"enabled": self.file_uploads},
            "history": history,
            "automatic_thread_titling": {"enabled": self.titling},
        }


def parse_workflow(raw: Any, where: str) -> HostedWorkflow:
    """Validate a ``workflow`` table (or a bare workflow id string).

    Raises:
        InvalidArgument: a field is missing or of the wrong type or range.
    """
    if isinstance(raw, str):
        raw = {"id": raw}
    if not isinstance(raw, dict):
        raise InvalidArgument(f"{where} must be a workflow id or a table with 'id'")
    unknown = set(raw) - {f.name for f in fields(HostedWorkflow)}
    if unknown:
        raise InvalidArgument(f"{where}: unknown keys {sorted(unknown)}")
    workflow_id = raw.get("id")
    if not isinstance(workflow_id, str) or not WORKFLOW_ID.match(workflow_id):
        raise InvalidArgument(f"{where} needs 'id', the workflow's id (wf_...)")
    version = raw.get("version")
    if version is not None and (not isinstance(version, str | int) or isinstance(version, bool)):
        raise InvalidArgument(f"{where} version must be a string")
    state = raw.get("state_variables") or {}
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and 0 < len(k) <= 64 and isinstance(v, StateValue) for k, v in state.items()
    ):
        raise InvalidArgument(f"{where} state_variables must map names (up to 64 characters) to plain values")

    def flag(name: str) -> bool:
        value = raw.get(name, getattr(HostedWorkflow, name))
        if not isinstance(value, bool):
            raise InvalidArgument(f"{where} {name} must be true or false")
        return value

    def number(name: str, low: int, high: int) -> int:
        value = raw.get(name, getattr(HostedWorkflow, name))
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise InvalidArgument(f"{where} {name} must be a whole number from {low} to {high}")
        return value

    recent = raw.get("recent_threads")
    if recent is not None and (not isinstance(recent, int) or isinstance(recent, bool) or recent < 1):
        raise InvalidArgument(f"{where} recent_threads must be a positive whole number")
    return HostedWorkflow(
        id=workflow_id,
        version=str(version) if version is not None else None,
        state_variables=dict(state),
        file_uploads=flag("file_uploads"),
        history=flag("history"),
        recent_threads=recent,
        titling=flag("titling"),
        expires_seconds=number("expires_seconds", 60, 86_400),
        max_requests_per_minute=number("max_requests_per_minute", 1, 10_000),
    )


@dataclass(frozen=True)
class AgentSpec:
    """One agent of the file: run by agent_runner, or (``workflow``) hosted by OpenAI."""

    id: str
    name: str
    instructions: str
    model: str | None = None
    handoffs: tuple[str, ...] = ()
    mcp_servers: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    workflow: HostedWorkflow | None = None


@dataclass(frozen=True)
class AgentsFile:
    """Every agent and external MCP server, checked for dangling references."""

    agents: dict[str, AgentSpec]
    mcp_servers: dict[str, McpServerSpec]
    default_agent: str
    needs_approval: frozenset[str] = DEFAULT_NEEDS_APPROVAL

    def agent(self, agent_id: str | None) -> AgentSpec:
        """The agent with this id, or the default for an empty id.

        Raises:
            InvalidArgument: there is no such agent.
        """
        key = agent_id or self.default_agent
        try:
            return self.agents[key]
        except KeyError:
            known = ", ".join(sorted(self.agents))
            raise InvalidArgument(f"there is no agent {key!r}; the agents are: {known}") from None


def _strings(raw: Any, where: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise InvalidArgument(f"{where} must be a list of strings")
    return tuple(raw)


def _table(raw: Any, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise InvalidArgument(f"{where} must be a table of strings")
    return dict(raw)


def parse_agents(data: dict[str, Any], *, source: str = "agents file") -> AgentsFile:
    """Validate the parsed TOML of an agents file.

    Raises:
        InvalidArgument: the file names something that does not exist, or a field has the wrong type.
    """
    servers: dict[str, McpServerSpec] = {}
    for name, raw in (data.get("mcp_servers") or {}).items():
        where = f"{source}: [mcp_servers.{name}]"
        if name in BUILTIN_MCP_SERVERS:
            raise InvalidArgument(f"{where}: {name!r} is the built-in server's name; pick another")
        if not isinstance(raw, dict) or bool(raw.get("command")) == bool(raw.get("url")):
            raise InvalidArgument(f"{where} needs exactly one of 'command' (stdio) or 'url' (streamable HTTP)")
        servers[name] = McpServerSpec(
            name=name,
            command=raw.get("command"),
            args=_strings(raw.get("args"), f"{where} args"),
            env=_table(raw.get("env"), f"{where} env"),
            url=raw.get("url"),
            headers=_table(raw.get("headers"), f"{where} headers"),
            timeout_seconds=float(raw.get("timeout_seconds", 10.0)),
        )
    agents: dict[str, AgentSpec] = {}
    for agent_id, raw in (data.get("agents") or {}).items():
        where = f"{source}: [agents.{agent_id}]"
        if not isinstance(raw, dict):
            raise InvalidArgument(f"{where} must be a table")
        workflow = parse_workflow(raw["workflow"], f"{where} workflow") if "workflow" in raw else None
        if workflow is not None:
            local = sorted(k for k in ("instructions", "model", "handoffs", "mcp_servers", "tools") if k in raw)
            if local:
                raise InvalidArgument(f"{where} is hosted by OpenAI (workflow); it cannot also have {local}")
        elif not isinstance(raw.get("instructions"), str):
            raise InvalidArgument(f"{where} needs 'instructions' (a string), or a 'workflow' hosted by OpenAI")
        agents[agent_id] = AgentSpec(
            id=agent_id,
            name=str(raw.get("name") or agent_id),
            instructions=str(raw.get("instructions") or "").strip(),
            workflow=workflow,
            model=raw.get("model"),
            handoffs=_strings(raw.get("handoffs"), f"{where} handoffs"),
            mcp_servers=_strings(raw.get("mcp_servers"), f"{where} mcp_servers"),
            tools=_strings(raw.get("tools"), f"{where} tools"),
        )
    if not agents:
        raise InvalidArgument(f"{source} defines no [agents.<id>]")
    for spec in agents.values():
        where = f"{source}: [agents.{spec.id}]"
        for target in spec.handoffs:
            if target not in agents:
                raise InvalidArgument(f"{where} hands off to {target!r}, which is not an agent")
            if agents[target].workflow is not None:
                raise InvalidArgument(f"{where} hands off to {target!r}, which OpenAI hosts: a run cannot reach it")
        for server in spec.mcp_servers:
            if server not in servers and server not in BUILTIN_MCP_SERVERS:
                raise InvalidArgument(f"{where} uses MCP server {server!r}, which is not defined")
        for tool in spec.tools:
            if tool not in BUILTIN_TOOLS:
                raise InvalidArgument(f"{where}: unknown tool {tool!r}; built-in tools: {sorted(BUILTIN_TOOLS)}")
    default = str(data.get("default_agent") or next(iter(agents)))
    if default not in agents:
        raise InvalidArgument(f"{source}: default_agent {default!r} is not an agent")
    approval = data.get("needs_approval")
    needs_approval = (
        DEFAULT_NEEDS_APPROVAL if approval is None else frozenset(_strings(approval, f"{source}: needs_approval"))
    )
    return AgentsFile(agents=agents, mcp_servers=servers, default_agent=default, needs_approval=needs_approval)


def load_agents_file(path: Path | None = None) -> AgentsFile:
    """Read and validate an agents file (the default set when ``path`` is None)."""
    target = path or DEFAULT_AGENTS_FILE
    try:
        data = tomllib.loads(target.read_text())
    except FileNotFoundError:
        raise InvalidArgument(f"the agents file {target} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise InvalidArgument(f"{target} is not valid TOML: {error}") from None
    return parse_agents(data, source=str(target))
