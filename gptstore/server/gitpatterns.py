"""``.gitattributes`` and ``.gitignore`` patterns, as git reads them, for preupload's answers.

The Hub decides a file's upload mode by the repo's ``.gitattributes`` (``filter=lfs``) and whether
to skip it by ``.gitignore``; the stock client only follows those answers. Patterns use git's
wildmatch: a pattern without ``/`` matches the basename at any depth, one with ``/`` is anchored at
the repo root; ``*`` and ``?`` stop at ``/``; ``**/``, ``/**/`` and a trailing ``/**`` span folders.

Matching runs as a state-set simulation (time linear in path × pattern), never a backtracking
regex, so a hostile pattern cannot stall the server; texts and rule counts are capped.
"""

from __future__ import annotations

from dataclasses import dataclass

#: the Hub's default ``.gitattributes`` for a new model repo (plus ``*.gguf`` and ``*.png``)
HUB_GITATTRIBUTES = "".join(f"{pattern} filter=lfs diff=lfs merge=lfs -text\n" for pattern in (
    "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gguf", "*.gz", "*.h5", "*.joblib", "*.lfs.*",
    "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb", "*.pickle", "*.png",
    "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors", "saved_model/**/*", "*.tar.*", "*.tar", "*.tflite",
    "*.tgz", "*.wasm", "*.xz", "*.zip", "*.zst", "*tfevents*")).encode()

#: most bytes of a pattern file that are read (the rest is not looked at)
MAX_PATTERN_TEXT = 256 * 1024
#: most rules taken from one pattern file (each costs time for every path of a preupload)
MAX_RULES = 500
#: longest pattern taken; longer ones are skipped
MAX_PATTERN = 1024

# tokens: ("c", char) literal · ("?",) one non-slash · ("[", negated, ranges) class ·
# ("*",) non-slash run · ("**",) any run · ("opt", n) the next n tokens may be skipped
Token = tuple


def _class(pattern: str, start: int) -> tuple[Token, int] | None:
    """The class starting after ``[`` at ``start``; None when it is not closed (then ``[`` is literal)."""
    i = start
    negated = i < len(pattern) and pattern[i] in "!^"
    i += negated
    ranges: list[tuple[str, str]] = []
    first = True
    while i < len(pattern):
        ch = pattern[i]
        if ch == "]" and not first:
            return ("[", negated, tuple(ranges)), i + 1
        first = False
        if ch == "\\" and i + 1 < len(pattern):
            i += 1
            ch = pattern[i]
        if i + 2 < len(pattern) and pattern[i + 1] == "-" and pattern[i + 2] != "]":
            end = pattern[i + 2]
            if end == "\\" and i + 3 < len(pattern):
                i += 1
                end = pattern[i + 2]
            ranges.append((ch, end))
            i += 3
        else:
            ranges.append((ch, ch))
            i += 1
    return None


def compile_glob(pattern: str) -> tuple[Token, ...]:
    """Tokens for a pattern matched against a whole path (anchoring is the caller's choice)."""
    tokens: list[Token] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if pattern.startswith("**", i):
            at_start = i == 0 or pattern[i - 1] == "/"
            j = i
            while j < n and pattern[j] == "*":
                j += 1
            if at_start and (j == n or pattern[j] == "/"):
                if j == n:  # "/**" at the end (or a bare "**"): everything below
                    tokens.append(("**",))
                    i = j
                else:  # "**/" : zero or more folders
                    tokens += [("opt", 2), ("**",), ("c", "/")]
                    i = j + 1
                continue
            tokens.append(("*",))
            i = j
        elif ch == "*":
            tokens.append(("*",))
            i += 1
        elif ch == "?":
            tokens.append(("?",))
            i += 1
        elif ch == "[" and (parsed := _class(pattern, i + 1)) is not None:
            tokens.append(parsed[0])
            i = parsed[1]
        elif ch == "\\" and i + 1 < n:
            tokens.append(("c", pattern[i + 1]))
            i += 2
        else:
            tokens.append(("c", ch))
            i += 1
    return tuple(tokens)


