"""Strict, bounded JSON for documents that come from strangers (manifests first of all).

:func:`json.loads` accepts what no manifest should hold and fails in ways callers do not expect:
``NaN`` and ``Infinity`` (which :func:`json.dumps` with ``allow_nan=False`` then refuses), ``1e999``
(infinity), integers of 4,300+ digits (``ValueError``), ``"\\ud800"`` (a lone surrogate that UTF-8
cannot encode), duplicate keys (the last silently wins) and deep nesting (``RecursionError``, or
a crashed interpreter where the recursion limit was raised). :func:`loads` refuses all of these
with :class:`JSONRefused`; :func:`problem` checks values built in Python the same way, without
recursion; :func:`shown` and :func:`printable` turn hostile values into one short printable line
for error messages.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

#: how deeply objects and arrays may nest
MAX_DEPTH = 32
#: values (objects, arrays, strings, numbers) in one document; stops shared-subtree blow-ups
MAX_VALUES = 1_000_000
#: any integer anywhere: a signed 64-bit value (JSON readers in other languages agree up to here)
MAX_INT = 2**63 - 1
#: characters of one number literal (json.dumps writes at most 24)
MAX_NUMBER_TEXT = 64

#: C0/C1 controls except tab and newline, and lone surrogates (not encodable as UTF-8)
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
#: what else a one-line value may not hold: line breaks, tabs and bidi overrides
NOT_ONE_LINE = re.compile(r"[\t\n\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# JSON strings (possibly unterminated) and brackets, for the nesting pre-scan
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\Z)|[\[\]{}]', re.S)
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class JSONRefused(ValueError):
    """A document :func:`loads` refuses; ``str()`` is one printable line saying why."""


# -- reading --------------------------------------------------------------------------------
def loads(data: bytes | bytearray | memoryview | str, *, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """Parse UTF-8 JSON of at most ``max_bytes`` bytes, refusing what :func:`json.loads` lets by."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise JSONRefused(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise JSONRefused(f"{len(data)} bytes is more than the {max_bytes} allowed")
    try:
        text = bytes(data).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise JSONRefused(f"not UTF-8 (bad byte at offset {exc.start})") from None
    nesting = _nesting_problem(text, max_depth)
    if nesting:
        raise JSONRefused(nesting)
    try:
        return json.loads(text, parse_constant=_no_constant, parse_int=_int, parse_float=_float,
                          object_pairs_hook=_object)
    except JSONRefused:
        raise
    except json.JSONDecodeError as exc:
        raise JSONRefused(f"not JSON ({printable(str(exc), 120)})") from None
    except (ValueError, RecursionError, OverflowError, MemoryError) as exc:
        raise JSONRefused(f"not JSON ({type(exc).__name__})") from None


def _no_constant(name: str) -> object:
    raise JSONRefused(f"{name} is not a JSON number")


def _int(text: str) -> int:
    # int() of 4,300+ digits raises ValueError; up to this limit, validation can name the field
    if len(text) > MAX_NUMBER_TEXT:
        raise JSONRefused(f"integer {text[:20]}... is too large")
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_TEXT:
        raise JSONRefused(f"number {text[:20]}... is too long")
    value = float(text)
    if not math.isfinite(value):
        raise JSONRefused(f"number {text} is out of range")
    return value


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise JSONRefused(f"key {shown(key, 40)} appears twice in one object")
        result[key] = value
    return result


def _nesting_problem(text: str, max_depth: int) -> str | None:
    """Refuse deep nesting before the recursive json parser sees it."""
    if text.count("[") + text.count("{") <= max_depth:
        return None
    depth = 0
    for token in _TOKEN.finditer(text):
        char = token.group()
        if char in "[{":
            depth += 1
            if depth > max_depth:
                return f"nests deeper than {max_depth} levels"
        elif char in "]}":
            depth -= 1
    return None


