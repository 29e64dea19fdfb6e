"""The UI-event audit trail: appended, listed in order, validated, never rewritten."""

from __future__ import annotations

import json

import asyncpg
import pytest

from services.session_api.client import SessionApiClient
from switchboard.errors import InvalidArgument, ResourceExhausted
from switchboard.principal import Principal


async def test_ui_events_are_recorded_and_listed_oldest_first(client: SessionApiClient, user: Principal) -> None:
    session = (await client.create_session(user)).session
    click = await client.record_event(
        user, session.id, type="button_click", payload_json=b'{"widget": "approve", "value": true}'
    )
    await client.record_event(user, session.id, type="hitl_escalation", payload_json=b'{"why": "stuck"}')
    await client.record_event(user, session.id, type="cancel")
    await client.record_event(user, session.id, type="checkout.started", payload_json=b'{"cart": [1, 2]}')
    assert click.actor_user_id == user.user_id
    assert json.loads(click.payload_json) == {"widget": "approve", "value": True}

    listed = await client.list_events(user, session.id)
    assert [e.type for e in listed.items] == [
        "session_created",
        "button_click",
        "hitl_escalation",
        "cancel",
        "checkout.started",
    ]
    assert [e.id for e in listed.items] == sorted(e.id for e in listed.items)
    clicks = await client.list_events(user, session.id, type="button_click")
    assert [e.id for e in clicks.items] == [click.id]
    page = await client.list_events(user, session.id, limit=2)
    assert page.has_more
    following = await client.list_events(user, session.id, limit=10, after=page.after)
    assert [e.type for e in following.items] == ["hitl_escalation", "cancel", "checkout.started"]


@pytest.mark.parametrize(
    ("type", "payload", "error", "message"),
    [
        ("", b"", InvalidArgument, "type is required"),
        ("Button Click", b"", InvalidArgument, "type must be"),
        ("x" * 65, b"", InvalidArgument, "type must be"),
        ("escalation_claimed", b"", InvalidArgument, "written by the server"),
        ("session_created", b"", InvalidArgument, "written by the server"),
        ("button_click", b"{not json", InvalidArgument, "not valid JSON"),
        ("button_click", b"[1, 2]", InvalidArgument, "must be a JSON object"),
        ("button_click", b"\xff\xfe", InvalidArgument, "not valid JSON"),
        ("button_click", b'{"a": NaN}', InvalidArgument, "NaN"),
        ("button_click", b'{"a": "\\u0000"}', InvalidArgument, "NUL"),
        ("button_click", json.dumps({"big": "x" * 20_000}).encode(), ResourceExhausted, "the limit is"),
    ],
    ids=lambda value: value[:30] if isinstance(value, str | bytes) else None,
)
async def test_malformed_events_are_refused_with_a_clear_message(
    client: SessionApiClient, user: Principal, type: str, payload: bytes, error: type[Exception], message: str
) -> None:
    session = (await client.create_session(user)).session
    with pytest.raises(error, match=message):
        await client.record_event(user, session.id, type=type, payload_json=payload)
    assert [e.type for e in (await client.list_events(user, session.id)).items] == ["session_created"]


async def test_deeply_nested_payload_within_the_size_limit_is_refused_not_crashing(
    client: SessionApiClient, user: Principal
) -> None:
    session = (await client.create_session(user)).session
    payload = b'{"a":' + b"[" * 3000 + b"]" * 3000 + b"}"
    with pytest.raises(InvalidArgument):
        await client.record_event(user, session.id, type="deep", payload_json=payload)


async def test_the_audit_trail_cannot_be_rewritten_in_the_database(
    client: SessionApiClient, user: Principal, database_url: str
) -> None:
    session = (await client.create_session(user)).session
    conn = await asyncpg.connect(database_url)
    try:
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("UPDATE session_events SET type = 'forged' WHERE session_id = $1", session.id)
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("DELETE FROM session_events WHERE session_id = $1", session.id)
    finally:
        await conn.close()
