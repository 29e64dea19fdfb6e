"""Action cards at the runner: a tool that needs approval pauses the run durably in
Postgres; a click resumes it on any replica, even a new one."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from services.agent_runner.approvals import APPROVE_ACTION, REJECT_ACTION
from services.agent_runner.tasks import TaskRepository
from switchboard.errors import AlreadyExists, FailedPrecondition, NotFound
from tests.agent_runner.conftest import Ctx, RunningRunner, assistant_text, new_thread, start_runner, user_message


async def _task(runner: RunningRunner, user: str, title: str) -> str:
    repository: TaskRepository = runner.service.catalog._tasks
    return (await repository.add_task(user_id=user, title=title)).id


async def _ask_to_delete(runner: RunningRunner, ctx: Ctx, thread_id: str, task_id: str) -> tuple[str, list[Any]]:
    stream = runner.client.run(ctx, thread_id=thread_id, user_message=user_message(thread_id, f"delete task {task_id}"))
    events = [e async for e in stream]
    assert stream.status == "waiting_approval", [e.type for e in events]
    cards = [e.item for e in events if e.type == "thread.item.done" and e.item.type == "widget"]
    assert len(cards) == 1
    card = cards[0]
    assert card.widget.confirm["action"].type == APPROVE_ACTION  # type: ignore[index]
    assert card.widget.cancel["action"].type == REJECT_ACTION  # type: ignore[index]
    assert task_id in card.widget.children[0].value  # what will happen, with the arguments
    return card.id, events


async def _tasks(runner: RunningRunner, user: str) -> list[str]:
    repository: TaskRepository = runner.service.catalog._tasks
    return [t.id for t in await repository.list_tasks(user_id=user)]


async def test_a_delete_waits_for_approval_and_deletes_nothing_until_approved(
    runner: RunningRunner, user_id: str
) -> None:
    runner.models.use_offline()
    ctx = Ctx(user_id=user_id)
    thread = await new_thread(runner, ctx)
    task_id = await _task(runner, user_id, "water plants")
    card_id, _ = await _ask_to_delete(runner, ctx, thread.id, task_id)
    assert await _tasks(runner, user_id) == [task_id]  # nothing deleted yet
    runs = await runner.client.list_runs(ctx, thread_id=thread.id)
    assert runs.items[0].status == "waiting_approval"

    resumed = runner.client.run(ctx, thread_id=thread.id, approval=(card_id, True))
    events = [e async for e in resumed]
    assert resumed.status == "completed"
    replaced = [e.item for e in events if e.type == "thread.item.replaced"]
    assert replaced[0].id == card_id and replaced[0].widget.confirm is None  # buttons gone
    assert replaced[0].widget.status["text"].startswith(f"Approved by {user_id}")  # type: ignore[index]
    assert f"Deleted task `{task_id}`" in assistant_text(events)
    assert await _tasks(runner, user_id) == []
    stored = await runner.thread_store.store.load_item(thread.id, card_id, ctx)
    assert stored.widget.status["text"].startswith("Approved")  # type: ignore[union-attr]

    with pytest.raises(AlreadyExists):  # a second click does nothing
        await runner.client.run(ctx, thread_id=thread.id, approval=(card_id, True)).started()


async def test_a_rejected_delete_keeps_the_task_and_the_agent_says_so(runner: RunningRunner, user_id: str) -> None:
    runner.models.use_offline()
    ctx = Ctx(user_id=user_id)
    thread = await new_thread(runner, ctx)
    task_id = await _task(runner, user_id, "call mum")
    card_id, _ = await _ask_to_delete(runner, ctx, thread.id, task_id)
    events = [e async for e in runner.client.run(ctx, thread_id=thread.id, approval=(card_id, False))]
    assert "Not done" in assistant_text(events) and "rejected" in assistant_text(events)
    assert await _tasks(runner, user_id) == [task_id]


async def test_another_user_and_a_forged_card_are_refused(runner: RunningRunner, user_id: str) -> None:
    runner.models.use_offline()
    ctx = Ctx(user_id=user_id)
    thread = await new_thread(runner, ctx)
    task_id = await _task(runner, user_id, "pay rent")
    card_id, _ = await _ask_to_delete(runner, ctx, thread.id, task_id)
    with pytest.raises(NotFound):
        await runner.client.run(
            Ctx(user_id=f"{user_id}-intruder"), thread_id=thread.id, approval=(card_id, True)
        ).started()
    with pytest.raises(FailedPrecondition):
        await runner.client.run(ctx, thread_id=thread.id, approval=("msg_forged", True)).started()
    assert await _tasks(runner, user_id) == [task_id]
    assert (await runner.client.list_runs(ctx, thread_id=thread.id)).items[0].status == "waiting_approval"


async def test_an_approval_resumes_on_a_runner_that_started_after_the_run_paused(
    runner: RunningRunner, database_url: str, redis_url: str, user_id: str
) -> None:
    runner.models.use_offline()
    ctx = Ctx(user_id=user_id)
    thread = await new_thread(runner, ctx)
    task_id = await _task(runner, user_id, "renew passport")
    card_id, _ = await _ask_to_delete(runner, ctx, thread.id, task_id)
    fresh = await start_runner(database_url, redis_url, runner.thread_store)  # nothing of the run in its memory
    try:
        fresh.models.use_offline()
        events = [e async for e in fresh.client.run(ctx, thread_id=thread.id, approval=(card_id, True))]
    finally:
        await fresh.client.close()
        await fresh.server.stop(grace=0)
    assert f"Deleted task `{task_id}`" in assistant_text(events)
    assert await _tasks(runner, user_id) == []


async def test_a_new_message_closes_a_waiting_card_and_is_answered(runner: RunningRunner, user_id: str) -> None:
    runner.models.use_offline()
    ctx = Ctx(user_id=user_id)
    thread = await new_thread(runner, ctx)
    task_id = await _task(runner, user_id, "book dentist")
    card_id, _ = await _ask_to_delete(runner, ctx, thread.id, task_id)
    events = [
        e async for e in runner.client.run(ctx, thread_id=thread.id, user_message=user_message(thread.id, "list tasks"))
    ]
    assert "book dentist" in assistant_text(events)
    card = await runner.thread_store.store.load_item(thread.id, card_id, ctx)
    assert card.widget.status["text"] == "Not done: you sent another message"  # type: ignore[union-attr]
    assert card.widget.confirm is None  # type: ignore[union-attr]
    with pytest.raises(AlreadyExists):
        await runner.client.run(ctx, thread_id=thread.id, approval=(card_id, True)).started()
    assert await _tasks(runner, user_id) == [task_id]


async def test_a_card_nobody_decides_expires_and_the_thread_says_so(runner: RunningRunner, user_id: str) -> None:
    runner.models.use_offline()
    saved = runner.service.limits
    runner.service.limits = dataclasses.replace(saved, approval_ttl_seconds=1.0)
    try:
        ctx = Ctx(user_id=user_id)
        thread = await new_thread(runner, ctx)
        task_id = await _task(runner, user_id, "sell bike")
        card_id, _ = await _ask_to_delete(runner, ctx, thread.id, task_id)
    finally:
        runner.service.limits = saved
    for _ in range(100):  # the sweep runs with the heartbeat (every 2 s)
        runs = await runner.client.list_runs(ctx, thread_id=thread.id)
        if runs.items[0].status != "waiting_approval":
            break
        await asyncio.sleep(0.1)
    assert runs.items[0].status == "cancelled"
    for _ in range(50):  # the sweep writes its note just after it ends the run
        page = await runner.thread_store.store.load_thread_items(thread.id, None, 20, "desc", ctx)
        if any(i.type == "assistant_message" and "expired" in i.content[0].text for i in page.data):  # type: ignore[union-attr]
            break
        await asyncio.sleep(0.1)
    assert any(i.type == "assistant_message" and "expired" in i.content[0].text for i in page.data)  # type: ignore[union-attr]
    # The note comes after the card is closed: once it is there, so is the closed card.
    card = await runner.thread_store.store.load_item(thread.id, card_id, ctx)
    assert card.widget.status["text"].startswith("Expired")  # type: ignore[union-attr]
    assert await _tasks(runner, user_id) == [task_id]


async def test_an_operator_of_the_org_decides_a_card_only_where_the_deployment_allows_it(
    runner: RunningRunner, user_id: str
) -> None:
    runner.models.use_offline()
    ctx = Ctx(user_id=user_id, org_id="org-cards")
    operator = Ctx(user_id=f"{user_id}-op", org_id="org-cards", roles=("operator",))
    thread = await new_thread(runner, ctx)
    task_id = await _task(runner, user_id, "cancel gym")
    card_id, _ = await _ask_to_delete(runner, ctx, thread.id, task_id)
    with pytest.raises(NotFound):  # not allowed by default: the operator is just another user
        await runner.client.run(operator, thread_id=thread.id, approval=(card_id, True)).started()
    saved = runner.service.limits
    runner.service.limits = dataclasses.replace(saved, operator_may_approve=True)
    try:
        stranger = Ctx(user_id=f"{user_id}-op2", org_id="other-org", roles=("operator",))
        with pytest.raises(NotFound):
            await runner.client.run(stranger, thread_id=thread.id, approval=(card_id, True)).started()
        events = [e async for e in runner.client.run(operator, thread_id=thread.id, approval=(card_id, True))]
    finally:
        runner.service.limits = saved
    card = next(e.item for e in events if e.type == "thread.item.replaced")
    assert card.widget.status["text"].startswith(f"Approved by {user_id}-op")
    assert await _tasks(runner, user_id) == []


async def test_a_question_with_choices_pauses_the_run_and_the_answer_continues_it(
    runner: RunningRunner, user_id: str
) -> None:
    runner.models.use_offline()
    ctx = Ctx(user_id=user_id)
    thread = await new_thread(runner, ctx)
    stream = runner.client.run(
        ctx, thread_id=thread.id, user_message=user_message(thread.id, "choose between tea, coffee or juice")
    )
    events = [e async for e in stream]
    assert stream.status == "waiting_approval"
    question = next(e.item for e in events if e.type == "thread.item.done" and e.item.type == "structured_input")
    choice = question.inputs[0]
    assert [o.value for o in choice.options] == ["tea", "coffee", "juice"]
    answered = [
        e async for e in runner.client.run(ctx, thread_id=thread.id, approval=(question.id, True), answer=["coffee"])
    ]
    assert "You chose “coffee”" in assistant_text(answered)
    runs = await runner.client.list_runs(ctx, thread_id=thread.id)
    assert runs.items[0].status == "completed"
