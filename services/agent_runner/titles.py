"""Thread titles by the model: a small title agent, as the ChatKit samples do.

The first exchange of a thread already has a title taken from the user's first
message (``BeginTurn``'s ``title_if_empty``, no model call). When a real model
is configured, ``model_title`` asks it for a better one: a short agent that
reads the first user message and answers 2-6 words. With the offline model, on
any failure, or on an answer that is no usable title, it returns None and the
first-message title stays: a title never breaks a run.
"""

from __future__ import annotations

import asyncio
import logging
import re

from agents import Agent, ModelSettings, Runner

from services.agent_runner.models import ModelSource
from switchboard.tracing import agents_run_config

log = logging.getLogger(__name__)

TITLE_INSTRUCTIONS = (
    "You name conversations for a list of chats. The first user message of the conversation follows."
    " Answer with a title of 2 to 6 words that says what the user wants, in the user's language,"
    " in your own words rather than repeating the message. Answer with the title only:"
    " no quotes, no punctuation at the end, no emoji, no explanation."
)
MAX_TITLE_CHARS = 60
MAX_TITLE_WORDS = 8
# The model sees at most this much of the first message: a title needs the gist.
MAX_PROMPT_CHARS = 2000
TITLE_TIMEOUT_SECONDS = 10.0
_WRAPPING = "\"'`\u201c\u201d\u2018\u2019«»*_#"


def title_agent() -> Agent[None]:
    """The title agent (its model is given per run)."""
    return Agent(
        name="Title generator",
        instructions=TITLE_INSTRUCTIONS,
        model_settings=ModelSettings(temperature=0.2, max_tokens=24),
    )


def clean_title(answer: object) -> str | None:
    """A model's answer as a title: one line, no wrapping quotes or trailing punctuation, short.

    Returns:
        The title, or None when the answer is empty or not text.
    """
    if not isinstance(answer, str):
        return None
    line = next((part for part in answer.strip().splitlines() if part.strip()), "")
    line = re.sub(r"^(title|titre)\s*:\s*", "", line.strip().strip(_WRAPPING + " "), flags=re.I)
    line = " ".join(line.strip(_WRAPPING + " ").split()).rstrip(".!?:;,")
    if not line or not any(ch.isalnum() for ch in line):
        return None
    words = line.split()
    if len(words) > MAX_TITLE_WORDS:
        line = " ".join(words[:MAX_TITLE_WORDS]) + "…"
    if len(line) > MAX_TITLE_CHARS:
        line = line[: MAX_TITLE_CHARS - 1].rstrip() + "…"
    return line[0].upper() + line[1:]


async def model_title(
    models: ModelSource, first_message: str, *, model_name: str | None = None, timeout: float = TITLE_TIMEOUT_SECONDS
) -> str | None:
    """A title for a thread from its first user message, by the configured model.

    Args:
        models: Where models come from (the runner's).
        first_message: The text of the thread's first user message.
        model_name: The agent's model (None: the default).
        timeout: Seconds the model may take.

    Returns:
        The title, or None with the offline model, for an empty message, or
        when the model fails or answers no usable title.
    """
    text = first_message.strip()[:MAX_PROMPT_CHARS]
    if not text or not models.titles_threads(model_name):
        return None
    try:
        model = models.model_for(model_name, announce_offline=False)
        result = await asyncio.wait_for(
            Runner.run(title_agent().clone(model=model), text, max_turns=1, run_config=agents_run_config()),
            timeout=timeout,
        )
    except asyncio.CancelledError:
        raise
    except Exception as error:  # a title is a nicety: the first-message title stays
        log.info("no model title (%s: %s); the first message names the thread", type(error).__name__, error)
        return None
    return clean_title(result.final_output)
