"""Model input: attachments as the model can read them, and a model that refuses images."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from agents import OpenAIChatCompletionsModel
from chatkit.types import ImageAttachment
from openai import AsyncOpenAI
from pydantic import AnyUrl

from services.agent_runner.model_input import ATTACHMENT_MARK, image_type, inline_text, is_text_like, media_type
from tests.agent_runner.conftest import Ctx, RunningRunner, assistant_text, new_thread, run_to_end, user_message
from tests.fake_openai import FakeOpenAI, fake_openai

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with fake_openai() as running:
        yield running


def test_media_types_are_parsed_leniently() -> None:
    assert media_type("Text/Plain; charset=UTF-8") == ("text/plain", {"charset": "UTF-8"})
    assert media_type("no type at all")[0] == ""
    assert is_text_like("application/vnd.api+json") and is_text_like("text/csv") and not is_text_like("application/pdf")


def test_images_are_recognised_by_their_bytes_not_their_name() -> None:
    assert image_type(PNG) == "image/png"
    assert image_type(b"\xff\xd8\xff\xe0rest") == "image/jpeg"
    assert image_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert image_type(b"<svg xmlns='http://www.w3.org/2000/svg'/>") is None


def test_inlined_text_is_cut_at_a_character_and_says_so() -> None:
    text, cut = inline_text("héllo wörld".encode(), None, 2)  # the cut falls inside "é"
    assert (text, cut) == ("h", True)
    assert inline_text(b"ok\x00", "no-such-charset", 100) == ("ok", False)


async def test_a_model_that_refuses_images_gets_a_note_naming_them_and_the_thread_goes_on(
    runner: RunningRunner, user_id: str, fake: FakeOpenAI
) -> None:
    ctx = Ctx(user_id=user_id)
    thread = await new_thread(runner, ctx)
    store = runner.thread_store.store
    image = ImageAttachment(
        id=f"atc_{thread.id[-10:]}", name="dot.png", mime_type="image/png", preview_url=AnyUrl("http://x/dot.png")
    )
    await store.save_attachment_content(image, PNG, ctx)
    fake.refuse_images = True
    runner.models.current = OpenAIChatCompletionsModel(
        model="text-only", openai_client=AsyncOpenAI(base_url=fake.url, api_key="fake", max_retries=0)
    )
    message = user_message(thread.id, "what is in it?").model_copy(update={"attachments": [image]})
    events = [e async for e in runner.client.run(ctx, thread_id=thread.id, user_message=message)]
    assert not [e for e in events if e.type == "error"], events
    assert assistant_text(events) == "Echo: what is in it?"
    notices = [e.message for e in events if e.type == "notice"]
    assert any("could not take the images" in n for n in notices)
    retried = fake.answered("chat")[-1].body["messages"]
    assert f"{ATTACHMENT_MARK} “dot.png”, image/png, {len(PNG)} bytes] An image; this model cannot see" in json.dumps(
        retried, ensure_ascii=False
    )
    events = await run_to_end(runner, ctx, thread.id, "and now?")  # the image stays in the history
    assert assistant_text(events) == "Echo: and now?"
