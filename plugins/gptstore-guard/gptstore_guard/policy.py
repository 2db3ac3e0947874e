"""The guard's policy: which terms refuse a prompt, and what is redacted from outputs.

It lives in a JSON file, ``guard.json`` under ``GPTSTORE_HOME`` (or wherever
``GPTSTORE_GUARD_CONFIG`` points)::

    {"block": ["hunter2", "project x"], "redact": ["email", "phone", "blocked"]}

Without the file the defaults apply: nothing is blocked, everything is redacted.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from gptstore import config
from gptstore.errors import GPTStoreError

ENV_VAR = "GPTSTORE_GUARD_CONFIG"
KINDS = ("email", "phone", "blocked")  # what can be redacted; where two match, the first wins
MASKS = {"email": "[email]", "phone": "[phone]", "blocked": "[blocked]"}


class GuardError(GPTStoreError):
    """The guard's config cannot be read or changed."""


class PromptRefused(GuardError):
    """A prompt contains a blocked term; ``terms`` lists them."""

    def __init__(self, terms: list[str]) -> None:
        self.terms = terms
        listed = ", ".join(repr(t) for t in terms)
        super().__init__(f"prompt refused by gptstore-guard: it contains the blocked term(s) {listed}",
                         hint="rephrase it, or see `gptstore guard show`")


def config_path() -> Path:
    value = config.env(ENV_VAR)
    return Path(value).expanduser() if value else config.home() / "guard.json"


EMAIL = r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])"
PHONE = r"""
    (?<![\w.,+-])                   # not inside a word or another number
    (?:\+\d{1,3}[ .-]?)?            # +country code
    (?:\(\d{1,4}\)[ .-]?)?          # (area code)
    \d{2,4}(?:[ .-]?\d{2,4}){1,4}   # groups of digits, single separators
    (?!\w|[.,-]\d)                  # not followed by more of a number
"""
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def is_phone(text: str) -> bool:
    """7 to 15 digits that are not a date; a bare run of digits needs at least 10."""
    digits = sum(c.isdigit() for c in text)
    return 7 <= digits <= 15 and not DATE.fullmatch(text) and (digits >= 10 or not text.isdigit())


def normalize(term: str) -> str:
    """A term as it is stored: surrounding whitespace dropped, inner whitespace one space."""
    return " ".join(term.split())


def term_pattern(terms: list[str]) -> str | None:
    """A case-insensitive, whole-word pattern for ``terms`` (any whitespace between words)."""
    if not terms:
        return None
    words = [r"\s+".join(re.escape(w) for w in t.split()) for t in sorted(terms, key=len, reverse=True)]
    return r"(?<!\w)(?:" + "|".join(words) + r")(?!\w)"


@dataclass
class Redaction:
    text: str
    counts: dict[str, int]


@dataclass
class Policy:
    block: list[str] = field(default_factory=list)
    redact: list[str] = field(default_factory=lambda: list(KINDS))

    def blocked(self, text: str) -> list[str]:
        """The blocked terms that occur in ``text`` as whole words, in any case."""
        return [t for t in self.block if re.search(term_pattern([t]), text, re.IGNORECASE)]

    def apply(self, text: str) -> Redaction:
        """``text`` with e-mail addresses, phone numbers and blocked terms masked, in one pass
        (so a mask is never redacted again, and an address is masked whole)."""
        patterns = {"email": EMAIL, "phone": PHONE, "blocked": term_pattern(self.block)}
        alternatives = [f"(?P<{kind}>{patterns[kind]})" for kind in KINDS
                        if kind in self.redact and patterns[kind] is not None]
        counts = dict.fromkeys(KINDS, 0)
        if not alternatives:
            return Redaction(text, counts)

        def mask(match: re.Match[str]) -> str:
            kind = match.lastgroup
            if kind == "phone" and not is_phone(match.group()):
                return match.group()
            counts[kind] += 1
            return MASKS[kind]

        pattern = re.compile("|".join(alternatives), re.IGNORECASE | re.VERBOSE)
        return Redaction(pattern.sub(mask, text), counts)

    def add(self, term: str) -> bool:
        """Block ``term``; False when it is already blocked (in any case)."""
        term = normalize(term)
        if not term:
            raise GuardError("a blocked term cannot be empty")
        if any(t.casefold() == term.casefold() for t in self.block):
            return False
        self.block.append(term)
        return True

    def remove(self, term: str) -> bool:
        """Unblock ``term`` (in any case); False when it was not blocked."""
        kept = [t for t in self.block if t.casefold() != normalize(term).casefold()]
        removed = len(kept) != len(self.block)
        self.block = kept
        return removed

    def to_dict(self) -> dict:
        return {"block": list(self.block), "redact": list(self.redact)}


def load_policy(path: Path | None = None) -> Policy:
    """The policy in ``path`` (default :func:`config_path`); the defaults when there is no file."""
    path = path or config_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Policy()
    except (OSError, ValueError) as exc:
        raise GuardError(f"cannot read the guard config {path}: {exc}",
                         hint="fix it, or delete it to get the defaults") from exc
    problem = _check(data)
    if problem:
        raise GuardError(f"invalid guard config {path}: {problem}",
                         hint='expected {"block": ["term", ...], "redact": ["email", "phone", "blocked"]}')
    return Policy(**data)


def _check(data: object) -> str | None:
    if not isinstance(data, dict):
        return "it must be a JSON object"
    unknown = set(data) - {"block", "redact"}
    if unknown:
        return f"unknown key(s) {', '.join(sorted(unknown))}"
    block = data.get("block", [])
    if not isinstance(block, list) or not all(isinstance(t, str) and t.strip() for t in block):
        return "'block' must be a list of non-empty strings"
    redact = data.get("redact", list(KINDS))
    if not isinstance(redact, list) or not set(redact) <= set(KINDS):
        return f"'redact' must be a list of {', '.join(KINDS)}"
    return None


def save_policy(policy: Policy, path: Path | None = None) -> Path:
    """Write the policy atomically (temp file, then rename)."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(policy.to_dict(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
