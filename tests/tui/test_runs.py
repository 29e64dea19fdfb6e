"""The runs view: active runs and hand-offs, most urgent first; cancelling a run from the keyboard."""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot
from textual.widgets import Label

from services.agent_runner.tasks import TaskRepository
from switchboard.errors import Unavailable
from switchboard.principal import Principal
from tests.agent_runner.conftest import RunningRunner
from tests.agent_runner.conftest import user_message as runner_message
from tests.tui.conftest import Stack, connected, notices, wait_for
from tests.tui.fakes import InMemoryBackend, fixed_clock, with_runs
from tests.tui.test_action_cards import runner  # noqa: F401 - the fixture is used through its name
from tui.app import ConsoleApp
from tui.backend import CANNOT_CANCEL
from tui.screens.conversation import ConversationScreen
from tui.screens.dialogs import ConfirmScreen


async def _runs_shown(pilot: Pilot[None], app: ConsoleApp) -> None:
    await wait_for(pilot, lambda: len(app.dashboard.sessions_table.shown_ids) == 7, what="the sessions")
    await pilot.press("4")
    await wait_for(pilot, lambda: len(app.dashboard.runs.shown) == 4, what="the runs and hand-offs")


async def test_the_runs_tab_shows_runs_and_hand_offs_most_urgent_first() -> None:
    backend = with_runs(InMemoryBackend())
    app = ConsoleApp(backend, clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=(120, 30)) as pilot:
        await _runs_shown(pilot, app)
        rows = app.dashboard.runs.shown
        assert [(row.state, row.user_id) for row in rows] == [
            ("waiting", "alice"),
            ("waiting_approval", "hana"),
            ("human", "bob"),
            ("running", "gus"),
        ]
        assert app.dashboard.runs.get_cell("run_hana", "state").plain == "waiting for approval"
        assert app.dashboard.runs.get_cell("run_gus", "title").plain == "Change my delivery address"
        # Only threads with recent activity are asked about (the runner lists runs per thread).
        assert "thr_dave" not in backend.runs_asked[-1] and {"thr_gus", "thr_hana"} <= set(backend.runs_asked[-1])


async def test_x_asks_then_cancels_the_selected_run() -> None:
    backend = with_runs(InMemoryBackend())
    backend.cancel_allowed = True  # a runner that lets operators cancel (see the next test for today's)
    app = ConsoleApp(backend, clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=(120, 30)) as pilot:
        await _runs_shown(pilot, app)
        await pilot.press("G")  # gus's running answer
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert backend.cancelled == []
        await pilot.press("x", "y")
        await wait_for(pilot, lambda: backend.cancelled == ["run_gus"], what="the cancel")
        await wait_for(pilot, lambda: "run_gus" not in [r.key for r in app.dashboard.runs.shown], what="the row goes")
        assert any("cancelled gus's run" in n for n in notices(app))


async def test_a_runner_that_refuses_an_operators_cancel_is_said_with_what_to_do_instead() -> None:
    backend = with_runs(InMemoryBackend())
    app = ConsoleApp(backend, clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=(120, 30)) as pilot:
        await _runs_shown(pilot, app)
        await pilot.press("G", "ctrl+k", "enter")
        await wait_for(pilot, lambda: any(CANNOT_CANCEL in n for n in notices(app)), what="the refusal")
        assert backend.cancelled == []


async def test_x_on_a_hand_off_says_there_is_no_run_and_enter_opens_the_conversation() -> None:
    app = ConsoleApp(with_runs(InMemoryBackend()), clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=(120, 30)) as pilot:
        await _runs_shown(pilot, app)
        await pilot.press("g", "x")  # alice waits for a person: no run
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("there is no run to cancel" in n for n in notices(app))
        await pilot.press("j", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConversationScreen), what="the conversation")
        assert isinstance(app.screen, ConversationScreen) and app.screen.thread_id == "thr_hana"


async def test_an_unreachable_agent_runner_is_said_on_the_runs_tab_and_hand_offs_still_show() -> None:
    backend = with_runs(InMemoryBackend())
    backend.fail_with = Unavailable("agent_runner is unavailable (connection refused)")
    app = ConsoleApp(backend, clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: len(app.dashboard.sessions_table.shown_ids) == 7, what="the sessions")
        await pilot.press("4")
        help_line = app.dashboard.query_one("#runs-help")
        await wait_for(pilot, lambda: "cannot read the runs" in str(help_line.render()), what="the failure")
        assert "connection refused" in str(help_line.render())
        assert [row.user_id for row in app.dashboard.runs.shown] == ["alice", "bob"]


async def test_a_real_agent_runners_paused_run_shows_and_its_refusal_of_an_operators_cancel_is_said(
    stack: Stack,
    runner: RunningRunner,  # noqa: F811
    org: str,
    new_user: Callable[[], Principal],
) -> None:
    user = new_user()
    thread_id = await stack.user_thread(user, "hello")
    await stack.sessions.create_session(user, thread_id=thread_id)
    tasks: TaskRepository = runner.service.catalog._tasks
    task_id = (await tasks.add_task(user_id=user.user_id, title="cancel the gym")).id
    asked = runner.client.run(
        user, thread_id=thread_id, user_message=runner_message(thread_id, f"delete task {task_id}")
    )
    _events = [event async for event in asked]
    assert asked.status == "waiting_approval"

    app = stack.console(org, operator=f"op-{org}", agent_runner=runner.target)
    async with app.run_test(size=(120, 30)) as pilot:
        await connected(pilot, app)
        await wait_for(pilot, lambda: len(app.dashboard.sessions_table.shown_ids) == 1, what="the session")
        await pilot.press("4")
        runs = app.dashboard.runs
        await wait_for(pilot, lambda: [r.state for r in runs.shown] == ["waiting_approval"], what="the paused run")
        assert runs.shown[0].user_id == user.user_id and runs.shown[0].thread_id == thread_id
        await pilot.press("x", "y")
        # The agent runner cancels only the caller's own runs (and not a paused one): the console says so.
        await wait_for(pilot, lambda: any(CANNOT_CANCEL in n for n in notices(app)), what="the refusal")
        assert asked.run_id and (await runner.client.get_run(user, asked.run_id)).status == "waiting_approval"


async def test_x_on_a_session_asks_then_cancels_it_and_its_running_answer_stops() -> None:
    backend = with_runs(InMemoryBackend())
    app = ConsoleApp(backend, clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=(120, 30)) as pilot:
        await _runs_shown(pilot, app)
        await pilot.press("1")  # the sessions tab
        table = app.dashboard.sessions_table
        table.focus()
        await pilot.press("g")
        await wait_for(pilot, lambda: table.selected_session_id == "ses_06", what="gus's session selected")
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmScreen)
        question = str(app.screen.query_one(Label).render())
        assert "Cancel gus's session (ses_06)?" in question and "its answers stop" in question
        await pilot.press("n")
        assert backend.cancelled_sessions == []
        await pilot.press("x", "y")
        await wait_for(pilot, lambda: backend.cancelled_sessions == ["ses_06"], what="the cancel")
        await wait_for(pilot, lambda: app.state.sessions["ses_06"].status == "cancelled", what="the feed's change")
        assert backend.cancelled == ["run_gus"]  # the session's answer stopped with it
        assert any("cancelled gus's session" in n for n in notices(app))
        await pilot.press("x")  # once more: it is cancelled already, and nothing is asked
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("gus's session is cancelled already" in n for n in notices(app))
