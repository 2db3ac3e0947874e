"""Chat messages to one prompt, in this order of preference:

1. the tokenizer's chat template (``tokenizer.chat_template``, applied with the generation prompt);
2. the manifest's ``prompt_template``: ``{prompt}`` becomes the conversation — the user's text when
   it is one user message (after an optional system message, which comes first, then a blank
   line), else the plain transcript below without its final ``Assistant:``;
3. a plain transcript, one ``Role: text`` line per message (``System``, ``User``, ``Assistant``),
   ending with ``Assistant:``; generation then also stops at ``\\nUser:`` so the model does not
   write the user's next turn.

Returns the prompt, whether the model's own template still has to be applied (case 2, so
``Model.generate`` runs with ``raw=False``) and the stop strings to add.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .schemas import Message

if TYPE_CHECKING:
    from ..model import Model

_ROLES = {"system": "System", "developer": "System", "user": "User", "assistant": "Assistant"}
PLAIN_STOP = "\nUser:"


def transcript(messages: list[Message]) -> str:
    return "".join(f"{_ROLES[m.role]}: {m.text}\n" for m in messages)


def render(model: Model, messages: list[Message]) -> tuple[str, bool, list[str]]:
    """(prompt, apply the manifest template?, extra stop strings). Runs in the model's worker."""
    tokenizer = getattr(model.runner, "tokenizer", None)
    if getattr(tokenizer, "chat_template", None):
        conversation: list[dict[str, Any]] = [
            {"role": "system" if m.role == "developer" else m.role, "content": m.text} for m in messages]
        return tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True), False, []
    if model.manifest.prompt_template:
        *before, last = messages
        if last.role == "user" and all(m.role in ("system", "developer") for m in before) and len(before) <= 1:
            text = (before[0].text + "\n\n" if before else "") + last.text
        else:
            text = transcript(messages).rstrip("\n")
        return text, True, []
    return transcript(messages) + "Assistant:", False, [PLAIN_STOP]
