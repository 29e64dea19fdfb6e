"""What every process logs with: a request id carried across every hop, and log lines that say
which service, request, user and thread they are about.

- The edge takes ``X-Request-ID`` from a request (or makes one) and answers with it;
  every gRPC call made while serving it carries it as ``x-request-id`` metadata
  (``switchboard.grpc_client``), and every server binds it for the call it serves
  (``switchboard.grpc_runtime``), with the caller's user id once authenticated.
- ``setup_logging`` writes to stderr as text (the default) or, with
  ``SWITCHBOARD_LOG_FORMAT=json``, one JSON object per line: ``time``, ``level``,
  ``service``, ``logger``, ``message``, and ``request_id``, ``user_id``,
  ``thread_id`` where known.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import sys
import uuid

from pythonjsonlogger.json import JsonFormatter

from switchboard.errors import InvalidArgument

REQUEST_ID_HEADER = "x-request-id"
MAX_REQUEST_ID = 128
_VALID_ID = re.compile(r"^[\x21-\x7e]{1,128}$")

_REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("switchboard_request_id", default=None)
_USER_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("switchboard_user_id", default=None)
_THREAD_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("switchboard_thread_id", default=None)
_SERVICE = "switchboard"


def new_request_id() -> str:
    """A fresh request id."""
    return uuid.uuid4().hex


def accepted_request_id(value: str | None) -> str:
    """The request id a caller sent, when it is 1-128 printable ASCII characters without spaces; else a new one
    (a malformed id is replaced, not refused: it must never cost the request)."""
    if value and _VALID_ID.match(value):
        return value
    return new_request_id()


def current_request_id() -> str | None:
    """The request id of what is being served, if any."""
    return _REQUEST_ID.get()


def bind(*, request_id: str | None = None, user_id: str | None = None, thread_id: str | None = None) -> None:
    """Name the request, user and thread of the task being run (for its log lines and outgoing calls)."""
    if request_id is not None:
        _REQUEST_ID.set(request_id)
    if user_id is not None:
        _USER_ID.set(user_id)
    if thread_id is not None:
        _THREAD_ID.set(thread_id)


class ContextFilter(logging.Filter):
    """Adds ``service``, ``request_id``, ``user_id`` and ``thread_id`` to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = _SERVICE
        record.request_id = _REQUEST_ID.get() or "-"
        record.user_id = _USER_ID.get() or "-"
        record.thread_id = _THREAD_ID.get() or "-"
        return True


TEXT_FORMAT = "%(asctime)s %(levelname)s %(service)s %(name)s [%(request_id)s %(user_id)s]: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(service)s %(name)s %(message)s %(request_id)s %(user_id)s %(thread_id)s"


def setup_logging(service: str) -> None:
    """Log to stderr as ``SWITCHBOARD_LOG_FORMAT`` (``text`` or ``json``) at ``SWITCHBOARD_LOG_LEVEL``.

    Raises:
        InvalidArgument: an unknown format.
    """
    global _SERVICE
    _SERVICE = service
    fmt = (os.environ.get("SWITCHBOARD_LOG_FORMAT") or "text").strip().lower()
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                JSON_FIELDS,
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                timestamp=False,
            )
        )
    elif fmt == "text":
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    else:
        raise InvalidArgument(f"SWITCHBOARD_LOG_FORMAT={fmt!r}: use text or json")
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((os.environ.get("SWITCHBOARD_LOG_LEVEL") or "INFO").upper())
    # pgserver narrates every pg_ctl call at INFO; its warnings still show.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    logging.getLogger("yoyo").setLevel(logging.WARNING)
