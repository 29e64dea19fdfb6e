"""A fake of OpenAI's ChatKit API for tests: sessions (create, cancel) and threads (list,
retrieve, list items), on a free localhost port, shaped as OpenAI answers.

It keeps every request (method, path, headers, JSON body) for tests to assert on what
Switchboard sent, and can be told to fail the next calls: ``fail_next.append(401)``
answers that status with OpenAI's error body (429 with ``Retry-After: 7``), and
``"hang"`` answers nothing for ``hang_seconds``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.conftest import free_port
from tests.fake_openai import serve_app

ERRORS = {
    400: ("invalid_request_error", "Invalid workflow configuration"),
    401: ("invalid_request_error", "Incorrect API key provided: sk-test***"),
    404: ("invalid_request_error", "Workflow 'wf_missing' not found"),
    429: ("rate_limit_error", "Rate limit reached for chatkit sessions"),
    500: ("server_error", "The server had an error while processing your request"),
}


@dataclass
class Received:
    """One request the fake received."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeChatKitApi:
    """The running fake: its base URL (``OPENAI_BASE_URL``), its state and what it received."""

    url: str
    requests: list[Received] = field(default_factory=list)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    threads: dict[str, dict[str, Any]] = field(default_factory=dict)
    items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    fail_next: list[int | str] = field(default_factory=list)
    hang_seconds: float = 5.0

    def received(self, method: str, path_prefix: str) -> list[Received]:
        """The requests of one kind, oldest first."""
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    def add_thread(self, user: str, title: str, messages: list[tuple[str, str]]) -> str:
        """A ChatKit thread of ``user`` with (role, text) messages, as a hosted workflow leaves one."""
        thread_id = f"cthr_{uuid.uuid4().hex[:16]}"
        now = int(time.time())
        self.threads[thread_id] = {
            "id": thread_id,
            "object": "chatkit.thread",
            "created_at": now,
            "status": {"type": "active"},
            "title": title,
            "user": user,
        }
        items = []
        for n, (role, text) in enumerate(messages):
            item: dict[str, Any] = {
                "id": f"cthi_{uuid.uuid4().hex[:16]}",
                "object": "chatkit.thread_item",
                "created_at": now + n,
                "thread_id": thread_id,
            }
            if role == "user":
                item |= {
                    "type": "chatkit.user_message",
                    "content": [{"type": "input_text", "text": text}],
                    "attachments": [],
                    "inference_options": None,
                }
            else:
                item |= {
                    "type": "chatkit.assistant_message",
                    "content": [{"type": "output_text", "text": text, "annotations": []}],
                }
            items.append(item)
        self.items[thread_id] = items
        return thread_id


def _error(status: int) -> Response:
    kind, message = ERRORS.get(status, ("server_error", "error"))
    headers = {"Retry-After": "7"} if status == 429 else None
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return JSONResponse(body, status_code=status, headers=headers)


async def _received(request: Request) -> tuple[FakeChatKitApi, Response | None]:
    fake: FakeChatKitApi = request.app.state.fake
    raw = await request.body()
    fake.requests.append(
        Received(
            method=request.method,
            path=request.url.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=json.loads(raw) if raw else {},
        )
    )
    if fake.fail_next:
        failure = fake.fail_next.pop(0)
        if failure == "hang":
            await asyncio.sleep(fake.hang_seconds)
            return fake, Response(status_code=504)
        return fake, _error(int(failure))
    return fake, None


async def _create_session(request: Request) -> Response:
    fake, failed = await _received(request)
    if failed is not None:
        return failed
    body = fake.requests[-1].body
    workflow = body["workflow"]
    config = body.get("chatkit_configuration") or {}
    seconds = (body.get("expires_after") or {}).get("seconds", 600)
    per_minute = (body.get("rate_limits") or {}).get("max_requests_per_1_minute", 10)
    session = {
        "id": f"cksess_{uuid.uuid4().hex}",
        "object": "chatkit.session",
        "client_secret": f"ek_{uuid.uuid4().hex}",
        "expires_at": int(time.time()) + int(seconds),
        "max_requests_per_1_minute": per_minute,
        "rate_limits": {"max_requests_per_1_minute": per_minute},
        "status": "active",
        "user": body["user"],
        "workflow": {
            "id": workflow["id"],
            "version": workflow.get("version"),
            "state_variables": workflow.get("state_variables"),
            "tracing": {"enabled": True},
        },
        "chatkit_configuration": {
            "automatic_thread_titling": {
                "enabled": (config.get("automatic_thread_titling") or {}).get("enabled", True)
            },
            "file_upload": {
                "enabled": (config.get("file_upload") or {}).get("enabled", False),
                "max_file_size": 512,
                "max_files": 10,
            },
            "history": {
                "enabled": (config.get("history") or {}).get("enabled", True),
                "recent_threads": (config.get("history") or {}).get("recent_threads"),
            },
        },
    }
    fake.sessions[session["id"]] = session
    return JSONResponse(session)


async def _cancel_session(request: Request) -> Response:
    fake, failed = await _received(request)
    if failed is not None:
        return failed
    session = fake.sessions.get(request.path_params["session_id"])
    if session is None:
        return _error(404)
    session["status"] = "cancelled"
    return JSONResponse(session)


def _listing(data: list[dict[str, Any]], request: Request) -> Response:
    after = request.query_params.get("after")
    if after:
        ids = [d["id"] for d in data]
        data = data[ids.index(after) + 1 :] if after in ids else []
    limit = int(request.query_params.get("limit", "20"))
    page = data[:limit]
    return JSONResponse(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(data) > limit,
        }
    )


async def _list_threads(request: Request) -> Response:
    fake, failed = await _received(request)
    if failed is not None:
        return failed
    user = request.query_params.get("user")
    threads = [t for t in fake.threads.values() if user is None or t["user"] == user]
    threads.sort(key=lambda t: t["created_at"], reverse=request.query_params.get("order", "desc") == "desc")
    return _listing(threads, request)


async def _retrieve_thread(request: Request) -> Response:
    fake, failed = await _received(request)
    if failed is not None:
        return failed
    thread = fake.threads.get(request.path_params["thread_id"])
    return JSONResponse(thread) if thread is not None else _error(404)


async def _list_items(request: Request) -> Response:
    fake, failed = await _received(request)
    if failed is not None:
        return failed
    items = fake.items.get(request.path_params["thread_id"])
    if items is None:
        return _error(404)
    ordered = items if request.query_params.get("order", "desc") == "asc" else list(reversed(items))
    return _listing(ordered, request)


@contextmanager
def fake_chatkit_api() -> Iterator[FakeChatKitApi]:
    """Run the fake on a free port (in a thread of its own) while the block runs."""
    port = free_port()
    fake = FakeChatKitApi(url=f"http://127.0.0.1:{port}/v1")
    app = Starlette(
        routes=[
            Route("/v1/chatkit/sessions", _create_session, methods=["POST"]),
            Route("/v1/chatkit/sessions/{session_id}/cancel", _cancel_session, methods=["POST"]),
            Route("/v1/chatkit/threads", _list_threads, methods=["GET"]),
            Route("/v1/chatkit/threads/{thread_id}", _retrieve_thread, methods=["GET"]),
            Route("/v1/chatkit/threads/{thread_id}/items", _list_items, methods=["GET"]),
        ]
    )
    app.state.fake = fake
    with serve_app(app, port, "fake-chatkit-api"):
        yield fake
