"""The request bodies of the OpenAI-compatible endpoints, as pydantic models.

Every body is validated here, before a model is looked up or loaded: unknown fields are refused
(``extra="forbid"``) so that a misspelt parameter is a 400 naming it, not silently ignored. The
gptstore extensions an OpenAI client sends through ``extra_body`` arrive as top-level fields:
``strategy`` and ``num_beams`` (beam search), ``top_k``, ``repetition_penalty``, ``keep_alive`` (as
ollama has it) and, for completions, ``raw``. Their ranges are :class:`~gptstore.engines.params.GenerationParams`'s,
checked when the request is turned into params (:mod:`.generation`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: the longest text accepted in one prompt or message (characters; the body cap comes first)
MAX_TEXT = 1_000_000
Text = Annotated[str, Field(max_length=MAX_TEXT)]
KeepAlive = int | float | str | None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_usage: bool = False


class _Common(BaseModel):
    """Fields both endpoints take."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=400)
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)
    temperature: float | None = None
    top_p: float | None = None
    n: int = Field(1, ge=1, le=16)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(None, max_length=256)
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    # gptstore extensions (extra_body)
    strategy: Literal["greedy", "beam", "sample"] | None = None
    num_beams: int | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    keep_alive: KeepAlive = None

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> list[str] | None:
        if value is None:
            return None
        return [value] if isinstance(value, str) else value

    @field_validator("presence_penalty", "frequency_penalty")
    @classmethod
    def _no_penalties(cls, value: float | None) -> float | None:
        if value:
            raise ValueError("is not supported (only 0); use repetition_penalty through extra_body")
        return value


class CompletionRequest(_Common):
    """``POST /v1/completions``."""

    prompt: Text | list[Text] = Field(description="One prompt or a list (up to 64).")
    logprobs: int | None = Field(None, ge=0, le=5)
    echo: bool = False
    raw: bool = True  #: False applies the manifest's prompt template, as Model.generate does by default

    @field_validator("prompt")
    @classmethod
    def _prompts(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not 1 <= len(value) <= 64:
            raise ValueError("give between 1 and 64 prompts")
        return value


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text"]
    text: Text


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant"]
    content: Text | list[TextPart] | None = None
    name: str | None = Field(None, max_length=64)

    @property
    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class ChatRequest(_Common):
    """``POST /v1/chat/completions``."""

    messages: list[Message] = Field(min_length=1, max_length=1000)
    max_completion_tokens: int | None = Field(None, ge=1, le=1_000_000)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=5)
