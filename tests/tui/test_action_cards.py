"""Action cards in the console: a card waiting for approval shows what will happen, and `a` / `d` decide it."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from services.agent_runner.tasks import TaskRepository
from switchboard.errors import Unavailable
from switchboard.principal import Principal
from tests.agent_runner.conftest import RunningRunner, start_runner
from tests.agent_runner.conftest import user_message as runner_message
from tests.tui.conftest import Stack, connected, notices, wait_for
from tests.tui.fakes import InMemoryBackend, ago, fixed_clock
from tests.tui.test_live import keys_for
from tui.app import ConsoleApp
from tui.backend import AGENT_RUNNER, ALREADY_DECIDED, NOT_ALLOWED
from tui.screens.conversation import ConversationScreen

SIZE = (120, 40)
THREAD = "thr_alice"
CARD = "msg_card_new"
OLD_CARD = "msg_card_old"


def backend_with_cards(*, pending: bool = True) -> InMemoryBackend:
    """Alice's conversation, with a card the user's new message closed and (if ``pending``) a newer one waiting."""
    backend = InMemoryBackend()
    backend.add_card(THREAD, OLD_CARD, task_id="task_3", at=ago(400), decided="Not done: you sent another message")
    if pending:
        backend.add_card(THREAD, CARD, task_id="task_7", at=ago(60))
    return backend


async def open_conversation(pilot: Pilot[None], app: ConsoleApp) -> ConversationScreen:
    """Open Alice's conversation and wait for its transcript."""
    await wait_for(pilot, lambda: app.principal is not None, what="signed in")
    screen = ConversationScreen(thread_id=THREAD, session_id="ses_01")
    await app.push_screen(screen)
    await wait_for(pilot, lambda: screen.loaded, what="the transcript")
    await pilot.pause()
    return screen


