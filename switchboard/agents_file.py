"""The agents file: which agents exist, their instructions, tools and handoffs.

A TOML file (``SWITCHBOARD_AGENTS_FILE``, default: ``agents.toml`` beside this
module) parsed once at start-up into plain, validated specs; building Agents
SDK objects from them is ``catalog``'s job.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class AgentSpec:
    """One agent of the file."""

    id: str
    name: str
    instructions: str
    model: str | None = None
    handoffs: tuple[str, ...] = ()
    mcp_servers: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()


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
        if not isinstance(raw, dict) or not isinstance(raw.get("instructions"), str):
            raise InvalidArgument(f"{where} needs 'instructions' (a string)")
        agents[agent_id] = AgentSpec(
            id=agent_id,
            name=str(raw.get("name") or agent_id),
            instructions=raw["instructions"].strip(),
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
