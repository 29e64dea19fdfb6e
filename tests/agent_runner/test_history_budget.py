"""The history budget on a long thread, and sticky agents: what the model server receives."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from agents import OpenAIChatCompletionsModel
from agents.testing import ScriptedModel, assistant_message, function_call
from chatkit.types import AssistantMessageContent, AssistantMessageItem, ThreadItem
from openai import AsyncOpenAI

from services.agent_runner.history import HISTORY_SUMMARY_HEADER
from services.agent_runner.model_input import estimate_tokens
from services.agent_runner.service import RunnerLimits
from tests.agent_runner.conftest import Ctx, RunningRunner, assistant_text, new_thread, run_to_end, user_message
from tests.fake_openai import FakeOpenAI, fake_openai

BUDGET = 3000


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with fake_openai() as running:
        yield running


def _filler(i: int) -> str:
    return f"turn {i:03d} " + "lorem ipsum dolor sit amet " * 8


async def _long_thread(runner: RunningRunner, ctx: Ctx, items: int) -> str:
    thread = await new_thread(runner, ctx)
    start = datetime.now(UTC) - timedelta(hours=1)
    for i in range(items):
        at = start + timedelta(seconds=i)
        item: ThreadItem
        if i % 2 == 0:
            item = user_message(thread.id, _filler(i)).model_copy(update={"created_at": at})
        else:
            item = AssistantMessageItem(
                id=f"msg_a{i:04d}{thread.id[-6:]}",
                thread_id=thread.id,
                created_at=at,
                content=[AssistantMessageContent(text=_filler(i))],
            )
        await runner.thread_store.store.add_thread_item(thread.id, item, ctx)
    return thread.id


async def test_a_500_item_thread_sends_a_summary_and_the_newest_turns_within_the_budget(
    runner: RunningRunner, user_id: str, fake: FakeOpenAI
) -> None:
    ctx = Ctx(user_id=user_id)
    thread_id = await _long_thread(runner, ctx, 500)
    client = AsyncOpenAI(base_url=fake.url, api_key="fake")
    runner.models.current = OpenAIChatCompletionsModel(model="fake-model", openai_client=client)
    previous = runner.service.limits
    runner.service.limits = RunnerLimits(history_tokens=BUDGET, history_items=200)
    try:
        first = await run_to_end(runner, ctx, thread_id, "what did we say?")
        second = await run_to_end(runner, ctx, thread_id, "and now?")
    finally:
        runner.service.limits = previous
    assert assistant_text(first) == "Echo: what did we say?"
    assert assistant_text(second) == "Echo: and now?"
    summaries = [r for r in fake.requests if not r.streamed]
    assert len(summaries) >= 1  # the overflow, a part at a time, once
    asked = "".join(r.text for r in summaries)
    assert "turn 000" in asked and "turn 100" in asked  # read back to the start: nothing dropped
    turns = fake.answered("chat")
    assert len(turns) == 2
    for turn in turns:
        messages = turn.body["messages"]
        assert messages[0]["role"] == "system"
        summary = json.dumps(messages[1])
        assert HISTORY_SUMMARY_HEADER in summary and "FAKE SUMMARY" in summary
        sent = messages[2:]
        assert sent[0]["role"] == "user"  # the kept part starts at a turn
        texts = [m["content"] if isinstance(m["content"], str) else m["content"][0]["text"] for m in sent]
        assert sum(estimate_tokens(t) for t in texts) <= BUDGET
        assert len(sent) > 10  # the newest turns, not just the last message
        assert "turn 499" in texts[-2] or "turn 499" in " ".join(texts)
        assert not any("turn 000" in t for t in texts)
    # The second turn reused the summary: no new summary was written for it.
    assert len([r for r in fake.requests if not r.streamed]) == len(summaries)
    assert json.dumps(turns[0].body["messages"][1]) == json.dumps(turns[1].body["messages"][1])
    stored = await runner.thread_store.store.load_thread_items(thread_id, None, 1000, "asc", ctx)
    hidden = [i for i in stored.data if i.type == "hidden_context_item"]
    assert len(hidden) == 1 and str(hidden[0].content).startswith(HISTORY_SUMMARY_HEADER)


async def test_the_offline_model_summarizes_extractively(runner: RunningRunner, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    thread_id = await _long_thread(runner, ctx, 120)
    runner.models.use_offline()
    previous = runner.service.limits
    runner.service.limits = RunnerLimits(history_tokens=1000, history_items=50)
    try:
        events = await run_to_end(runner, ctx, thread_id, "list tasks")
    finally:
        runner.service.limits = previous
    assert "open tasks" in assistant_text(events)
    stored = await runner.thread_store.store.load_thread_items(thread_id, None, 1000, "asc", ctx)
    hidden = [i for i in stored.data if i.type == "hidden_context_item"]
    assert len(hidden) == 1
    content = str(hidden[0].content)
    assert content.startswith(HISTORY_SUMMARY_HEADER)
    assert "User: turn 000" in content  # the lines themselves: how it started
    assert len(content) <= 1000 + 200


async def test_the_agent_that_answered_last_keeps_the_thread_until_it_hands_back(
    runner: RunningRunner, user_id: str
) -> None:
    ctx = Ctx(user_id=user_id)
    thread = await new_thread(runner, ctx)
    model = ScriptedModel(
        [
            [function_call("transfer_to_billing", "{}", call_id="call_1")],
            [assistant_message("Billing here.")],
            [assistant_message("Still billing.")],
            [function_call("transfer_to_triage", "{}", call_id="call_2")],
            [assistant_message("Triage again.")],
            [assistant_message("Front desk.")],
        ]
    )
    runner.models.current = model
    await run_to_end(runner, ctx, thread.id, "my invoice is wrong")
    stored = await runner.thread_store.store.load_thread(thread.id, ctx)
    assert stored.metadata.get("agent_id") == "billing"
    second = await run_to_end(runner, ctx, thread.id, "and the date?")
    assert model.last_call is not None and "invoices, payments" in (model.last_call.system_instructions or "")
    progress = [e.text for e in second if e.type == "progress_update"]
    assert "Billing is answering" in progress  # the user sees who answers
    assert assistant_text(second) == "Still billing."
    third = await run_to_end(runner, ctx, thread.id, "something else now")
    assert "Handed off to Triage" in [
        e.item.task.title for e in third if e.type == "thread.item.done" and e.item.type == "task"
    ]
    fourth = await run_to_end(runner, ctx, thread.id, "hello")
    assert model.last_call is not None and "front desk" in (model.last_call.system_instructions or "")
    assert not [e for e in fourth if e.type == "progress_update" and "answering" in e.text]
    assert (await runner.thread_store.store.load_thread(thread.id, ctx)).metadata.get("agent_id") == "triage"
