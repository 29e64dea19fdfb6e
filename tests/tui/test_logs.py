"""Log records never reach the terminal while the console runs: they go to a file and the log panel."""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
from pathlib import Path

import pytest

from switchboard.cli import configure_logging
from tests.tui.conftest import wait_for
from tests.tui.fakes import InMemoryBackend, fixed_clock
from tui.app import ConsoleApp
from tui.logs import c_stderr_to
from tui.screens.logs import LogScreen


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """stderr as ``switchboard console`` has it: the root logger writes there (``configure_logging``)."""
    screen = io.StringIO()
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", root.level)
    monkeypatch.setattr("sys.stderr", screen)
    configure_logging("console")
    assert any(getattr(h, "stream", None) is screen for h in root.handlers)
    return screen


async def test_no_log_record_reaches_the_terminal_and_the_log_panel_and_file_show_them(
    terminal: io.StringIO, tmp_path: Path
) -> None:
    log_file = tmp_path / "logs" / "console.log"
    app = ConsoleApp(InMemoryBackend(), clock=fixed_clock, metrics_interval=60, log_file=log_file)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        logging.getLogger("tui.feeds").warning("session_api lost (attempt %d)", 4)
        logging.getLogger("switchboard.streams").info("thread_store failed; trying again with back-off")
        # A record from another thread (gRPC's and asyncio's helpers log from theirs).
        worker = threading.Thread(target=lambda: logging.getLogger("grpc").error("channel closed"))
        worker.start()
        worker.join()
        await pilot.press("L")
        assert isinstance(app.screen, LogScreen)
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.lines) >= 3, what="the log panel shows the records")
        shown = "\n".join(screen.lines)
        assert "WARNING tui.feeds: session_api lost (attempt 4)" in shown
        assert "channel closed" in shown
        await pilot.press("L")
        assert not isinstance(app.screen, LogScreen)
    assert terminal.getvalue() == ""
    written = log_file.read_text()
    assert "WARNING tui.feeds: session_api lost (attempt 4)" in written
    assert "INFO switchboard.streams: thread_store failed" in written
    # Once the console has exited, the process logs where it did before.
    logging.getLogger("tui.feeds").warning("after the console")
    assert "after the console" in terminal.getvalue()


async def test_a_log_file_that_cannot_be_written_is_said_and_the_panel_still_keeps_the_records(
    terminal: io.StringIO, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    app = ConsoleApp(InMemoryBackend(), clock=fixed_clock, metrics_interval=60, log_file=blocker / "console.log")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert any("cannot write the console log" in str(n.message) for n in app._notifications)
        logging.getLogger("tui.feeds").warning("still kept")
        await pilot.press("L")
        screen = app.screen
        assert isinstance(screen, LogScreen)
        await wait_for(pilot, lambda: any("still kept" in line for line in screen.lines), what="the record")
    assert terminal.getvalue() == ""


def test_c_libraries_writes_to_descriptor_2_go_to_the_log_file_while_the_screen_keeps_the_terminal(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "console.log"
    with c_stderr_to(log_file):
        os.write(2, b"I1205 chttp2_transport.cc] Got goaway\n")  # as gRPC's core writes: past Python
        assert sys.__stderr__ is not None
        sys.__stderr__.write("drawn on the screen\n")  # what Textual draws
        sys.__stderr__.flush()
    os.write(2, b"after the console\n")
    err = capfd.readouterr().err
    assert "Got goaway" in log_file.read_text()
    assert "Got goaway" not in err
    assert "drawn on the screen" in err and "after the console" in err
