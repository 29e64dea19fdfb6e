"""Dictation (ChatKit's ``input.transcribe``): speech to text through an OpenAI-compatible server.

The edge reaches the speech-to-text model through this one small interface;
tests point it at a fake server on localhost. Configured when the deployment
has a model (``OPENAI_API_KEY`` or ``OPENAI_BASE_URL``, as the agent runner's
model), with ``SWITCHBOARD_TRANSCRIBE_MODEL`` naming the transcription model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

import openai
from chatkit.types import AudioInput, TranscriptionResult

from switchboard.config import env_float, env_int, env_str
from switchboard.errors import InvalidArgument, ResourceExhausted, Unavailable

log = logging.getLogger(__name__)

DEFAULT_MODEL = "gpt-4o-mini-transcribe"
# What browsers record (ChatKit sends audio/webm, audio/ogg or audio/mp4) and the
# formats the /audio/transcriptions endpoint accepts, each with the file name
# extension the server reads the format from.
AUDIO_TYPES = {
    "audio/webm": "webm",
    "audio/ogg": "ogg",
    "audio/mp4": "mp4",
    "audio/m4a": "m4a",
    "audio/x-m4a": "m4a",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/flac": "flac",
}
NOT_CONFIGURED = (
    "dictation (input.transcribe) is not configured on this server: set OPENAI_API_KEY or OPENAI_BASE_URL"
    " (and SWITCHBOARD_TRANSCRIBE_MODEL) on the edge"
)


class Transcriber(Protocol):
    """Speech to text."""

    async def transcribe(self, audio: AudioInput) -> TranscriptionResult:
        """The text spoken in ``audio`` (validated already)."""
        ...


@dataclass(frozen=True)
class TranscriptionConfig:
    """Where dictation goes.

    Attributes:
        model: The transcription model; None: dictation is not configured.
        api_key: ``OPENAI_API_KEY`` (a compatible server may need none).
        base_url: ``OPENAI_BASE_URL``; None: OpenAI.
        max_bytes: Largest audio accepted (413 past it).
        timeout: Seconds a transcription may take.
    """

    model: str | None = None
    api_key: str | None = None
    base_url: str | None = None
    max_bytes: int = 10 * 1024 * 1024
    timeout: float = 60.0

    @classmethod
    def from_env(cls) -> TranscriptionConfig:
        """Read ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``SWITCHBOARD_TRANSCRIBE_MODEL``
        (``off`` turns dictation off), ``SWITCHBOARD_TRANSCRIBE_MAX_BYTES`` and
        ``SWITCHBOARD_TRANSCRIBE_TIMEOUT_SECONDS``."""
        api_key = env_str("OPENAI_API_KEY")
        base_url = env_str("OPENAI_BASE_URL")
        model = env_str("SWITCHBOARD_TRANSCRIBE_MODEL") or DEFAULT_MODEL
        configured = (api_key or base_url) and model.lower() != "off"
        return cls(
            model=model if configured else None,
            api_key=api_key,
            base_url=base_url,
            max_bytes=env_int("SWITCHBOARD_TRANSCRIBE_MAX_BYTES", cls.max_bytes, minimum=1024),
            timeout=env_float("SWITCHBOARD_TRANSCRIBE_TIMEOUT_SECONDS", cls.timeout, minimum=1.0),
        )


def check_audio(audio: AudioInput, *, max_bytes: int) -> str:
    """Validate dictated audio from a client; its file name extension.

    Raises:
        InvalidArgument: no audio, or a MIME type that is not audio the server takes.
        ResourceExhausted: more than ``max_bytes``.
    """
    media = audio.media_type.strip().lower()
    if media not in AUDIO_TYPES:
        raise InvalidArgument(
            f"mime_type {audio.mime_type[:80]!r} is not audio dictation accepts (one of {', '.join(AUDIO_TYPES)})"
        )
    if not audio.data:
        raise InvalidArgument("audio_base64 is empty: there is nothing to transcribe")
    if len(audio.data) > max_bytes:
        raise ResourceExhausted(f"the audio is {len(audio.data)} bytes; dictation takes at most {max_bytes}")
    return AUDIO_TYPES[media]


class OpenAITranscriber:
    """Transcription through ``POST {base_url}/audio/transcriptions`` with the openai client.

    Args:
        config: A configured ``TranscriptionConfig`` (its ``model`` set).
    """

    def __init__(self, config: TranscriptionConfig) -> None:
        if config.model is None:
            raise ValueError("OpenAITranscriber needs a model")
        self._model = config.model
        self._max_bytes = config.max_bytes
        # A compatible server without keys still needs the client to send one.
        self._client = openai.AsyncOpenAI(
            api_key=config.api_key or "not-needed",
            base_url=config.base_url,
            timeout=config.timeout,
            max_retries=1,
        )

    async def transcribe(self, audio: AudioInput) -> TranscriptionResult:
        extension = check_audio(audio, max_bytes=self._max_bytes)
        try:
            reply = await self._client.audio.transcriptions.create(
                model=self._model,
                file=(f"dictation.{extension}", audio.data, audio.media_type),
                response_format="json",
            )
        except openai.BadRequestError as error:
            # The server could not read the audio (corrupt, too short, wrong format): the client's input.
            raise InvalidArgument(f"the audio could not be transcribed: {_reason(error)}") from None
        except (openai.AuthenticationError, openai.PermissionDeniedError):
            log.warning("the transcription server refused the API key (OPENAI_API_KEY)")
            raise Unavailable("dictation is unavailable: the speech-to-text server refused this server's key") from None
        except openai.APIStatusError as error:
            log.warning("transcription failed: HTTP %s %s", error.status_code, _reason(error))
            raise Unavailable(
                f"dictation is unavailable right now (the speech-to-text server said {error.status_code})"
            ) from None
        except (openai.APIConnectionError, openai.APITimeoutError) as error:
            log.warning("transcription server unreachable: %s", error)
            raise Unavailable(
                "dictation is unavailable right now: the speech-to-text server cannot be reached"
            ) from None
        return TranscriptionResult(text=reply.text.strip())

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.close()


def _reason(error: openai.APIStatusError) -> str:
    """The server's own words for a refusal, short."""
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error")
        message = inner.get("message") if isinstance(inner, dict) else body.get("message")
        if isinstance(message, str) and message:
            return message[:200]
    return str(error.message)[:200]


def transcriber_from(config: TranscriptionConfig) -> OpenAITranscriber | None:
    """The configured transcriber, or None when dictation is not configured."""
    return OpenAITranscriber(config) if config.model is not None else None