async def test_a_pending_card_shows_what_will_happen_and_that_it_waits_for_approval() -> None:
    app = ConsoleApp(backend_with_cards(), clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_conversation(pilot, app)
        text = screen.transcript.text
        assert "approval ⏳" in text
        assert "Delete the task task_7?" in text  # the card's Markdown: what approving will do
        assert "task_id: task_7" in text
        assert "waiting for approval · Triage asks for your approval" in text
        assert "Not done: you sent another message" in text  # the older card, closed
        pending = screen.transcript.pending_card()
        assert pending is not None and pending.id == CARD


async def test_a_approves_the_newest_pending_card_and_the_outcome_is_shown() -> None:
    backend = backend_with_cards()
    app = ConsoleApp(backend, clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_conversation(pilot, app)
        await pilot.press("a")
        await wait_for(pilot, lambda: backend.decisions, what="the decision")
        assert backend.decisions == [(THREAD, CARD, True)]
        await wait_for(
            pilot,
            lambda: "“Delete the task task_7?” approved; the agent finished its answer" in notices(app),
            what="the outcome",
        )
        # The decided card arrives on the thread feed: its status, and nothing waits any more.
        await wait_for(pilot, lambda: screen.transcript.pending_card() is None, what="the card decided")
        assert "approval ✓" in screen.transcript.text
        assert "Approved by op-kim · 2026-03-14 15:09 UTC" in screen.transcript.text
        assert "waiting for approval" not in screen.transcript.text

        await pilot.press("a")  # nothing left to decide
        await wait_for(pilot, lambda: "no action card waits for approval in this conversation" in notices(app))
        assert len(backend.decisions) == 1


async def test_d_rejects_the_card() -> None:
    backend = backend_with_cards()
    app = ConsoleApp(backend, clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_conversation(pilot, app)
        await pilot.press("d")
        await wait_for(pilot, lambda: screen.transcript.pending_card() is None, what="the card decided")
        assert backend.decisions == [(THREAD, CARD, False)]
        assert "approval ✗" in screen.transcript.text
        assert "Rejected by op-kim" in screen.transcript.text
        await wait_for(
            pilot, lambda: "“Delete the task task_7?” rejected; the agent finished its answer" in notices(app)
        )


async def test_without_a_pending_card_the_keys_only_say_so() -> None:
    backend = backend_with_cards(pending=False)
    app = ConsoleApp(backend, clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_conversation(pilot, app)
        assert screen.transcript.pending_card() is None  # a closed card does not count
        await pilot.press("a", "d")
        await wait_for(
            pilot,
            lambda: notices(app).count("no action card waits for approval in this conversation") == 2,
            what="two notices",
        )
        assert backend.decisions == []
        assert app.screen is screen


async def test_a_refused_decision_says_why_and_the_card_stays_as_it_is() -> None:
    backend = backend_with_cards()
    backend.refuse_with = NOT_ALLOWED
    app = ConsoleApp(backend, clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_conversation(pilot, app)
        await pilot.press("a")
        await wait_for(pilot, lambda: any("SWITCHBOARD_OPERATOR_MAY_APPROVE" in n for n in notices(app)))
        assert f"could not approve “Delete the task task_7?”: {NOT_ALLOWED}" in notices(app)
        await pilot.pause()
        pending = screen.transcript.pending_card()
        assert pending is not None and pending.id == CARD

        backend.refuse_with = ALREADY_DECIDED
        await pilot.press("d")
        await wait_for(pilot, lambda: f"could not reject “Delete the task task_7?”: {ALREADY_DECIDED}" in notices(app))
        assert backend.decisions == [(THREAD, CARD, True), (THREAD, CARD, False)]


async def test_a_second_key_press_while_the_decision_is_on_its_way_sends_nothing() -> None:
    backend = backend_with_cards()
    backend.decision_gate = asyncio.Event()  # the runner is slow to answer
    app = ConsoleApp(backend, clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_conversation(pilot, app)
        await pilot.press("a")
        await wait_for(pilot, lambda: backend.decisions, what="the decision sent")
        await pilot.press("a")
        await wait_for(pilot, lambda: "the decision on “Delete the task task_7?” is on its way" in notices(app))
        assert backend.decisions == [(THREAD, CARD, True)]
        backend.decision_gate.set()
        await wait_for(pilot, lambda: screen.transcript.pending_card() is None, what="the card decided")
        assert app.deciding == set()


async def test_an_unreachable_agent_runner_is_reported_and_its_connection_reset() -> None:
    backend = backend_with_cards()
    backend.fail_with = Unavailable("agent_runner is unavailable (connection refused)")
    app = ConsoleApp(backend, clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_conversation(pilot, app)
        await pilot.press("a")
        await wait_for(
            pilot,
            lambda: (
                "could not approve “Delete the task task_7?”: agent_runner is unavailable (connection refused)"
                in notices(app)
            ),
        )
        assert backend.resets == [AGENT_RUNNER]
        assert screen.transcript.pending_card() is not None
        assert app.deciding == set()  # the operator may try again


async def test_typing_a_and_d_in_the_reply_box_decides_nothing() -> None:
    backend = backend_with_cards()
    app = ConsoleApp(backend, clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_conversation(pilot, app)
        await pilot.press("t")  # the operator holding the conversation may reply
        await wait_for(pilot, lambda: backend.handler(THREAD).operator_id == "op-kim", what="taken over")
        await pilot.press("r", *keys_for("a day"))
        await pilot.pause()
        assert screen.query_one("#reply", Input).value == "a day"
        assert backend.decisions == []


# -- against a real agent runner ---------------------------------------------------


@pytest.fixture
async def runner(database_url: str, redis_url: str, stack: Stack) -> AsyncIterator[RunningRunner]:
    """An agent runner (offline model) on the console tests' thread store."""
    # The console calls the runner with the operator's token, which the runner asks session_api about.
    running = await start_runner(
        database_url, redis_url, stack.thread_store, users_session_api=stack.session_api.target
    )
    running.models.use_offline()
    yield running
    await running.client.close()
    await running.server.stop(grace=0)


async def test_an_operator_approves_a_real_card_only_where_the_deployment_allows_it(
    stack: Stack, runner: RunningRunner, org: str, new_user: Callable[[], Principal]
) -> None:
    user = new_user()
    thread_id = await stack.user_thread(user, "hello")
    created = await stack.sessions.create_session(user, thread_id=thread_id)
    tasks: TaskRepository = runner.service.catalog._tasks
    task_id = (await tasks.add_task(user_id=user.user_id, title="cancel the gym")).id
    asked = runner.client.run(
        user, thread_id=thread_id, user_message=runner_message(thread_id, f"delete task {task_id}")
    )
    _events = [event async for event in asked]
    assert asked.status == "waiting_approval"

    operator = f"op-{org}"
    app = stack.console(org, operator=operator, agent_runner=runner.target)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot, app)
        screen = ConversationScreen(thread_id=thread_id, session_id=created.session.id)
        await app.push_screen(screen)
        await wait_for(pilot, lambda: screen.loaded and screen.transcript.pending_card() is not None, what="the card")
        card = screen.transcript.pending_card()
        assert card is not None and f"Delete the task {task_id}?" in card.summary

        await pilot.press("a")  # by default an operator is just another user: not allowed
        await wait_for(pilot, lambda: any(NOT_ALLOWED in n for n in notices(app)), what="not allowed")
        assert [t.id for t in await tasks.list_tasks(user_id=user.user_id)] == [task_id]

        saved = runner.service.limits
        runner.service.limits = dataclasses.replace(saved, operator_may_approve=True)
        try:
            await pilot.press("a")
            await wait_for(
                pilot, lambda: any("approved; the agent finished its answer" in n for n in notices(app)), timeout=10
            )
        finally:
            runner.service.limits = saved
        await wait_for(pilot, lambda: f"Approved by {operator}" in screen.transcript.text, what="the decided card")
        assert screen.transcript.pending_card() is None
        assert await tasks.list_tasks(user_id=user.user_id) == []
