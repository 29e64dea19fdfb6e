"""The sessions table says what each conversation is about and who answers it, fits the width, and filters."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from chatkit.types import AssistantMessageContent, AssistantMessageItem, ThreadMetadata
from textual.pilot import Pilot

from switchboard.principal import Principal
from tests.thread_store.helpers import Ctx, user_message
from tests.tui.conftest import Stack, connected, wait_for
from tests.tui.fakes import NOW, InMemoryBackend, fixed_clock
from tests.tui.test_live import keys_for
from tui.app import ConsoleApp
from tui.data import SessionChange, SessionInfo
from tui.widgets.sessions_table import COLUMNS, fit_columns


def _app(backend: InMemoryBackend | None = None, clock: Callable[[], datetime] = fixed_clock) -> ConsoleApp:
    return ConsoleApp(backend or InMemoryBackend(), clock=clock, metrics_interval=60)


def _cells(app: ConsoleApp, session_id: str) -> dict[str, str]:
    table = app.dashboard.sessions_table
    return {key: table.get_cell(session_id, key).plain for key in table.column_keys}


async def _ready(app: ConsoleApp, pilot: Pilot[None]) -> None:
    await wait_for(pilot, lambda: len(app.dashboard.sessions_table.shown_ids) == 5, what="the demo sessions")
    await wait_for(
        pilot,
        lambda: app.dashboard.sessions_table.get_cell("ses_05", "last").plain != "",
        what="the last messages",
    )


async def test_rows_show_title_last_message_and_who_answers_by_agent_name_waiting_or_operator() -> None:
    app = _app()
    async with app.run_test(size=(160, 45)) as pilot:
        await _ready(app, pilot)
        bob, alice, dave, carol = (_cells(app, sid) for sid in ("ses_02", "ses_01", "ses_04", "ses_03"))
        assert bob["title"] == "Card declined at checkout"
        assert bob["last"] == "I can see the declines; let me check with the bank."
        assert bob["handler"] == "op-sam"  # another operator holds it
        assert alice["handler"] == "waiting 7m00s"  # her escalation opened 420 s before NOW
        assert alice["last"] == "Can I talk to a person please?"  # read from the transcript's newest message
        assert dave["handler"] == "sales"  # the session's agent when the thread names none
        assert dave["last"] == "The team plan is $12 a seat; upgrade?"  # Markdown marks dropped
        assert _cells(app, "ses_05")["handler"] == "support"  # the thread's sticky agent
        assert (carol["title"], carol["handler"]) == ("no conversation yet", "")


async def test_the_waiting_time_ticks_every_second() -> None:
    now = [NOW]
    app = _app(clock=lambda: now[0])
    async with app.run_test(size=(120, 30)) as pilot:
        await _ready(app, pilot)
        assert _cells(app, "ses_01")["handler"] == "waiting 7m00s"
        now[0] = NOW + timedelta(seconds=2)
        await wait_for(pilot, lambda: _cells(app, "ses_01")["handler"] == "waiting 7m02s", what="the wait ticks")


async def test_the_filter_searches_titles_last_messages_and_escalation_reasons() -> None:
    app = _app()
    async with app.run_test(size=(120, 30)) as pilot:
        await _ready(app, pilot)
        table = app.dashboard.sessions_table
        for words, expected in (
            ("password", ["ses_05"]),  # a title
            ("bank", ["ses_02"]),  # a last message
            ("refund limit", ["ses_01"]),  # an escalation reason
            ("op-sam", ["ses_02"]),  # a handler
            ("alice", ["ses_01"]),  # a user
        ):
            await pilot.press("slash", *keys_for(words))
            assert table.shown_ids == expected, words
            await pilot.press("escape")
            assert len(table.shown_ids) == 5


async def test_columns_fit_the_width_dropping_org_channel_age_status_then_activity() -> None:
    wide = [column.key for column, _width in fit_columns(COLUMNS, 200)]
    assert wide == [c.key for c in COLUMNS]
    narrow = fit_columns(COLUMNS, 78)
    assert [column.key for column, _ in narrow] == ["user", "title", "last", "handler", "escalation"]
    assert sum(width + 2 for _column, width in narrow) == 78  # title and last message take what is left
    medium = [column.key for column, _ in fit_columns(COLUMNS, 120)]
    assert "org" not in medium and "activity" in medium and "status" in medium


async def test_the_org_column_shows_only_when_the_table_holds_more_than_one_org() -> None:
    backend = InMemoryBackend()
    app = _app(backend)
    async with app.run_test(size=(200, 30)) as pilot:
        await _ready(app, pilot)
        table = app.dashboard.sessions_table
        assert "org" not in table.column_keys
        guest = SessionInfo("ses_09", "gina", "partner-co", "support", "web", "active", NOW)
        backend.sessions.append(guest)
        await backend.session_changes.put(_created(guest))
        await wait_for(pilot, lambda: "ses_09" in table.shown_ids, what="the other org's session")
        assert "org" in table.column_keys
        assert _cells(app, "ses_09")["org"] == "partner-co"


async def test_the_line_under_the_table_shows_the_highlighted_session_in_full() -> None:
    app = _app()
    async with app.run_test(size=(80, 24)) as pilot:
        await _ready(app, pilot)
        await pilot.press("G")  # erin, oldest
        await pilot.pause()
        detail = str(app.dashboard.query_one("#detail").render())
        assert "erin @ acme · ses_05" in detail and "Reset my password" in detail and "never mind" in detail


async def test_a_resize_refits_the_columns() -> None:
    app = _app()
    async with app.run_test(size=(160, 45)) as pilot:
        await _ready(app, pilot)
        table = app.dashboard.sessions_table
        assert "status" in table.column_keys
        await pilot.resize_terminal(80, 24)
        await wait_for(pilot, lambda: "status" not in table.column_keys, what="narrow columns")
        assert len(table.shown_ids) == 5 and _cells(app, "ses_02")["title"].startswith("Card declined")


def _created(session: SessionInfo) -> SessionChange:
    return SessionChange(id=f"{uuid.uuid4().hex}-0", type="session.created", at=NOW, session=session)


async def test_titles_and_last_messages_come_from_the_thread_store_and_follow_new_messages(
    stack: Stack, org: str, new_user: Callable[[], Principal]
) -> None:
    user = new_user()
    ctx = Ctx(user_id=user.user_id, org_id=org)
    thread = ThreadMetadata(
        id=f"thr_{uuid.uuid4().hex[:12]}",
        created_at=datetime.now(UTC),
        title="Parcel never arrived",
        metadata={"agent_id": "billing"},
    )
    await stack.threads.save_thread(thread, ctx)
    await stack.threads.add_thread_item(thread.id, user_message(thread.id, "where is it?", at=datetime.now(UTC)), ctx)
    created = await stack.sessions.create_session(user, thread_id=thread.id)
    session_id = created.session.id
    app = stack.console(org)
    async with app.run_test(size=(160, 45)) as pilot:
        await connected(pilot, app)
        table = app.dashboard.sessions_table
        await wait_for(pilot, lambda: session_id in table.shown_ids, what="the session row")
        await wait_for(pilot, lambda: _cells(app, session_id)["last"] == "where is it?", what="the last message")
        cells = _cells(app, session_id)
        assert (cells["title"], cells["handler"]) == ("Parcel never arrived", "billing")

        answer = AssistantMessageItem(
            id=f"msg_{uuid.uuid4().hex[:10]}",
            thread_id=thread.id,
            created_at=datetime.now(UTC),
            content=[AssistantMessageContent(text="It ships **today**.")],
        )
        await stack.threads.add_thread_item(thread.id, answer, ctx)
        await wait_for(pilot, lambda: _cells(app, session_id)["last"] == "It ships today.", what="the new answer")
        await stack.threads.save_thread(thread.model_copy(update={"title": "Lost parcel, found"}), ctx)
        await wait_for(pilot, lambda: _cells(app, session_id)["title"] == "Lost parcel, found", what="the new title")
