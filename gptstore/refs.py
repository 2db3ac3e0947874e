r"""Model references: ``namespace/name[:tag][@sha256:<hex>]``.

Names follow the Hub's rules: two segments of letters, digits and ``-_.``, each at most 96
characters, starting and ending with a letter, digit or ``_``, with no ``--`` or ``..``.
The tag defaults to ``latest``; a pinned digest always wins over the tag.

Every pattern is anchored with ``\A``/``\Z`` and applied with ``fullmatch``: a ``$`` anchor also
matches before a trailing newline, which once let ``bob/evil\n`` through as a valid name.
Surrounding spaces of a whole reference are forgiven (a typed CLI argument); a control character
anywhere (newline, tab, NUL, escape) is refused, since such a reference comes from a file or a store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import InvalidReference

DEFAULT_TAG = "latest"
#: the longest reference text looked at (the longest valid one is under 400 characters)
MAX_REFERENCE_LENGTH = 1024
_SEGMENT = re.compile(r"\A[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?\Z")
_TAG = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}\Z")
_DIGEST = re.compile(r"\A[0-9a-f]{64}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
#: a semantic version; use ``SEMVER.fullmatch`` (the ``\A``/``\Z`` anchors keep ``.match`` safe too)
SEMVER = re.compile(
    r"\A(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?\Z"
)


def is_semver(text: object) -> bool:
    """Whether ``text`` is exactly a semantic version (no surrounding whitespace or newline)."""
    return isinstance(text, str) and SEMVER.fullmatch(text) is not None


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


def segment_problem(segment: object, what: str) -> str | None:
    """Why ``segment`` is not a valid namespace or name, or None when it is."""
    if not isinstance(segment, str):
        return f"the {what} must be text, not {type(segment).__name__}"
    if not segment:
        return f"the {what} is empty"
    if len(segment) > 96:
        return f"the {what} is longer than 96 characters"
    if "--" in segment or ".." in segment:
        return f"the {what} {segment!r} contains '--' or '..'"
    if not _SEGMENT.fullmatch(segment):
        return (f"the {what} {segment!r} may hold only letters, digits and -_. "
                "and must start and end with a letter, digit or _")
    return None


def check_segment(segment: str, text: str, what: str) -> None:
    """Raise :class:`InvalidReference` unless ``segment`` is a valid namespace or name."""
    problem = segment_problem(segment, what)
    if problem:
        raise InvalidReference(text, problem)


def is_digest(text: object) -> bool:
    """Whether ``text`` is exactly 64 lowercase hex characters."""
    return isinstance(text, str) and _DIGEST.fullmatch(text) is not None


def parse_reference(text: str) -> Reference:
    """Parse a reference, raising :class:`InvalidReference` with the expected form."""
    if not isinstance(text, str):
        raise InvalidReference(f"<{type(text).__name__}>", "a reference must be text")
    if len(text) > MAX_REFERENCE_LENGTH:
        raise InvalidReference(text, f"it is longer than {MAX_REFERENCE_LENGTH} characters")
    if _CONTROL.search(text):
        raise InvalidReference(text, "it contains a control character (newline, tab, NUL, ...)")
    raw = text.strip(" ")
    if not raw:
        raise InvalidReference(text, "it is empty")
    digest = None
    if "@" in raw:
        raw, _, pin = raw.partition("@")
        if not pin.startswith("sha256:"):
            raise InvalidReference(text, "a pinned digest must start with 'sha256:'")
        digest = pin[len("sha256:"):]
        if not _DIGEST.fullmatch(digest):
            raise InvalidReference(text, "the digest must be 64 lowercase hex characters")
    tag = DEFAULT_TAG
    explicit = False
    if ":" in raw:
        raw, _, tag = raw.partition(":")
        explicit = True
        if not _TAG.fullmatch(tag):
            shown = tag if len(tag) <= 40 else tag[:37] + "..."
            raise InvalidReference(text, f"the tag {shown!r} is not valid (up to 128 letters, digits "
                                         "and _.+-, starting with a letter, digit or _)")
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
    ref = parse_reference(text)
    if ref.explicit_tag or ref.digest:
        raise InvalidReference(text, "give namespace/name without a tag or digest here")
    return ref
