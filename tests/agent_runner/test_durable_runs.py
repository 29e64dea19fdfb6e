"""Durable runs at the runner: double-texting policies, callers that go away, joins across
replicas, leases that run out, partial answers saved as they stream, runs listed."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Iterator

import pytest

from services.agent_runner.client import RunStream
from services.agent_runner.runs import RunRepository
from switchboard.errors import FailedPrecondition, NotFound
from tests.agent_runner.conftest import Ctx, RunningRunner, assistant_text, new_thread, start_runner, user_message


@pytest.fixture
def policy(runner: RunningRunner) -> Iterator[object]:
    """Lets a test switch the double-texting policy; restores it after."""
    saved = runner.service.limits

    def use(name: str) -> None:
        runner.service.limits = dataclasses.replace(saved, double_text=name)  # type: ignore[arg-type]

    yield use
    runner.service.limits = saved
    runner.models.use_offline()


async def _until_delta(stream: RunStream, containing: str = "") -> None:
    """Read until the streamed text contains ``containing`` (any text when empty)."""
    text = ""
    async for event in stream:
        if event.type == "thread.item.updated" and event.update.type.endswith("text_delta"):  # type: ignore[union-attr]
            text += event.update.delta  # type: ignore[union-attr]
            if containing in text:
                return


async def _collect(stream: RunStream) -> list[object]:
    return [event async for event in stream]


async def _texts(runner: RunningRunner, ctx: Ctx, thread_id: str) -> list[tuple[str, str]]:
    page = await runner.thread_store.store.load_thread_items(thread_id, None, 50, "asc", ctx)
    out = []
    for item in page.data:
        if item.type in ("user_message", "assistant_message"):
            out.append((item.type, " ".join(getattr(c, "text", "") for c in item.content)))  # type: ignore[union-attr]
    return out


async def test_enqueue_answers_a_second_message_right_after_the_first_in_order(
    runner: RunningRunner, user_id: str, policy: object
) -> None:
    ctx = Ctx(user_id=user_id)
    thread = await new_thread(runner, ctx)
    runner.models.use_offline(delay=0.01)
    first = runner.client.run(ctx, thread_id=thread.id, user_message=user_message(thread.id, "count to 60"))
    await first.started()
    second = runner.client.run(ctx, thread_id=thread.id, user_message=user_message(thread.id, "list tasks"))
    assert await second.started()
    assert second.status == "queued"
    first_events, second_events = await asyncio.gather(_collect(first), _collect(second))
    assert first.status == "completed" and second.status == "completed"
    assert "60." in assistant_text(first_events)
    assert [e.type for e in second_events][:3] == ["thread.item.done", "stream_options", "progress_update"]
    assert "no open tasks" in assistant_text(second_events).lower() or "task" in assistant_text(second_events)
    kinds = [kind for kind, _ in await _texts(runner, ctx, thread.id)]
    assert kinds == ["user_message", "assistant_message", "user_message", "assistant_message"]


async def test_reject_refuses_a_second_message_and_does_not_save_it(
    runner: RunningRunner, user_id: str, policy: object
) -> None:
    ctx = Ctx(user_id=user_id)
    thread = await new_thread(runner, ctx)
    policy("reject")  # type: ignore[operator]
    runner.models.use_offline(delay=0.01)
    first = runner.client.run(ctx, thread_id=thread.id, user_message=user_message(thread.id, "count to 60"))
    run_id = await first.started()
    refused = user_message(thread.id, "are you there?")
    second = runner.client.run(ctx, thread_id=thread.id, user_message=refused)
    with pytest.raises(FailedPrecondition, match=run_id):
        await second.started()
    await _collect(first)
    texts = await _texts(runner, ctx, thread.id)
    assert "are you there?" not in [text for _, text in texts]
    after = await _collect(runner.client.run(ctx, thread_id=thread.id, user_message=user_message(thread.id, "hi")))
    assert any(e.type == "thread.item.done" for e in after)  # the thread is free again


async def test_interrupt_stops_the_running_answer_keeps_its_part_and_answers_the_new_message(
    runner: RunningRunner, user_id: str, policy: object
) -> None:
    ctx = Ctx(user_id=user_id)
    thread = await new_thread(runner, ctx)
    policy("interrupt")  # type: ignore[operator]
    runner.models.use_offline(delay=0.01)
    first = runner.client.run(ctx, thread_id=thread.id, user_message=user_message(thread.id, "count to 3000"))
    await first.started()
    await _until_delta(first, "Counting to 3000: 1 2")
    second = runner.client.run(ctx, thread_id=thread.id, user_message=user_message(thread.id, "list tasks"))
    await second.started()
    _rest, answered = await asyncio.wait_for(asyncio.gather(_collect(first), _collect(second)), 20)
    assert first.status == "cancelled" and second.status == "completed"
    assert assistant_text(answered)
    texts = await _texts(runner, ctx, thread.id)
    assert texts[0] == ("user_message", "count to 3000")
    assert texts[1][0] == "assistant_message" and "Counting to 3000" in texts[1][1] and "3000." not in texts[1][1]
    assert texts[2] == ("user_message", "list tasks")


async def test_a_run_whose_caller_went_away_completes_and_is_saved(runner: RunningRunner, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    thread = await new_thread(runner, ctx)
    runner.models.use_offline(delay=0.005)
    try:
        stream = runner.client.run(ctx, thread_id=thread.id, user_message=user_message(thread.id, "count to 300"))
        run_id = await stream.started()
        await _until_delta(stream)
        stream.close()  # the caller goes away
        for _ in range(200):
            if (await runner.client.get_run(ctx, run_id)).status != "running":
                break
            await asyncio.sleep(0.05)
    finally:
        runner.models.use_offline()
    assert (await runner.client.get_run(ctx, run_id)).status == "completed"
    texts = await _texts(runner, ctx, thread.id)
    assert texts[-1][0] == "assistant_message" and texts[-1][1].endswith("300.")


async def test_a_second_replica_joins_a_run_replays_what_was_missed_and_follows_to_the_end(
    runner: RunningRunner, database_url: str, redis_url: str, user_id: str
) -> None:
    ctx = Ctx(user_id=user_id)
    thread = await new_thread(runner, ctx)
    runner.models.use_offline(delay=0.005)
    other = await start_runner(database_url, redis_url, runner.thread_store)
    try:
        stream = runner.client.run(ctx, thread_id=thread.id, user_message=user_message(thread.id, "count to 400"))
        run_id = await stream.started()
        seen: list[tuple[int, bytes]] = []
        async for first_seq, bodies in stream.batches():
            seen.extend((first_seq + i, body) for i, body in enumerate(bodies))
            if len(seen) >= 5:
                break
        stream.close()
        after = seen[2][0]
        joined = other.client.join(ctx, thread_id=thread.id, run_id=run_id, after_seq=after)
        assert await joined.started() == run_id
        replay = [(first + i, body) async for first, bodies in joined.batches() for i, body in enumerate(bodies)]
        assert joined.status == "completed"
        assert replay[0][0] == after + 1
        assert [seq for seq, _ in replay] == list(range(after + 1, after + 1 + len(replay)))
        assert replay[: len(seen) - 3] == seen[3:]  # the same events, byte for byte
        assert b"400." in b"".join(body for _, body in replay)
        nothing = other.client.join(ctx, thread_id=thread.id)
        assert await nothing.started() == ""  # no active run any more
        with pytest.raises(NotFound):
            await other.client.join(Ctx(user_id=f"{user_id}-intruder"), thread_id=thread.id).started()
    finally:
        runner.models.use_offline()
        await other.client.close()
        await other.server.stop(grace=0)


async def test_a_run_whose_holder_died_is_interrupted_and_the_thread_answers_again(
    runner: RunningRunner, user_id: str
) -> None:
    ctx = Ctx(user_id=user_id)
    thread = await new_thread(runner, ctx)
    dead = RunRepository(runner.service.runs._pool, holder="dead-replica", lease_seconds=0.5)
    ghost = await dead.insert(
        run_id=f"run_{uuid.uuid4().hex}",
        thread_id=thread.id,
        user_id=user_id,
        org_id=None,
        session_id=None,
        agent_id="",
        input_item_id="",
        queue=True,
    )
    assert ghost is not None and ghost.status == "running"
    runner.models.use_offline()
    stream = runner.client.run(ctx, thread_id=thread.id, user_message=user_message(thread.id, "list tasks"))
    await stream.started()
    assert stream.status == "queued"  # the ghost holds the thread until its lease runs out
    events = await asyncio.wait_for(_collect(stream), 15)
    assert stream.status == "completed" and assistant_text(events)
    reaped = await runner.client.get_run(ctx, ghost.id)
    assert reaped.status == "interrupted" and "stopped" in reaped.error


async def test_a_streaming_answer_is_saved_as_it_grows(runner: RunningRunner, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    thread = await new_thread(runner, ctx)
    runner.models.use_offline(delay=0.01)
    try:
        stream = runner.client.run(ctx, thread_id=thread.id, user_message=user_message(thread.id, "count to 3000"))
        await stream.started()
        await _until_delta(stream)
        await asyncio.sleep(2.0)
        texts = await _texts(runner, ctx, thread.id)
        assert texts[-1][0] == "assistant_message"
        assert "Counting to 3000: 1 2 3" in texts[-1][1] and not texts[-1][1].endswith("3000.")
        await runner.client.cancel(ctx, thread_id=thread.id)
        await asyncio.wait_for(_collect(stream), 5)
    finally:
        runner.models.use_offline()
    assert stream.status == "cancelled"


async def test_a_threads_runs_are_listed_newest_first_in_pages_and_only_to_their_owner(
    runner: RunningRunner, user_id: str
) -> None:
    ctx = Ctx(user_id=user_id)
    thread = await new_thread(runner, ctx)
    runner.models.use_offline()
    ids = []
    for text in ("list tasks", "list tasks", "list tasks"):
        stream = runner.client.run(ctx, thread_id=thread.id, user_message=user_message(thread.id, text))
        ids.append(await stream.started())
        await _collect(stream)
    first = await runner.client.list_runs(ctx, thread_id=thread.id, limit=2)
    assert [r.id for r in first.items] == [ids[2], ids[1]] and first.has_more and first.after == ids[1]
    second = await runner.client.list_runs(ctx, thread_id=thread.id, limit=2, after=first.after)
    assert [r.id for r in second.items] == [ids[0]] and not second.has_more
    assert all(r.status == "completed" and r.last_seq > 0 for r in [*first.items, *second.items])
    intruder = Ctx(user_id=f"{user_id}-intruder")
    with pytest.raises(NotFound):
        await runner.client.list_runs(intruder, thread_id=thread.id)
    with pytest.raises(NotFound):
        await runner.client.get_run(intruder, ids[0])


async def test_an_operator_of_the_org_may_join_a_run_and_an_operator_of_another_org_may_not(
    runner: RunningRunner, user_id: str
) -> None:
    ctx = Ctx(user_id=user_id, org_id="org-a")
    thread = await new_thread(runner, ctx)
    runner.models.use_offline(delay=0.005)
    try:
        stream = runner.client.run(ctx, thread_id=thread.id, user_message=user_message(thread.id, "count to 300"))
        run_id = await stream.started()
        operator = Ctx(user_id=f"{user_id}-op", org_id="org-a", roles=("operator",))
        joined = runner.client.join(operator, thread_id=thread.id)
        assert await joined.started() == run_id
        events = [e async for e in joined]
        assert events[0].type == "thread.item.done"  # from the run's start: the user's message
        assert "300." in assistant_text(events)
        stranger = Ctx(user_id=f"{user_id}-op2", org_id="org-b", roles=("operator",))
        with pytest.raises(NotFound):
            await runner.client.join(stranger, thread_id=thread.id).started()
        await _collect(stream)
    finally:
        runner.models.use_offline()