def _closure(tokens: tuple[Token, ...], states: set[int]) -> set[int]:
    todo = list(states)
    seen = set(states)
    while todo:
        i = todo.pop()
        if i >= len(tokens):
            continue
        kind = tokens[i][0]
        nexts = (i + 1,) if kind in ("*", "**") else (i + 1, i + 1 + tokens[i][1]) if kind == "opt" else ()
        for j in nexts:
            if j not in seen:
                seen.add(j)
                todo.append(j)
    return seen


def _step(token: Token, i: int, ch: str) -> int | None:
    kind = token[0]
    if kind == "c":
        return i + 1 if token[1] == ch else None
    if kind == "?":
        return i + 1 if ch != "/" else None
    if kind == "[":
        inside = any(low <= ch <= high for low, high in token[2])
        return i + 1 if ch != "/" and inside != token[1] else None
    if kind == "*":
        return i if ch != "/" else None
    if kind == "**":
        return i
    return None


def glob_match(tokens: tuple[Token, ...], text: str) -> bool:
    states = _closure(tokens, {0})
    for ch in text:
        moved = {j for i in states if i < len(tokens) and (j := _step(tokens[i], i, ch)) is not None}
        if not moved:
            return False
        states = _closure(tokens, moved)
    return len(tokens) in states


@dataclass(frozen=True)
class Rule:
    tokens: tuple[Token, ...]
    anchored: bool  # has a "/" (other than a trailing one): matched against the whole path
    value: bool  # gitattributes: filter=lfs set; gitignore: ignored (False for a "!" rule)
    directory: bool = False  # gitignore "dir/": matches folders only

    def matches(self, path: str) -> bool:
        return glob_match(self.tokens, path if self.anchored else path.rsplit("/", 1)[-1])


def _rule(pattern: str, value: bool, *, directory: bool = False) -> Rule | None:
    if not pattern or len(pattern) > MAX_PATTERN:
        return None
    anchored = "/" in pattern
    return Rule(compile_glob(pattern.lstrip("/") if anchored else pattern), anchored, value, directory)


def _lines(text: str) -> list[str]:
    return text[:MAX_PATTERN_TEXT].splitlines()


class GitAttributes:
    """Which paths a ``.gitattributes`` puts in LFS (``filter=lfs``; the last matching line that
    names ``filter`` decides, as in git)."""

    def __init__(self, text: str) -> None:
        self.rules: list[Rule] = []
        for line in _lines(text):
            fields = line.split()
            if not fields or fields[0].startswith("#") or fields[0].startswith("!") or fields[0].endswith("/"):
                continue
            decided = [f == "filter=lfs" for f in fields[1:]
                       if f.startswith("filter=") or f in ("-filter", "!filter")]
            if decided and (rule := _rule(fields[0], decided[-1])) is not None:
                self.rules.append(rule)
            if len(self.rules) >= MAX_RULES:
                break

    def is_lfs(self, path: str) -> bool:
        for rule in reversed(self.rules):
            if rule.matches(path):
                return rule.value
        return False


class GitIgnore:
    """Which paths a root ``.gitignore`` ignores: ``!`` re-includes, ``dir/`` matches folders
    only, and nothing below an ignored folder can be re-included (as in git)."""

    def __init__(self, text: str) -> None:
        self.rules: list[Rule] = []
        for line in _lines(text):
            if not line or line.startswith("#"):
                continue
            if not line.endswith("\\ "):
                line = line.rstrip(" ")
            negated = line.startswith("!")
            line = line[1:] if negated else line
            directory = line.endswith("/")
            rule = _rule(line.rstrip("/"), not negated, directory=directory)
            if rule is not None:
                self.rules.append(rule)
            if len(self.rules) >= MAX_RULES:
                break

    def _decide(self, path: str, folder: bool) -> bool:
        for rule in reversed(self.rules):
            if (folder or not rule.directory) and rule.matches(path):
                return rule.value
        return False

    def ignores(self, path: str) -> bool:
        if not self.rules:
            return False
        parts = path.split("/")
        if any(self._decide("/".join(parts[:i]), True) for i in range(1, len(parts))):
            return True
        return self._decide(path, False)
