"""What a generation returns: :class:`Completion` (and :class:`TextStream` for ``Model.stream``)."""

from __future__ import annotations

from typing import Generator, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

FinishReason = Literal["length", "stop", "eos"]


class Usage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt_tokens: int = Field(0, ge=0, description="Tokens in the prompt (after the template).")
    completion_tokens: int = Field(0, ge=0, description="Tokens generated, including an end-of-sequence token.")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Timings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    load_s: float = Field(0.0, ge=0, description="Seconds `gptstore.load` took for this model "
                                                  "(small when the weights were already warm).")
    first_token_s: float | None = Field(None, ge=0, description="Seconds from the call to the first generated "
                                                                "token (the whole batch's first step).")
    total_s: float = Field(0.0, ge=0, description="Seconds the generation took.")
    tokens_per_s: float = Field(0.0, ge=0, description="Completion tokens / total_s.")


class Completion(BaseModel):
    """One generated text.

    ``finish_reason``: ``eos`` (the model ended it), ``stop`` (a stop string appeared; the text is
    cut before it) or ``length`` (``max_new_tokens`` or the model's context ran out).
    """

    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="The generated text, without the prompt.")
    finish_reason: FinishReason = Field(description="Why generation ended: length, stop or eos.")
    usage: Usage = Field(default_factory=Usage, description="Token counts.")
    timings: Timings = Field(default_factory=Timings, description="Where the time went.")
    token_ids: list[int] = Field(default_factory=list, exclude=True, repr=False,
                                 description="Generated token ids (not serialised).")


class TextStream(Iterator[str]):
    """Text pieces as they are produced; ``completion`` is set once the stream is exhausted.

    Joined, the pieces equal the completion's text. ``usage`` counts tokens so far (it is what
    gets recorded when a stream is abandoned early). Closing the stream (or leaving a ``with``
    block, or dropping it) stops the generation.
    """

    def __init__(self, pieces: Generator[str, None, Completion], usage: Usage) -> None:
        self._pieces = pieces
        self.usage = usage
        self.completion: Completion | None = None

    def __iter__(self) -> TextStream:
        return self

    def __next__(self) -> str:
        try:
            return next(self._pieces)
        except StopIteration as done:
            if done.value is not None:
                self.completion = done.value
            raise

    def close(self) -> None:
        self._pieces.close()

    def __enter__(self) -> TextStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
