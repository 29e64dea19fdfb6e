"""``SwitchboardSession``: the Agents SDK's memory in a Switchboard thread, through the running stack
with a user's own token; what the agent says is in the ChatKit thread the user opens."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from agents import Agent, RunConfig, Runner, function_tool
from agents.memory import SessionSettings
from agents.testing import ScriptedModel, assistant_message, function_call
from chatkit.store import NotFoundError

from services.thread_store.agents_session import SwitchboardSession
from services.thread_store.client import GrpcThreadStore
from switchboard.principal import Principal
from switchboard.service_auth import BearerCredentials
from tests.e2e.conftest import Stack, new_user, thread_messages

ORG = "e2e"


@pytest.fixture
async def alice(stack: Stack) -> AsyncIterator[tuple[str, GrpcThreadStore]]:
    user = new_user()
    store = GrpcThreadStore(
        f"127.0.0.1:{stack.ports['thread_store']}", credentials=BearerCredentials(stack.token(user, org_id=ORG))
    )
    yield user, store
    await store.close()


def _session(user: str, store: GrpcThreadStore, thread_id: str | None = None, **kwargs: object) -> SwitchboardSession:
    thread_id = thread_id or f"thr_{uuid.uuid4().hex[:16]}"
    return SwitchboardSession(thread_id, store, Principal(user_id=user, org_id=ORG), **kwargs)  # type: ignore[arg-type]


async def test_the_sdk_session_cases_order_limit_pop_and_clear(alice: tuple[str, GrpcThreadStore]) -> None:
    user, store = alice
    session = _session(user, store)
    assert await session.get_items() == []
    assert await session.pop_item() is None
    first = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there!"}]
    await session.add_items(first)
    assert await session.get_items() == first
    call = {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": "{}", "id": "fc_1"}
    output = {"type": "function_call_output", "call_id": "call_1", "output": "42"}
    more = [{"role": "user", "content": "How are you?"}, call, output, {"role": "assistant", "content": "Fine."}]
    await session.add_items(more)
    everything = first + more
    assert await session.get_items() == everything  # in order; tool items kept exactly
    assert await session.get_items(limit=2) == everything[-2:]  # the latest, oldest first
    assert await session.get_items(limit=0) == []
    limited = _session(user, store, session.session_id, session_settings=SessionSettings(limit=3))
    assert await limited.get_items() == everything[-3:]
    assert await session.pop_item() == {"role": "assistant", "content": "Fine."}
    assert await session.get_items() == everything[:-1]
    await session.clear_session()
    assert await session.get_items() == []
    await session.add_items([{"role": "user", "content": "again"}])
    assert await session.get_items() == [{"role": "user", "content": "again"}]


@function_tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


async def test_an_agents_sdk_run_with_it_shows_in_the_chatkit_thread(
    stack: Stack, alice: tuple[str, GrpcThreadStore]
) -> None:
    user, store = alice
    session = _session(user, store)
    model = ScriptedModel(
        [
            [function_call("add", '{"a": 2, "b": 2}', call_id="call_a")],
            [assistant_message("2 + 2 is 4.")],
            [assistant_message("And times 3 is 12.")],
        ]
    )
    agent = Agent(name="Calculator", instructions="Do arithmetic.", tools=[add], model=model)
    config = RunConfig(tracing_disabled=True)
    first = await Runner.run(agent, "What is 2 + 2?", session=session, run_config=config)
    assert first.final_output == "2 + 2 is 4."
    second = await Runner.run(agent, "And times 3?", session=session, run_config=config)
    assert second.final_output == "And times 3 is 12."
    # The second turn's model call read the first turn from the thread, the tool call included.
    assert model.last_call is not None
    sent = str(model.last_call.input)
    assert "What is 2 + 2?" in sent and "2 + 2 is 4." in sent and "call_a" in sent

    async with httpx.AsyncClient(base_url=stack.edge, timeout=30) as http:
        messages = await thread_messages(http, stack.token(user, org_id=ORG), session.session_id)
    assert messages == [
        ("user_message", "What is 2 + 2?"),
        ("assistant_message", "2 + 2 is 4."),
        ("user_message", "And times 3?"),
        ("assistant_message", "And times 3 is 12."),
    ]


async def test_another_users_thread_is_refused(stack: Stack, alice: tuple[str, GrpcThreadStore]) -> None:
    user, store = alice
    bob = new_user()
    bobs_store = GrpcThreadStore(
        f"127.0.0.1:{stack.ports['thread_store']}", credentials=BearerCredentials(stack.token(bob, org_id=ORG))
    )
    try:
        bobs = _session(bob, bobs_store)
        await bobs.add_items([{"role": "user", "content": "my secret"}])
    finally:
        await bobs_store.close()
    intruder = _session(user, store, bobs.session_id)
    assert await intruder.get_items() == []  # nothing of Bob's shows
    with pytest.raises(NotFoundError):
        await intruder.add_items([{"role": "user", "content": "written into Bob's thread"}])
    assert await intruder.pop_item() is None
    # And Alice's token cannot claim to be Bob.
    as_bob = SwitchboardSession(bobs.session_id, store, Principal(user_id=bob, org_id=ORG))
    with pytest.raises(Exception, match="principal"):
        await as_bob.get_items()
