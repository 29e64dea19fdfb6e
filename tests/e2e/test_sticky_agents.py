"""Sticky agents through the edge, with the offline model: after a hand-off to Billing the next
turns start with Billing (and say so) until it hands the conversation back to the front desk."""

from __future__ import annotations

import httpx
from chatkit.types import ThreadStreamEvent

from tests.e2e.conftest import Stack, add_message_request, assistant_text, create_request, new_user, stream_events


def _progress(events: list[ThreadStreamEvent]) -> list[str]:
    return [e.text for e in events if e.type == "progress_update"]


async def test_a_handoff_to_billing_sticks_across_turns_until_billing_hands_back(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    token = stack.token(new_user())
    events = await stream_events(http, token, create_request("I have a billing question"))
    thread_id = events[0].thread.id  # type: ignore[union-attr]
    assert "You're now talking with Billing" in assistant_text(events)
    events = await stream_events(http, token, add_message_request(thread_id, "add task pay the invoice"))
    assert "Billing is answering" in _progress(events)  # the user sees who answers
    assert "Added “pay the invoice”" in assistant_text(events)
    events = await stream_events(http, token, add_message_request(thread_id, "list tasks"))
    assert "Billing is answering" in _progress(events)  # still Billing, without another hand-off
    assert not [
        e
        for e in events
        if e.type == "thread.item.done" and e.item.type == "task" and "Handed off" in (e.item.task.title or "")
    ]
    events = await stream_events(http, token, add_message_request(thread_id, "back to the front desk please"))
    assert "You're now talking with Triage" in assistant_text(events)
    events = await stream_events(http, token, add_message_request(thread_id, "list tasks"))
    assert not [p for p in _progress(events) if "answering" in p]  # the default agent again
    assert "pay the invoice" in assistant_text(events)