# -- checking values built in Python --------------------------------------------------------
def problem(data: object, *, json_only: bool = False, depth: int = 0,
            max_depth: int = MAX_DEPTH) -> tuple[str, str] | None:
    """The first value in ``data`` a strict JSON document cannot hold, as (field path, why), or None.

    Refuses lone surrogates and control characters (tab and newline aside) in strings and keys,
    integers beyond :data:`MAX_INT`, NaN and infinities. Walks without recursion (hostile nesting
    cannot overflow the stack) and stops at ``max_depth`` (``depth`` is where ``data`` sits) and
    :data:`MAX_VALUES` (a structure that shares or contains itself cannot run forever).
    ``json_only`` also refuses non-text keys and types JSON has no word for.
    """
    stack: list[tuple[object, tuple[object, ...], int]] = [(data, (), depth)]
    seen = 0
    while stack:
        value, loc, level = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            return field_path(loc), f"holds more than {MAX_VALUES} values"
        if isinstance(value, str):
            if CONTROL.search(value):
                return field_path(loc), "must not contain control characters or lone surrogates"
        elif isinstance(value, bool) or value is None:
            pass
        elif isinstance(value, int):
            if not -MAX_INT <= value <= MAX_INT:
                return field_path(loc), f"integer out of range (at most {MAX_INT} in size)"
        elif isinstance(value, float):
            if not math.isfinite(value):
                return field_path(loc), "must be a finite number (not NaN or Infinity)"
        elif isinstance(value, (dict, list, tuple)):
            if level >= max_depth:
                return field_path(loc), f"nests deeper than {max_depth} levels"
            if isinstance(value, dict):
                for key, item in value.items():
                    if not isinstance(key, str):
                        if json_only:
                            return field_path(loc), f"has a key that is not text ({shown(key, 30)})"
                    elif CONTROL.search(key):
                        return field_path(loc + (key,)), "key must not contain control characters or lone surrogates"
                    stack.append((item, loc + (key,), level + 1))
            else:
                stack.extend((item, loc + (i,), level + 1) for i, item in enumerate(value))
        elif json_only:
            return field_path(loc), f"must be a JSON value, not {type(value).__name__}"
    return None


# -- showing hostile values in one line -----------------------------------------------------
def shown(value: object, limit: int = 60) -> str:
    """A short, printable, one-line ASCII preview of any value (never raises, never huge)."""
    try:
        text = _preview(value, limit, 2)
    except Exception:  # a hostile __len__/__repr__; show the type alone
        text = f"<{type(value).__name__}>"
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _preview(value: object, limit: int, levels: int) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return repr(value)
    if isinstance(value, int):  # repr() of 4,300+ digits raises ValueError
        return repr(value) if value.bit_length() <= 200 else f"<integer of {value.bit_length()} bits>"
    if isinstance(value, str):
        return repr(value[:limit])
    if isinstance(value, (dict, list, tuple)):
        if not levels:
            return "{...}" if isinstance(value, dict) else "[...]"
        items = list(value.items() if isinstance(value, dict) else value)[:8]
        parts: list[str] = []
        for item in items:
            if isinstance(value, dict):
                parts.append(f"{_preview(item[0], 20, 0)}: {_preview(item[1], 20, levels - 1)}")
            else:
                parts.append(_preview(item, 20, levels - 1))
            if sum(map(len, parts)) > limit:
                break
        body = ", ".join(parts) + (", ..." if len(parts) < len(value) else "")
        return f"{{{body}}}" if isinstance(value, dict) else f"[{body}]"
    return f"<{type(value).__name__}>"


def field_path(loc: tuple[object, ...] | list[object]) -> str:
    """``a.b.0.c`` for a location; keys that are not plain words are shown quoted and escaped."""
    parts = []
    for part in loc:
        text = str(part) if isinstance(part, (str, int)) and not isinstance(part, bool) else shown(part, 30)
        if not _PLAIN_KEY.fullmatch(text):
            text = shown(text, 30)
        parts.append(text)
    return ".".join(parts) or "(root)"


def printable(text: str, limit: int = 300) -> str:
    """``text`` as one printable line of at most ``limit`` characters (controls escaped)."""
    def escape(match: re.Match[str]) -> str:
        return match.group().encode("unicode_escape").decode("ascii")

    text = NOT_ONE_LINE.sub(escape, CONTROL.sub(escape, text))
    return text if len(text) <= limit else text[:limit - 3] + "..."
