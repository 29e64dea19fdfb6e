"""A fake OpenAI-compatible server for tests: Chat Completions and the Responses API, streamed
(text in chunks, tool calls with their arguments in pieces) or not, on a free localhost port.

It answers deterministically from the last input, and keeps every request body it received
(``requests``) for tests to assert on what the model was sent:

- the output of a tool call -> ``Tool result: <output>``
- the title agent's request (its instructions name conversations) -> ``"Title: Fake <first words>."``
- a request without tools that is not streamed (a summary) -> ``FAKE SUMMARY of N lines``
- ``add <title>`` -> a call of ``add_task``; ``list`` -> ``list_tasks``
- a message naming ``billing`` / ``triage`` -> the handoff tool to that agent, when offered
- anything else -> ``Echo: <text>``, with ``(N images)`` when the message has images
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.conftest import free_port


@dataclass
class FakeRequest:
    """A request the fake received: its API (``chat`` or ``responses``) and JSON body."""

    api: str
    body: dict[str, Any]

    @property
    def streamed(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def text(self) -> str:
        """The whole body as text, for ``in`` checks."""
        return json.dumps(self.body)


@dataclass
class FakeOpenAI:
    """The running fake: its base URL (``OPENAI_BASE_URL``) and what it received."""

    url: str
    requests: list[FakeRequest] = field(default_factory=list)
    refuse_images: bool = False  # answer 400 to a request with image input, as a text-only server does

    def answered(self, api: str) -> list[FakeRequest]:
        """The streamed requests of one API (the turns' model calls)."""
        return [r for r in self.requests if r.api == api and r.streamed]


@dataclass
class _Decision:
    text: str = ""
    tool: str = ""
    arguments: str = "{}"


def _content_text(content: Any) -> tuple[str, int]:
    """A message's typed text (attachment parts left out) and how many images it has."""
    if isinstance(content, str):
        return content, 0
    texts, images = [], 0
    for part in content or []:
        kind = part.get("type")
        if kind in ("image_url", "input_image"):
            images += 1
        elif kind in ("text", "input_text") and not str(part.get("text", "")).startswith("[Attachment"):
            texts.append(str(part.get("text", "")))
    return "".join(texts), images


def _decide(last: dict[str, Any], tools: list[str], *, summary: bool, prompt: str, body: dict[str, Any]) -> _Decision:
    if "You name conversations" in json.dumps(body):
        # Wrapped and punctuated the way models answer, for the runner to clean.
        return _Decision(text='"Title: Fake ' + " ".join(prompt.split()[:3]) + '."')
    if summary:
        return _Decision(text=f"FAKE SUMMARY of {prompt.count(chr(10)) + 1} lines")
    if last.get("role") == "tool" or last.get("type") == "function_call_output":
        output = last.get("content") if last.get("role") == "tool" else last.get("output")
        return _Decision(text=f"Tool result: {str(output)[:200]}")
    text, images = _content_text(last.get("content"))
    words = text.strip()
    lowered = words.lower()
    if lowered.startswith("add ") and "add_task" in tools:
        return _Decision(tool="add_task", arguments=json.dumps({"title": words[4:]}))
    if lowered.startswith("list") and "list_tasks" in tools:
        return _Decision(tool="list_tasks")
    for agent in ("billing", "triage"):
        if agent in lowered and f"transfer_to_{agent}" in tools:
            return _Decision(tool=f"transfer_to_{agent}")
    return _Decision(text=f"Echo: {words}" + (f" ({images} images)" if images else ""))


def _chunks(text: str, size: int = 7) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _sse(data: Any) -> str:
    return f"data: {json.dumps(data)}\n\n"


def _refused(state: FakeOpenAI, body: dict[str, Any]) -> Response | None:
    if state.refuse_images and ('"image_url"' in json.dumps(body) or '"input_image"' in json.dumps(body)):
        error = {"message": "this model does not take image input", "type": "invalid_request_error"}
        return JSONResponse({"error": error}, status_code=400)
    return None


async def _chat(request: Request) -> Response:
    body = await request.json()
    state: FakeOpenAI = request.app.state.fake
    state.requests.append(FakeRequest("chat", body))
    if (refused := _refused(state, body)) is not None:
        return refused
    tools = [t["function"]["name"] for t in body.get("tools") or []]
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    prompt = _content_text(last.get("content"))[0]
    decision = _decide(last, tools, summary=not tools and not body.get("stream"), prompt=prompt, body=body)
    model = body.get("model", "fake")
    if not body.get("stream"):
        message: dict[str, Any] = {"role": "assistant", "content": decision.text or None}
        if decision.tool:
            message["tool_calls"] = [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": decision.tool, "arguments": decision.arguments},
                }
            ]
        return JSONResponse(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {"index": 0, "message": message, "finish_reason": "tool_calls" if decision.tool else "stop"}
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        return _sse(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
        )

    async def stream() -> AsyncIterator[str]:
        if decision.tool:
            call_id = f"call_{len(state.requests)}"
            yield chunk(
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": call_id,
                            "type": "function",
                            "function": {"name": decision.tool, "arguments": ""},
                        }
                    ],
                }
            )
            for piece in _chunks(decision.arguments, 4):
                yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
            yield chunk({}, "tool_calls")
        else:
            yield chunk({"role": "assistant", "content": ""})
            for piece in _chunks(decision.text):
                yield chunk({"content": piece})
            yield chunk({}, "stop")
        yield "data: [DONE]\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream")


