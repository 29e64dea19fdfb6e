"""Log lines say which service, request and user they are about (text or JSON), and a request id
crosses from the caller into the gRPC service that serves it."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Iterator

import pytest

from switchboard.errors import InvalidArgument
from switchboard.observability import ContextFilter, accepted_request_id, bind, setup_logging
from switchboard.principal import Principal
from tests.thread_store.conftest import RunningThreadStore


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_name_the_service_request_user_and_thread(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SWITCHBOARD_LOG_FORMAT", "json")
    setup_logging("thread_store")

    async def serve() -> None:  # a task of its own, as each request is
        bind(request_id="req-42", user_id="alice", thread_id="thr_1")
        logging.getLogger("services.thread_store").warning("cache is slow")

    asyncio.run(serve())
    logging.getLogger("x").info("outside any request")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["message"] == "cache is slow" and lines[0]["level"] == "WARNING"
    assert (lines[0]["service"], lines[0]["request_id"], lines[0]["user_id"], lines[0]["thread_id"]) == (
        "thread_store",
        "req-42",
        "alice",
        "thr_1",
    )
    assert lines[0]["logger"] == "services.thread_store" and "time" in lines[0]
    assert lines[1]["request_id"] == "-"  # the binding belonged to the request's task


def test_text_is_the_default_and_a_bad_format_says_what_to_use(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SWITCHBOARD_LOG_FORMAT", raising=False)
    setup_logging("edge")
    logging.getLogger("y").warning("plain")
    assert "WARNING edge y [- -]: plain" in capsys.readouterr().err
    monkeypatch.setenv("SWITCHBOARD_LOG_FORMAT", "xml")
    with pytest.raises(InvalidArgument, match="text or json"):
        setup_logging("edge")


def test_request_ids_from_outside_are_kept_when_sane_and_replaced_otherwise() -> None:
    assert accepted_request_id("abc-123_XYZ") == "abc-123_XYZ"
    for bad in (None, "", "has space", "x" * 129, "ünïcode", "new\nline"):
        made = accepted_request_id(bad)
        assert made != bad and len(made) == 32


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(ContextFilter())
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_the_request_id_and_user_cross_into_the_grpc_service(thread_store: RunningThreadStore) -> None:
    records = _Records()
    runtime = logging.getLogger("switchboard.grpc_runtime")
    runtime.addHandler(records)
    level = runtime.level
    runtime.setLevel(logging.DEBUG)
    request_id = f"req-{uuid.uuid4().hex[:8]}"
    user = f"user-{uuid.uuid4().hex[:8]}"
    try:

        async def call() -> None:
            bind(request_id=request_id)
            await thread_store.store.load_threads(5, None, "desc", Principal(user_id=user))

        await asyncio.create_task(call())
    finally:
        runtime.removeHandler(records)
        runtime.setLevel(level)
    served = [r for r in records.records if "ListThreads OK" in r.getMessage()]
    assert served, [r.getMessage() for r in records.records]
    assert served[-1].request_id == request_id  # type: ignore[attr-defined]
    assert served[-1].user_id == user  # type: ignore[attr-defined]  # from the credentials, not the body
