"""Model references: ``namespace/name[:tag][@sha256:<hex>]``.

Names follow the Hub's rules: two segments of letters, digits and ``-_.``, each at most 96
characters, starting and ending with a letter, digit or ``_``, with no ``--`` or ``..``.
The tag defaults to ``latest``; a pinned digest always wins over the tag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import InvalidReference

DEFAULT_TAG = "latest"
_SEGMENT = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)


@dataclass(frozen=True)
class Reference:
    namespace: str
    name: str
    tag: str = DEFAULT_TAG
    digest: str | None = None  # 64 lowercase hex, without the "sha256:" prefix
    explicit_tag: bool = field(default=False, compare=False)

    @property
    def repo_id(self) -> str:
        return f"{self.namespace}/{self.name}"

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.namespace, self.name, tag, None, True)

    def __str__(self) -> str:
        text = self.repo_id
        if self.explicit_tag or not self.digest:
            text += f":{self.tag}"
        if self.digest:
            text += f"@sha256:{self.digest}"
        return text


def check_segment(segment: str, text: str, what: str) -> None:
    if not segment:
        raise InvalidReference(text, f"the {what} is empty")
    if "--" in segment or ".." in segment:
        raise InvalidReference(text, f"the {what} {segment!r} contains '--' or '..'")
    if len(segment) > 96:
        raise InvalidReference(text, f"the {what} is longer than 96 characters")
    if not _SEGMENT.match(segment):
        raise InvalidReference(
            text, f"the {what} {segment!r} may hold only letters, digits and -_. "
                  "and must start and end with a letter, digit or _")


def parse(text: str) -> Reference:
    """Parse a reference, raising :class:`InvalidReference` with the expected form."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidReference(str(text), "it is empty")
    raw = text.strip()
    digest = None
    if "@" in raw:
        raw, _, pin = raw.partition("@")
        if not pin.startswith("sha256:"):
            raise InvalidReference(text, "a pinned digest must start with 'sha256:'")
        digest = pin[len("sha256:"):]
        if not _DIGEST.match(digest):
            raise InvalidReference(text, "the digest must be 64 lowercase hex characters")
    tag = DEFAULT_TAG
    explicit = False
    if ":" in raw:
        raw, _, tag = raw.partition(":")
        explicit = True
        if not _TAG.match(tag):
            raise InvalidReference(text, f"the tag {tag!r} is not valid")
    parts = raw.split("/")
    if len(parts) != 2:
        raise InvalidReference(text, "it needs exactly two segments, namespace/name")
    namespace, name = parts
    check_segment(namespace, text, "namespace")
    check_segment(name, text, "name")
    if name.endswith(".git"):
        raise InvalidReference(text, "the name may not end in .git")
    return Reference(namespace, name, tag, digest, explicit)


def parse_repo_id(text: str) -> Reference:
    """Parse ``namespace/name`` alone (no tag, no digest)."""
    ref = parse(text)
    if ref.explicit_tag or ref.digest:
        raise InvalidReference(text, "give namespace/name without a tag or digest here")
    return ref