def _usage() -> dict[str, Any]:
    return {
        "input_tokens": 1,
        "output_tokens": 1,
        "total_tokens": 2,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0},
    }


def _response(output: list[dict[str, Any]], model: str, status: str) -> dict[str, Any]:
    return {
        "id": "resp_fake",
        "object": "response",
        "created_at": int(time.time()),
        "model": model,
        "output": output,
        "status": status,
        "tool_choice": "auto",
        "tools": [],
        "parallel_tool_calls": True,
        "top_p": None,
        "usage": _usage(),
    }


async def _responses(request: Request) -> Response:
    body = await request.json()
    state: FakeOpenAI = request.app.state.fake
    state.requests.append(FakeRequest("responses", body))
    if (refused := _refused(state, body)) is not None:
        return refused
    tools = [t.get("name", "") for t in body.get("tools") or []]
    items = body.get("input")
    items = [{"role": "user", "content": items}] if isinstance(items, str) else items or []
    last = items[-1] if items else {}
    prompt = _content_text(last.get("content"))[0]
    decision = _decide(last, tools, summary=not tools and not body.get("stream"), prompt=prompt, body=body)
    model = body.get("model", "fake")
    number = len(state.requests)
    if decision.tool:
        item: dict[str, Any] = {
            "type": "function_call",
            "id": f"fc_{number}",
            "call_id": f"call_{number}",
            "name": decision.tool,
            "arguments": decision.arguments,
            "status": "completed",
        }
    else:
        item = {
            "type": "message",
            "id": f"msg_{number}",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": decision.text, "annotations": []}],
        }
    if not body.get("stream"):
        return JSONResponse(_response([item], model, "completed"))

    async def stream() -> AsyncIterator[str]:
        seq = iter(range(10_000))
        yield _sse(
            {"type": "response.created", "response": _response([], model, "in_progress"), "sequence_number": next(seq)}
        )
        if decision.tool:
            started = {**item, "arguments": "", "status": "in_progress"}
            yield _sse(
                {"type": "response.output_item.added", "output_index": 0, "item": started, "sequence_number": next(seq)}
            )
            for piece in _chunks(decision.arguments, 4):
                yield _sse(
                    {
                        "type": "response.function_call_arguments.delta",
                        "item_id": item["id"],
                        "output_index": 0,
                        "delta": piece,
                        "sequence_number": next(seq),
                    }
                )
            yield _sse(
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": item["id"],
                    "output_index": 0,
                    "arguments": decision.arguments,
                    "name": decision.tool,
                    "sequence_number": next(seq),
                }
            )
        else:
            started = {**item, "content": [], "status": "in_progress"}
            yield _sse(
                {"type": "response.output_item.added", "output_index": 0, "item": started, "sequence_number": next(seq)}
            )
            empty = {"type": "output_text", "text": "", "annotations": []}
            where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
            yield _sse({"type": "response.content_part.added", **where, "part": empty, "sequence_number": next(seq)})
            for piece in _chunks(decision.text):
                yield _sse(
                    {
                        "type": "response.output_text.delta",
                        **where,
                        "delta": piece,
                        "logprobs": [],
                        "sequence_number": next(seq),
                    }
                )
            yield _sse(
                {
                    "type": "response.output_text.done",
                    **where,
                    "text": decision.text,
                    "logprobs": [],
                    "sequence_number": next(seq),
                }
            )
            yield _sse(
                {
                    "type": "response.content_part.done",
                    **where,
                    "part": item["content"][0],
                    "sequence_number": next(seq),
                }
            )
        yield _sse({"type": "response.output_item.done", "output_index": 0, "item": item, "sequence_number": next(seq)})
        yield _sse(
            {
                "type": "response.completed",
                "response": _response([item], model, "completed"),
                "sequence_number": next(seq),
            }
        )

    return StreamingResponse(stream(), media_type="text/event-stream")


@contextmanager
def fake_openai() -> Iterator[FakeOpenAI]:
    """Run the fake on a free port (in a thread of its own) while the block runs."""
    port = free_port()
    fake = FakeOpenAI(url=f"http://127.0.0.1:{port}/v1")
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", _chat, methods=["POST"]),
            Route("/v1/responses", _responses, methods=["POST"]),
        ]
    )
    app.state.fake = fake
    with serve_app(app, port, "fake-openai"):
        yield fake


@contextmanager
def serve_app(app: Starlette, port: int, name: str) -> Iterator[None]:
    """Serve a Starlette app of a test's fake on ``port`` (in a thread of its own) while the block runs."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise AssertionError(f"the {name} server did not start")
        time.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)
