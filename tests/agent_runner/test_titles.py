"""Thread titles by the model, against a fake OpenAI-compatible server on localhost (no network, no key)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from services.agent_runner.models import EnvModels, ModelConfig
from services.agent_runner.titles import TITLE_INSTRUCTIONS, clean_title, model_title


@dataclass
class FakeChatServer:
    """``POST /v1/chat/completions`` answering ``answer`` (or HTTP ``status``), recording each request body."""

    answer: str = "Booking A Flight"
    status: int = 200
    received: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def start(self) -> ThreadingHTTPServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                fake.received.append(body)
                if fake.status != 200:
                    payload: dict[str, Any] = {"error": {"message": "overloaded", "type": "server_error"}}
                else:
                    payload = {
                        "id": "chatcmpl-1",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body.get("model", ""),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": fake.answer},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
                    }
                data = json.dumps(payload).encode()
                self.send_response(fake.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        return httpd


@pytest.fixture
def chat() -> Iterator[FakeChatServer]:
    server = FakeChatServer()
    httpd = server.start()
    yield server
    httpd.shutdown()
    httpd.server_close()


def _models(url: str) -> EnvModels:
    return EnvModels(ModelConfig(default="openai:title-test", api_key=None, base_url=url))


async def test_the_model_names_the_thread_from_the_first_message(chat: FakeChatServer) -> None:
    chat.answer = '"booking a flight to Lisbon."'
    models = _models(chat.url)
    try:
        title = await model_title(models, "hi, I need to get to Lisbon next Tuesday, cheapest please")
    finally:
        await models.close()
    assert title == "Booking a flight to Lisbon"
    [request] = chat.received
    assert request["model"] == "title-test"
    assert request["messages"][0] == {"role": "system", "content": TITLE_INSTRUCTIONS}
    assert "Lisbon next Tuesday" in json.dumps(request["messages"][1])
    assert not request.get("tools")


async def test_a_failing_model_leaves_the_first_message_title(chat: FakeChatServer) -> None:
    chat.status = 500
    models = _models(chat.url)
    try:
        assert await model_title(models, "what is my balance") is None
    finally:
        await models.close()
    assert chat.received, "the model was asked"


async def test_the_offline_model_and_an_empty_message_make_no_call(chat: FakeChatServer) -> None:
    offline = EnvModels(ModelConfig(default="offline", api_key=None, base_url=None))
    assert await model_title(offline, "anything") is None
    models = _models(chat.url)
    try:
        assert await model_title(models, "   ") is None
    finally:
        await models.close()
    assert chat.received == []


@pytest.mark.parametrize(
    ("answer", "title"),
    [
        ("Title: refund for a late order", "Refund for a late order"),
        ("  **Quarterly numbers**  \nbecause you asked about them", "Quarterly numbers"),
        ("one two three four five six seven eight nine ten", "One two three four five six seven eight…"),
        ("x" * 100, "x" * 59 + "…"),
        ("...", None),
        ("", None),
        (None, None),
    ],
)
def test_an_answer_is_cleaned_into_a_short_title(answer: object, title: str | None) -> None:
    assert clean_title(answer) == (title[0].upper() + title[1:] if title else None)
