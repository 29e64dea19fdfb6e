"""Runs through a real gRPC server: streaming, tools, failures, handoffs, escalation, history."""

from __future__ import annotations

import json

import pytest
from agents.testing import ScriptedModel, assistant_message, function_call

from services.agent_runner.offline_model import OFFLINE_NOTICE
from services.agent_runner.service import RunnerLimits
from switchboard.errors import NotFound
from tests.agent_runner.conftest import Ctx, RunningRunner, assistant_text, new_thread, run_to_end, user_message


async def test_a_reply_streams_as_deltas_is_saved_and_titles_the_thread(runner: RunningRunner, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    thread = await new_thread(runner, ctx)
    runner.models.current = ScriptedModel([[assistant_message("Hello there, how can I help?")]])
    events = await run_to_end(runner, ctx, thread.id, "hi, what can you do for me today")
    types = [e.type for e in events]
    assert types[:2] == ["thread.item.done", "stream_options"]  # the user's message, then the answer
    added = types.index("thread.item.added")
    assert added < types.index("thread.item.updated") < types.index("thread.item.done", added)
    deltas = [
        e.update.delta for e in events if e.type == "thread.item.updated" and e.update.type.endswith("text_delta")
    ]
    assert "".join(deltas) == "Hello there, how can I help?"
    assert events[-1].type == "thread.updated"
    assert events[-1].thread.title == "Hi, what can you do for me today"
    stored = await runner.thread_store.store.load_thread_items(thread.id, None, 10, "asc", ctx)
    assert [i.type for i in stored.data] == ["user_message", "assistant_message"]
    assert (await runner.thread_store.store.load_thread(thread.id, ctx)).title == "Hi, what can you do for me today"


async def test_a_tool_call_shows_a_running_item_then_a_done_item_that_is_persisted(
    runner: RunningRunner, user_id: str
) -> None:
    ctx = Ctx(user_id=user_id)
    thread = await new_thread(runner, ctx)
    runner.models.use_offline()
    events = await run_to_end(runner, ctx, thread.id, "add buy oat milk")
    added = [e.item for e in events if e.type == "thread.item.added" and e.item.type == "task"]
    done = [e.item for e in events if e.type == "thread.item.done" and e.item.type == "task"]
    assert added[0].task.title == "Running add_task" and added[0].task.status_indicator == "loading"
    assert done[0].id == added[0].id and done[0].task.title == "add_task done"
    assert "buy oat milk" in (done[0].task.content or "")
    assert "Added “buy oat milk”" in assistant_text(events)
    stored = await runner.thread_store.store.load_item(thread.id, done[0].id, ctx)
    assert stored.task.title == "add_task done"  # type: ignore[union-attr]


async def test_a_failing_tool_shows_a_failed_item_and_the_answer_still_ends(
    runner: RunningRunner, user_id: str
) -> None:
    ctx = Ctx(user_id=user_id)
    thread = await new_thread(runner, ctx)
    runner.models.use_offline()
    events = await run_to_end(runner, ctx, thread.id, "complete task_doesnotexist")
    done = [e.item for e in events if e.type == "thread.item.done" and e.item.type == "task"]
    assert done[0].task.title == "complete_task failed"
    assert "no task 'task_doesnotexist'" in (done[0].task.content or "")
    assert "didn't work" in assistant_text(events)
    assert not [e for e in events if e.type == "error"]


async def test_a_model_error_becomes_an_error_event_and_the_thread_stays_usable(
    runner: RunningRunner, user_id: str
) -> None:
    ctx = Ctx(user_id=user_id)
    thread = await new_thread(runner, ctx)
    runner.models.current = ScriptedModel([RuntimeError("upstream exploded")])
    events = await run_to_end(runner, ctx, thread.id, "hello")
    errors = [e for e in events if e.type == "error"]
    assert len(errors) == 1 and errors[0].allow_retry
    assert "upstream exploded" in (errors[0].message or "")
    runner.models.current = ScriptedModel([[assistant_message("Back again.")]])
    assert assistant_text(await run_to_end(runner, ctx, thread.id, "hello again")) == "Back again."


async def test_triage_hands_off_to_billing_and_the_handoff_is_visible(runner: RunningRunner, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    thread = await new_thread(runner, ctx)
    model = ScriptedModel(
        [[function_call("transfer_to_billing", "{}", call_id="call_1")], [assistant_message("Billing here.")]]
    )
    runner.models.current = model
    events = await run_to_end(runner, ctx, thread.id, "my invoice is wrong")
    handoffs = [e.item for e in events if e.type == "thread.item.done" and e.item.type == "task"]
    assert handoffs[0].task.title == "Handed off to Billing"
    assert assistant_text(events) == "Billing here."
    assert model.last_call is not None and "invoices, payments" in (model.last_call.system_instructions or "")


async def test_asking_for_a_human_opens_an_escalation_and_tells_the_user(runner: RunningRunner, user_id: str) -> None:
    ctx = Ctx(user_id=user_id, session_id="sess-1")
    thread = await new_thread(runner, ctx)
    runner.models.use_offline()
    events = await run_to_end(runner, ctx, thread.id, "I want to talk to a human please")
    opened = [e for e in runner.escalations.opened if e.thread_id == thread.id]
    assert len(opened) == 1
    assert opened[0].user_id == user_id and opened[0].session_id == "sess-1"
    assert "talk to a human" in opened[0].reason
    notices = [e.item.task.title for e in events if e.type == "thread.item.done" and e.item.type == "task"]
    assert notices.count("A person from our team will reply here") == 1  # beside the tool call's own item
    assert "person from our team to take over" in assistant_text(events)  # the model's words, from the tool's JSON
    handler = await runner.thread_store.store.load_handler(thread.id, ctx)
    assert (handler.kind, handler.escalation_id) == ("waiting", opened[0].id)


async def test_history_past_the_window_is_summarized_not_dropped(runner: RunningRunner, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    thread = await new_thread(runner, ctx)
    for i in range(6):
        await runner.thread_store.store.add_thread_item(thread.id, user_message(thread.id, f"old message {i}"), ctx)
    # The first call writes the summary (the run's model); the second answers.
    model = ScriptedModel([[assistant_message("The user sent six old messages.")], [assistant_message("ok")]])
    runner.models.current = model
    previous = runner.service.limits
    runner.service.limits = RunnerLimits(history_items=3)
    try:
        await run_to_end(runner, ctx, thread.id, "newest")
    finally:
        runner.service.limits = previous
    assert model.first_call is not None and model.last_call is not None
    asked = json.dumps(model.first_call.input)
    assert all(f"old message {i}" in asked for i in range(6))  # read back past the window: nothing dropped
    texts = [part["text"] for item in model.last_call.input for part in item["content"]]
    assert len(texts) == 2 and texts[1] == "newest"
    assert "Conversation summary" in texts[0] and "The user sent six old messages." in texts[0]


async def test_the_offline_model_introduces_itself_once_per_thread(runner: RunningRunner, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    thread = await new_thread(runner, ctx)
    runner.models.use_offline()
    first = assistant_text(await run_to_end(runner, ctx, thread.id, "list tasks"))
    second = assistant_text(await run_to_end(runner, ctx, thread.id, "list tasks"))
    assert first.startswith(OFFLINE_NOTICE) and "no open tasks" in first
    assert OFFLINE_NOTICE not in second and "no open tasks" in second


async def test_two_users_tasks_are_kept_apart(runner: RunningRunner) -> None:
    alice, bob = Ctx(user_id="alice-tasks"), Ctx(user_id="bob-tasks")
    runner.models.use_offline()
    alice_thread, bob_thread = await new_thread(runner, alice), await new_thread(runner, bob)
    added = await run_to_end(runner, alice, alice_thread.id, "add alice's secret plan")
    task_id = next(e.item.task.content for e in added if e.type == "thread.item.done" and e.item.type == "task")
    assert task_id and "alice's secret plan" in task_id
    listed = assistant_text(await run_to_end(runner, bob, bob_thread.id, "list tasks"))
    assert "no open tasks" in listed and "secret" not in listed


async def test_an_unknown_thread_is_not_found(runner: RunningRunner, user_id: str) -> None:
    runner.models.use_offline()
    with pytest.raises(NotFound):
        await runner.client.run(
            Ctx(user_id=user_id), thread_id="thr_missing", user_message=user_message("thr_missing", "hi")
        ).started()
