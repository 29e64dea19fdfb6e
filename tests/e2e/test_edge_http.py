"""The edge's HTTP surface: bad input, sessions, attachments, actions and feedback, a client going away, health."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import jwt
from chatkit.types import (
    AttachmentCreateParams,
    AttachmentsCreateReq,
    FileAttachment,
    ItemsFeedbackReq,
    ThreadsCustomActionReq,
    ThreadsListReq,
)

from services.session_api.client import SessionApiClient
from switchboard.principal import Principal
from tests.conftest import free_port
from tests.e2e.conftest import (
    SECOND_EDGE_RATE_BURST,
    SECOND_EDGE_RATE_PER_SECOND,
    Stack,
    add_message_request,
    bearer,
    create_request,
    new_user,
    post_json,
    runner_behind_edge,
    start_edge,
    stream_events,
    thread_messages,
)


async def _thread_count(http: httpx.AsyncClient, token: str) -> int:
    reply = await post_json(http, token, ThreadsListReq(params={"limit": 100}))  # type: ignore[arg-type]
    return len(reply.json()["data"])


async def test_bad_inputs_get_their_status_and_change_nothing(stack: Stack, http: httpx.AsyncClient) -> None:
    user = new_user()
    token = stack.token(user)
    await stream_events(http, token, create_request("the only thread"))
    cases: list[tuple[int, dict[str, str], bytes]] = [
        (401, {}, create_request("no token")),
        (401, bearer("not-a-jwt"), create_request("garbage token")),
        (401, bearer(jwt.encode({"sub": user, "exp": 9999999999}, "a-forged-secret-of-enough-length-123456")), b"{}"),
        (401, {"Authorization": f"Basic {token}"}, create_request("wrong scheme")),
        (400, bearer(token), b"{not json"),
        (400, bearer(token), b'{"type": "threads.explode", "params": {}}'),
        (400, bearer(token), b'{"type": "threads.create", "params": {"input": 7}}'),
        (400, bearer(token), b"[1, 2, 3]"),
        (413, bearer(token), b'{"type": "threads.create", "pad": "' + b"x" * 70_000 + b'"}'),
    ]
    for status, headers, body in cases:
        reply = await http.post("/chatkit", content=body, headers=headers)
        assert reply.status_code == status, (status, body[:60], reply.text)
        assert reply.json()["error"]["message"]
    assert (await http.get("/api/conversations?limit=0", headers=bearer(token))).status_code == 400
    assert (await http.get("/api/conversations?after=bad%20id", headers=bearer(token))).status_code == 400
    assert (await http.get("/api/conversations?scope=a%00b", headers=bearer(token))).status_code == 400
    nul = await http.post("/chatkit", content=create_request("hello\u0000world"), headers=bearer(token))
    assert nul.status_code == 400 and "NUL" in nul.json()["error"]["message"]
    dictation = {"type": "input.transcribe", "params": {"audio_base64": "AAAA", "mime_type": "audio/webm"}}
    reply = await http.post("/chatkit", json=dictation, headers=bearer(token))
    assert reply.status_code == 400 and "not configured" in reply.json()["error"]["message"]
    reply = await http.get(f"/api/users/{new_user()}/conversations", headers=bearer(token))
    assert reply.status_code == 403
    assert (await http.get(f"/api/users/{user}/conversations", headers=bearer(token))).status_code == 200
    assert (await http.post("/chatkit/sessions", json={"surprise": 1}, headers=bearer(token))).status_code == 400
    assert (await http.post("/chatkit/sessions", json={"channel": "fax"}, headers=bearer(token))).status_code == 400
    assert await _thread_count(http, token) == 1  # nothing above created or lost anything


async def test_a_user_past_the_rate_limit_gets_429_and_others_do_not(stack: Stack, http_b: httpx.AsyncClient) -> None:
    # The second edge refills one request per 10 s: the verdict does not depend on
    # how fast this machine sends the burst, only on the bucket's arithmetic.
    token, other = stack.token(new_user()), stack.token(new_user())
    asked = SECOND_EDGE_RATE_BURST + 20
    started = time.monotonic()
    statuses = await asyncio.gather(*(http_b.get("/api/conversations", headers=bearer(token)) for _ in range(asked)))
    elapsed = time.monotonic() - started
    codes = [r.status_code for r in statuses]
    refilled = int(elapsed * SECOND_EDGE_RATE_PER_SECOND) + 1
    assert set(codes) <= {200, 429}, codes
    assert SECOND_EDGE_RATE_BURST <= codes.count(200) <= SECOND_EDGE_RATE_BURST + refilled, (codes, elapsed)
    assert codes.count(429) >= asked - SECOND_EDGE_RATE_BURST - refilled > 0
    limited = next(r for r in statuses if r.status_code == 429)
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["error"]["code"] == "rate_limited"
    assert (await http_b.get("/api/conversations", headers=bearer(other))).status_code == 200


async def test_a_session_client_secret_works_until_the_session_is_cancelled(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    user = new_user()
    reply = await http.post(
        "/chatkit/sessions",
        json={"agent_id": "triage", "metadata": {"page": "/pricing"}},
        headers=bearer(stack.token(user)),
    )
    assert reply.status_code == 200, reply.text
    created = reply.json()
    session, secret = created["session"], created["client_secret"]["token"]
    assert session["status"] == "active" and session["metadata"] == {"page": "/pricing"}

    events = await stream_events(http, secret, create_request("hello from a session"))
    thread_id = events[0].thread.id  # type: ignore[union-attr]
    got = (await http.get(f"/chatkit/sessions/{session['id']}", headers=bearer(secret))).json()
    assert got["thread_ids"] == [thread_id]  # the console can find the conversation

    reply = await http.post(
        f"/chatkit/sessions/{session['id']}/events",
        json={"type": "button_click", "payload": {"button": "upgrade"}},
        headers=bearer(secret),
    )
    assert reply.status_code == 201 and reply.json()["payload"] == {"button": "upgrade"}

    reply = await http.post(
        f"/chatkit/sessions/{session['id']}/cancel", json={"reason": "done"}, headers=bearer(secret)
    )
    assert reply.json()["status"] == "cancelled"
    assert (await http.get("/api/conversations", headers=bearer(secret))).status_code == 401


async def test_feedback_and_actions_are_recorded_as_session_events(stack: Stack, http: httpx.AsyncClient) -> None:
    user = new_user()
    token = stack.token(user)
    events = await stream_events(http, token, create_request("hi"))
    thread_id = events[0].thread.id  # type: ignore[union-attr]
    item_id = [e.item.id for e in events if e.type == "thread.item.done"][-1]  # type: ignore[union-attr]
    feedback = ItemsFeedbackReq(params={"thread_id": thread_id, "item_ids": [item_id], "kind": "positive"})  # type: ignore[arg-type]
    assert (await post_json(http, token, feedback)).status_code == 200
    action = ThreadsCustomActionReq(
        params={"thread_id": thread_id, "item_id": None, "action": {"type": "approve", "payload": {"amount": 3}}}  # type: ignore[arg-type]
    )
    await stream_events(http, token, action.model_dump_json().encode())

    sessions = SessionApiClient(f"127.0.0.1:{stack.ports['session_api']}")
    try:
        principal = Principal(user_id=user, org_id="e2e")
        (session,) = (await sessions.list_sessions(principal)).items
        assert list(session.thread_ids) == [thread_id]
        recorded = (await sessions.list_events(principal, session.id)).items
        payloads = {e.type: json.loads(e.payload_json) for e in recorded if e.type in ("feedback", "button_click")}
        assert payloads["feedback"] == {"thread_id": thread_id, "item_ids": [item_id], "kind": "positive"}
        assert payloads["button_click"]["action"] == "approve"
        assert payloads["button_click"]["payload"] == {"amount": 3}
    finally:
        await sessions.close()


async def test_attachments_upload_in_two_phases_with_a_size_limit(stack: Stack, http: httpx.AsyncClient) -> None:
    token, other = stack.token(new_user()), stack.token(new_user())
    create = AttachmentsCreateReq(params=AttachmentCreateParams(name="notes.txt", size=11, mime_type="text/plain"))
    attachment = FileAttachment.model_validate_json((await post_json(http, token, create)).content)
    assert attachment.upload_descriptor is not None
    upload_url = str(attachment.upload_descriptor.url)
    reply = await http.post(upload_url, files={"file": ("notes.txt", b"hello world")}, headers=bearer(token))
    assert reply.status_code == 200, reply.text
    assert reply.json()["id"] == attachment.id and "upload_descriptor" not in reply.json()  # uploaded
    download = await http.get(f"/chatkit/attachments/{attachment.id}", headers=bearer(token))
    assert download.content == b"hello world"
    assert (await http.get(f"/chatkit/attachments/{attachment.id}", headers=bearer(other))).status_code == 404
    assert (await http.post(upload_url, content=b"x", headers=bearer(other))).status_code == 404
    too_big = AttachmentsCreateReq(
        params=AttachmentCreateParams(name="big.bin", size=200_000, mime_type="application/x")
    )
    assert (await post_json(http, token, too_big)).status_code == 413
    assert (await http.post(upload_url, content=b"x" * 150_000, headers=bearer(token))).status_code == 413
    assert (await http.get(f"/chatkit/attachments/{attachment.id}", headers=bearer(token))).content == b"hello world"


async def test_an_uploaded_page_is_never_served_as_a_page_and_bad_media_types_are_refused(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    token = stack.token(new_user())
    served = {}
    for name, mime, body in (
        ("evil.html", "text/html", b"<script>alert(1)</script>"),
        ("evil.svg", "image/svg+xml", b"<svg onload='alert(1)'/>"),
        ("photo.png", "image/png", b"\x89PNG\r\n\x1a\n"),
    ):
        create = AttachmentsCreateReq(params=AttachmentCreateParams(name=name, size=len(body), mime_type=mime))
        reply = await post_json(http, token, create)
        assert reply.status_code == 200, reply.text
        attachment_id = reply.json()["id"]
        upload = await http.post(f"/chatkit/attachments/{attachment_id}/upload", content=body, headers=bearer(token))
        assert upload.status_code == 200, upload.text
        served[name] = await http.get(f"/chatkit/attachments/{attachment_id}", headers=bearer(token))
    for name in ("evil.html", "evil.svg"):
        assert served[name].headers["content-type"] == "application/octet-stream"
        assert served[name].headers["content-disposition"].startswith("attachment;")
        assert served[name].headers["x-content-type-options"] == "nosniff"
    assert served["photo.png"].headers["content-type"] == "image/png"
    assert served["photo.png"].headers["content-disposition"].startswith("inline;")
    assert served["photo.png"].headers["x-content-type-options"] == "nosniff"
    for mime in ("text/plain\r\nSet-Cookie: a=b", "not a type", ""):
        create = AttachmentsCreateReq(params=AttachmentCreateParams(name="x.txt", size=1, mime_type=mime))
        reply = await post_json(http, token, create)
        assert reply.status_code == 400 and "mime_type" in reply.json()["error"]["message"]


async def test_a_service_that_is_down_is_503_with_retry_after_and_no_internal_address(stack: Stack) -> None:
    replica = start_edge(stack, free_port(), probe="/healthz", SWITCHBOARD_THREAD_STORE=f"127.0.0.1:{free_port()}")
    try:
        async with httpx.AsyncClient(base_url=replica.url, timeout=30) as client:
            reply = await client.get("/api/conversations", headers=bearer(stack.token(new_user())))
        assert reply.status_code == 503 and reply.headers["Retry-After"] == "1"
        assert reply.json()["error"]["message"].startswith("thread_store is unavailable")
        assert "127.0.0.1" not in reply.text and "ipv4" not in reply.text
    finally:
        replica.process.terminate()
        replica.process.wait(timeout=30)


async def test_health_readiness_metrics_and_the_openapi_schema(stack: Stack, http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    ready = (await http.get("/readyz")).json()
    assert ready == {
        "ready": True,
        "services": {"thread_store": "serving", "session_api": "serving", "agent_runner": "serving"},
    }
    metrics = (await http.get("/metrics")).text
    assert 'switchboard_edge_requests_total{method="GET",route="/healthz",status="200"}' in metrics
    paths = (await http.get("/openapi.json")).json()["paths"]
    for path in (
        "/chatkit",
        "/chatkit/sessions",
        "/chatkit/sessions/{session_id}",
        "/chatkit/sessions/{session_id}/cancel",
        "/chatkit/sessions/{session_id}/events",
        "/api/conversations",
        "/api/conversations/{thread_id}/messages",
    ):
        assert path in paths


def _naming_attachments(body: bytes, attachment_ids: list[str]) -> bytes:
    """A ``threads.create`` or ``threads.add_user_message`` body whose message names these attachments."""
    request = json.loads(body)
    request["params"]["input"]["attachments"] = attachment_ids
    return json.dumps(request).encode()


async def _upload(http: httpx.AsyncClient, token: str, content: bytes) -> str:
    create = AttachmentsCreateReq(
        params=AttachmentCreateParams(name="notes.txt", size=len(content), mime_type="text/plain")
    )
    attachment_id: str = (await post_json(http, token, create)).json()["id"]
    upload = await http.post(f"/chatkit/attachments/{attachment_id}/upload", content=content, headers=bearer(token))
    assert upload.status_code == 200, upload.text
    return attachment_id


async def test_a_message_naming_an_attachment_that_is_not_the_users_is_400_before_anything_is_created(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    token, other = stack.token(new_user()), stack.token(new_user())
    events = await stream_events(http, token, create_request("the only thread"))
    thread_id = events[0].thread.id  # type: ignore[union-attr]
    before = await thread_messages(http, token, thread_id)
    someone_elses = await _upload(http, other, b"not yours")
    for attachment_id in ("atc_doesnotexist", someone_elses):
        for body in (
            _naming_attachments(create_request("see attached"), [attachment_id]),
            _naming_attachments(add_message_request(thread_id, "see attached"), [attachment_id]),
        ):
            reply = await http.post("/chatkit", content=body, headers=bearer(token))
            assert reply.status_code == 400, reply.text
            assert reply.headers["content-type"].startswith("application/json")  # nothing was streamed
            message = reply.json()["error"]["message"]
            assert f"attachment {attachment_id!r} is not one of your uploads" in message
    assert await _thread_count(http, token) == 1  # no thread was created, empty or not
    assert await thread_messages(http, token, thread_id) == before
    download = await http.get(f"/chatkit/attachments/{someone_elses}", headers=bearer(other))
    assert download.status_code == 200 and download.content == b"not yours"


async def test_a_message_of_only_a_nul_is_400_with_a_clear_message_and_creates_nothing(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    token = stack.token(new_user())
    for text in ("\u0000", "ok\u0000"):
        reply = await http.post("/chatkit", content=create_request(text), headers=bearer(token))
        assert reply.status_code == 400, reply.text
        assert reply.json()["error"]["message"] == "a message cannot contain NUL characters"
    assert await _thread_count(http, token) == 0


async def test_a_turn_that_fails_after_its_thread_was_created_ends_with_an_error_event_and_keeps_the_message(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    # A runner whose model server is unreachable: the run fails after ``thread.created``.
    unreachable = f"http://127.0.0.1:{free_port()}/v1"
    token = stack.token(new_user())
    attachment_id = await _upload(http, token, b"hello attachment")
    with runner_behind_edge(
        stack, OPENAI_BASE_URL=unreachable, OPENAI_API_KEY="fake", SWITCHBOARD_MODEL="openai:unreachable"
    ) as failing:
        async with httpx.AsyncClient(base_url=failing.url, timeout=60) as failing_http:
            body = _naming_attachments(create_request("see attached"), [attachment_id])
            events = await stream_events(failing_http, token, body)
    assert events[0].type == "thread.created"
    assert events[-1].type == "error", events[-1]  # the stream ended, it was not dropped
    assert "could not be reached" in (events[-1].message or "")  # type: ignore[union-attr]
    thread_id = events[0].thread.id  # type: ignore[union-attr]
    assert (await thread_messages(http, token, thread_id))[0] == ("user_message", "see attached")
    request = {"type": "items.list", "params": {"thread_id": thread_id, "order": "asc", "limit": 10}}
    items = (await post_json(http, token, json.dumps(request).encode())).json()["data"]
    attachments = [a for item in items if item["type"] == "user_message" for a in item["attachments"]]
    assert [(a["id"], a["thread_id"]) for a in attachments] == [(attachment_id, thread_id)]
    download = await http.get(f"/chatkit/attachments/{attachment_id}", headers=bearer(token))
    assert download.content == b"hello attachment"
