"""Which Agents SDK ``Model`` answers: OpenAI, an OpenAI-compatible server, or offline.

``SWITCHBOARD_MODEL`` names the default model: ``openai:<model>`` or
``offline``. Unset, it is ``openai:gpt-4.1-mini`` when ``OPENAI_API_KEY`` or
``OPENAI_BASE_URL`` is set, else ``offline``. With ``OPENAI_BASE_URL`` the
model talks Chat Completions (what vLLM, Ollama and llama.cpp serve, with
streamed tool calls); without it, the OpenAI Responses API.
``SWITCHBOARD_MODEL_API`` (``responses`` or ``chat_completions``) chooses
otherwise, for a compatible server that serves the Responses API too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from agents import Model, OpenAIChatCompletionsModel, OpenAIResponsesModel
from openai import AsyncOpenAI

from services.agent_runner.offline_model import OfflineModel
from switchboard.config import env_bool, env_float, env_str
from switchboard.errors import InvalidArgument

OFFLINE = "offline"
DEFAULT_OPENAI_MODEL = "gpt-4.1-mini"
API_CHOICES = ("", "responses", "chat_completions")


class ModelSource(Protocol):
    """Gives the model of an agent for one run."""

    def is_offline(self, name: str | None) -> bool:
        """Whether ``name`` (None: the default) is the offline model."""
        ...

    def model_for(self, name: str | None, *, announce_offline: bool) -> Model:
        """The model called ``name`` (None: the default)."""
        ...

    def titles_threads(self, name: str | None) -> bool:
        """Whether the model ``name`` also titles new threads (one short extra call per thread)."""
        ...


@dataclass(frozen=True)
class ModelConfig:
    """The model settings of the environment."""

    default: str
    api_key: str | None
    base_url: str | None
    offline_chunk_delay: float = 0.01
    api: str = ""  # "responses" or "chat_completions"; "" chooses by base_url
    titles: bool = True  # a real model titles each new thread (SWITCHBOARD_MODEL_TITLES)

    @classmethod
    def from_env(cls) -> ModelConfig:
        """Read ``SWITCHBOARD_MODEL``, ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``SWITCHBOARD_OFFLINE_DELAY``,
        ``SWITCHBOARD_MODEL_API`` and ``SWITCHBOARD_MODEL_TITLES``."""
        api_key = env_str("OPENAI_API_KEY")
        base_url = env_str("OPENAI_BASE_URL")
        fallback = f"openai:{DEFAULT_OPENAI_MODEL}" if (api_key or base_url) else OFFLINE
        config = cls(
            default=env_str("SWITCHBOARD_MODEL", fallback) or fallback,
            api_key=api_key,
            base_url=base_url,
            offline_chunk_delay=env_float("SWITCHBOARD_OFFLINE_DELAY", 0.01),
            api=(env_str("SWITCHBOARD_MODEL_API") or "").strip().lower(),
            titles=env_bool("SWITCHBOARD_MODEL_TITLES", True),
        )
        if config.api not in API_CHOICES:
            raise InvalidArgument(f"SWITCHBOARD_MODEL_API must be responses or chat_completions, not {config.api!r}")
        config.check(config.default, "SWITCHBOARD_MODEL")
        return config

    def check(self, name: str, where: str) -> None:
        """Fail early, with what to set, when a model name cannot work here.

        Raises:
            InvalidArgument: the name is malformed or its provider is not configured.
        """
        if name == OFFLINE:
            return
        if not name.startswith("openai:") or not name.removeprefix("openai:"):
            raise InvalidArgument(f"{where}={name!r}: use 'openai:<model>' (e.g. openai:gpt-4.1-mini) or 'offline'")
        if not (self.api_key or self.base_url):
            raise InvalidArgument(
                f"{where}={name!r} needs OPENAI_API_KEY (or OPENAI_BASE_URL for a compatible server);"
                " set SWITCHBOARD_MODEL=offline to run without a model"
            )


class EnvModels:
    """Models as the environment configures them; one OpenAI client per process.

    Args:
        config: The model settings.
    """

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self._client: AsyncOpenAI | None = None

    def is_offline(self, name: str | None) -> bool:
        """Whether ``name`` resolves to the offline model."""
        return (name or self.config.default) == OFFLINE

    def titles_threads(self, name: str | None) -> bool:
        """A real model titles new threads unless ``SWITCHBOARD_MODEL_TITLES=false``; the offline one never."""
        return self.config.titles and not self.is_offline(name)

    def model_for(self, name: str | None, *, announce_offline: bool) -> Model:
        """The model of this name."""
        chosen = name or self.config.default
        if chosen == OFFLINE:
            return OfflineModel(announce=announce_offline, chunk_delay=self.config.offline_chunk_delay)
        self.config.check(chosen, "the agent's model")
        if self._client is None:
            # Compatible servers often need no key, but the client insists on one.
            self._client = AsyncOpenAI(api_key=self.config.api_key or "unused", base_url=self.config.base_url)
        model_name = chosen.removeprefix("openai:")
        if self.config.api == "chat_completions" or (self.config.base_url and self.config.api != "responses"):
            return OpenAIChatCompletionsModel(model=model_name, openai_client=self._client)
        return OpenAIResponsesModel(model=model_name, openai_client=self._client)

    async def close(self) -> None:
        """Close the OpenAI client."""
        if self._client is not None:
            await self._client.close()
