"""Where the console's log records go while it runs: a file and the log panel, never the terminal.

The ``switchboard`` command logs to stderr (``switchboard.cli.configure_logging``).
Under a full-screen console a line written there lands in the middle of the
screen, so while the console runs it owns the process's logging: every handler
that writes to a stream (the terminal; pytest's capture too) is set aside,
records go to the log file (``SWITCHBOARD_CONSOLE_LOG``, default
``$SWITCHBOARD_DATA_DIR/console.log``) and to a ring buffer the log panel
(``L``) shows, and the handlers are put back when the console exits.

C libraries write to file descriptor 2 themselves, past Python's logging: gRPC's
core prints a line when a server it talks to goes away, just when the console
says "reconnecting". ``c_stderr_to`` points that descriptor at the log file for
the console's run and gives Textual a copy of the terminal to draw on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from switchboard.config import StorageConfig, env_str

LOG_FILE_ENV = "SWITCHBOARD_CONSOLE_LOG"
LOG_FILE_NAME = "console.log"
KEPT_RECORDS = 2000
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def default_log_file() -> Path:
    """``$SWITCHBOARD_CONSOLE_LOG``, else ``console.log`` in the data directory."""
    configured = env_str(LOG_FILE_ENV)
    if configured:
        return Path(configured)
    return StorageConfig.from_env().data_dir / LOG_FILE_NAME


@dataclass(frozen=True, slots=True)
class LogLine:
    """One record as the log panel shows it."""

    at: datetime
    level: int
    logger: str
    message: str

    @property
    def level_name(self) -> str:
        """``INFO``, ``WARNING``, ..."""
        return logging.getLevelName(self.level)


class RecentLogs(logging.Handler):
    """The newest records, for the log panel (appending is all ``emit`` does: safe from any thread)."""

    def __init__(self, keep: int = KEPT_RECORDS) -> None:
        super().__init__()
        self.lines: deque[LogLine] = deque(maxlen=keep)
        self.total = 0  # records seen, so the panel can tell new ones from those it shows

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                message += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
            at = datetime.fromtimestamp(record.created, UTC)
            self.lines.append(LogLine(at, record.levelno, record.name, message))
            self.total += 1
        except Exception:
            self.handleError(record)

    def since(self, total: int) -> list[LogLine]:
        """The records after the first ``total`` seen (as many as are still kept)."""
        fresh = min(self.total - total, len(self.lines))
        return list(self.lines)[len(self.lines) - fresh :] if fresh > 0 else []


def _writes_to_a_stream(handler: logging.Handler) -> bool:
    return isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)


class ConsoleLogging:
    """Routes the process's log records away from the terminal for as long as the console runs.

    Args:
        file: The log file (None: the panel only, as tests and benchmarks run it).
        level: The console's log level (default ``SWITCHBOARD_LOG_LEVEL``, else INFO).
    """

    def __init__(self, file: Path | None = None, *, level: str | None = None) -> None:
        self.file = file
        self.level = (level or os.environ.get("SWITCHBOARD_LOG_LEVEL", "INFO")).upper()
        self.recent = RecentLogs()
        self._file_handler: logging.FileHandler | None = None
        self._set_aside: list[logging.Handler] = []
        self._root_level: int | None = None
        self.error: str = ""  # why the log file could not be opened ('' when it was)

    def start(self) -> None:
        """Take over the root logger: terminal handlers out, file and panel in."""
        root = logging.getLogger()
        self._set_aside = [handler for handler in root.handlers if _writes_to_a_stream(handler)]
        for handler in self._set_aside:
            root.removeHandler(handler)
        self.recent.setLevel(self.level)
        root.addHandler(self.recent)
        if self.file is not None:
            try:
                self.file.parent.mkdir(parents=True, exist_ok=True)
                self._file_handler = logging.FileHandler(self.file, encoding="utf-8")
            except OSError as error:
                self.error = f"cannot write the console log {self.file}: {error.strerror or error}"
            else:
                self._file_handler.setFormatter(logging.Formatter(FORMAT))
                self._file_handler.setLevel(self.level)
                root.addHandler(self._file_handler)
        self._root_level = root.level
        root.setLevel(min(root.level or logging.WARNING, logging.getLevelName(self.level)))

    def stop(self) -> None:
        """Give the root logger its handlers back."""
        root = logging.getLogger()
        root.removeHandler(self.recent)
        if self._file_handler is not None:
            root.removeHandler(self._file_handler)
            self._file_handler.close()
            self._file_handler = None
        for handler in self._set_aside:
            root.addHandler(handler)
        self._set_aside = []
        if self._root_level is not None:
            root.setLevel(self._root_level)
            self._root_level = None


@contextlib.contextmanager
def c_stderr_to(log_file: Path) -> Iterator[None]:
    """Point file descriptor 2 at ``log_file`` while the console draws on a copy of the terminal.

    Textual draws on ``sys.__stderr__``; within this it (and ``sys.stderr``) is a new file on
    a duplicate of descriptor 2 taken before the switch, so the screen and Python's own
    writes are unchanged while whatever writes to descriptor 2 directly (gRPC's C core)
    lands in the file. Everything is put back on exit. Without a writable log file it
    changes nothing.
    """
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        sink = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError:
        yield  # the console says it cannot write the log (ConsoleLogging); the screen may then get C lines
        return
    for stream in (sys.stderr, sys.__stderr__):
        if stream is not None:
            stream.flush()
    terminal = os.dup(2)
    original, python_stderr = sys.__stderr__, sys.stderr
    screen = os.fdopen(terminal, "w", encoding=getattr(original, "encoding", None) or "utf-8", errors="replace")
    os.dup2(sink, 2)
    os.close(sink)
    # Python's own writes (a crash's traceback, printed as the console exits) still reach the terminal.
    sys.__stderr__ = sys.stderr = screen  # type: ignore[misc]
    try:
        yield
    finally:
        screen.flush()
        os.dup2(terminal, 2)
        sys.__stderr__ = original  # type: ignore[misc]
        sys.stderr = python_stderr
        screen.close()


__all__ = ["ConsoleLogging", "LogLine", "RecentLogs", "c_stderr_to", "default_log_file"]
