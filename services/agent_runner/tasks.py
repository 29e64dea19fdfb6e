"""The built-in task MCP server: each user's to-do list, kept in Postgres.

``build_task_server(repository, user_id)`` returns an MCP server (the ``mcp``
SDK's ``MCPServer``) whose tools act on one user's tasks. The user is bound by
whoever serves it (the agent runner, from the authenticated principal of each
run, through ``TASK_USER``; ``switchboard mcp-tasks --user``, from the operator
who starts it); no tool takes a user id, so a model cannot choose whose tasks it
reads or changes.
"""

from __future__ import annotations

import secrets
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from switchboard.errors import InvalidArgument, NotFound
from switchboard.ids import RANDOM_BYTES
from switchboard.sql import Queries

QUERIES_DIR = Path(__file__).parent / "queries"
MAX_TITLE = 500
MAX_NOTES = 4000
MAX_LIST = 200


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """One task of a user."""

    id: str
    title: str
    notes: str
    done: bool
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        """The task as the tools return it."""
        return {
            "id": self.id,
            "title": self.title,
            "notes": self.notes,
            "done": self.done,
            "created_at": self.created_at.isoformat(),
            "completed_at": self.completed_at.isoformat() if self.completed_at else None,
        }


def _record(row: Any) -> TaskRecord:
    return TaskRecord(
        id=row["id"],
        title=row["title"],
        notes=row["notes"],
        done=row["done"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        completed_at=row["completed_at"],
    )


def _clean_title(title: str) -> str:
    cleaned = " ".join(title.split())
    if not cleaned:
        raise InvalidArgument("a task needs a non-empty title")
    if len(cleaned) > MAX_TITLE:
        raise InvalidArgument(f"a task title is at most {MAX_TITLE} characters")
    return cleaned


def _clean_notes(notes: str) -> str:
    if len(notes) > MAX_NOTES:
        raise InvalidArgument(f"task notes are at most {MAX_NOTES} characters")
    return notes.strip()


class TaskRepository:
    """Users' tasks in Postgres; every query filters by the owner.

    Args:
        pool: An asyncpg pool on a migrated database.
    """

    def __init__(self, pool: asyncpg.Pool, queries: Queries | None = None) -> None:
        self._pool = pool
        self._q = queries or Queries.load(QUERIES_DIR)

    async def add_task(self, *, user_id: str, title: str, notes: str = "") -> TaskRecord:
        """Create a task."""
        task_id = f"task_{secrets.token_hex(RANDOM_BYTES)}"  # not new_id: "tsk_" is ChatKit's task *item* prefix
        row = await self._pool.fetchrow(self._q.insert_task, task_id, user_id, _clean_title(title), _clean_notes(notes))
        return _record(row)

    async def list_tasks(self, *, user_id: str, include_done: bool = False, limit: int = 50) -> list[TaskRecord]:
        """The user's tasks, oldest first."""
        rows = await self._pool.fetch(self._q.list_tasks, user_id, include_done, max(1, min(limit, MAX_LIST)))
        return [_record(r) for r in rows]

    async def update_task(
        self,
        *,
        user_id: str,
        task_id: str,
        title: str | None = None,
        notes: str | None = None,
        done: bool | None = None,
    ) -> TaskRecord:
        """Change a task.

        Raises:
            NotFound: the user has no task with this id.
        """
        row = await self._pool.fetchrow(
            self._q.update_task,
            user_id,
            task_id,
            _clean_title(title) if title is not None else None,
            _clean_notes(notes) if notes is not None else None,
            done,
        )
        if row is None:
            raise NotFound(f"there is no task {task_id!r}; list_tasks shows the ids")
        return _record(row)

    async def delete_task(self, *, user_id: str, task_id: str) -> None:
        """Delete a task.

        Raises:
            NotFound: the user has no task with this id.
        """
        if await self._pool.fetchval(self._q.delete_task, user_id, task_id) is None:
            raise NotFound(f"there is no task {task_id!r}; list_tasks shows the ids")


# The user the task tools act for, bound by the agent runner for each run.
TASK_USER: ContextVar[str] = ContextVar("switchboard_task_user")
TASK_TOOL_NAMES = ("add_task", "list_tasks", "complete_task", "update_task", "delete_task")


def build_task_server(repository: TaskRepository, user_id: str | None = None) -> MCPServer:
    """An MCP server whose tools manage one user's tasks and nobody else's.

    Args:
        repository: The tasks.
        user_id: The user, fixed (``switchboard mcp-tasks``). None: each session
            acts for the user ``TASK_USER`` names in the context the session was
            opened in; the agent runner builds the server once (building its tool
            schemas costs milliseconds) and binds the user per run. A session
            opened with no user bound fails every call: never another user's tasks.

    Tool failures a user can fix (unknown id, empty title) are returned as MCP
    tool errors with the message, so the model can relay them.
    """
    if user_id is not None and not user_id:
        raise ValueError("the task server must be bound to a user")
    server = MCPServer(
        name="tasks",
        instructions="The user's personal to-do list. Task ids look like 'task_1a2b3c4d5e6f'.",
    )

    def user() -> str:
        bound = user_id or TASK_USER.get(None)
        if not bound:
            raise ToolError("the task tools are not bound to a user")
        return bound

    async def guarded(call: Any) -> Any:
        try:
            return await call
        except (InvalidArgument, NotFound) as error:
            raise ToolError(error.message) from None

    @server.tool()
    async def add_task(title: str, notes: str = "") -> dict[str, Any]:
        """Add a task to the user's to-do list and return it (with its id)."""
        task: TaskRecord = await guarded(repository.add_task(user_id=user(), title=title, notes=notes))
        return task.to_json()

    @server.tool()
    async def list_tasks(include_done: bool = False) -> dict[str, Any]:
        """List the user's open tasks (and finished ones with include_done), oldest first."""
        tasks = await repository.list_tasks(user_id=user(), include_done=include_done)
        return {"tasks": [t.to_json() for t in tasks]}

    @server.tool()
    async def complete_task(task_id: str) -> dict[str, Any]:
        """Mark one of the user's tasks as done."""
        task: TaskRecord = await guarded(repository.update_task(user_id=user(), task_id=task_id, done=True))
        return task.to_json()

    @server.tool()
    async def update_task(
        task_id: str, title: str | None = None, notes: str | None = None, done: bool | None = None
    ) -> dict[str, Any]:
        """Change the title, notes or done state of one of the user's tasks."""
        task: TaskRecord = await guarded(
            repository.update_task(user_id=user(), task_id=task_id, title=title, notes=notes, done=done)
        )
        return task.to_json()

    @server.tool()
    async def delete_task(task_id: str) -> dict[str, Any]:
        """Delete one of the user's tasks."""
        await guarded(repository.delete_task(user_id=user(), task_id=task_id))
        return {"deleted": task_id}

    return server
