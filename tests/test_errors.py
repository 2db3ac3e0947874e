"""errors.py is the one home of gptstore's error classes, and its docstring draws their tree."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import gptstore
import gptstore.errors as errors

TREE_LINE = re.compile(r"^\s{4}(?P<indent>[ │├└─]*?)(?P<name>[A-Z]\w+)(?: \((?P<builtins>[\w, ]+)\))?(?:\s|$)")


def drawn_tree() -> dict[str, tuple[str | None, list[str]]]:
    """``{class: (parent drawn above it, built-ins named in brackets)}`` from the docstring."""
    found: dict[str, tuple[str | None, list[str]]] = {}
    stack: list[tuple[int, str]] = []
    for line in (errors.__doc__ or "").splitlines():
        match = TREE_LINE.match(line)
        if not match or not (match["name"] == "GPTStoreError" or match["indent"]):
            continue
        depth = len(match["indent"])
        while stack and stack[-1][0] >= depth:
            stack.pop()
        builtins = [b.strip() for b in (match["builtins"] or "").split(",") if b.strip()]
        found[match["name"]] = (stack[-1][1] if stack else None, builtins)
        stack.append((depth, match["name"]))
    return found


def error_classes() -> dict[str, type]:
    return {name: obj for name, obj in vars(errors).items()
            if inspect.isclass(obj) and issubclass(obj, errors.GPTStoreError)}


def test_every_error_class_is_drawn_under_its_real_parent():
    drawn, classes = drawn_tree(), error_classes()
    assert set(drawn) == set(classes)
    for name, (parent, builtins) in drawn.items():
        cls = classes[name]
        bases = [b.__name__ for b in cls.__bases__]
        if parent is None:
            assert cls is errors.GPTStoreError
            continue
        assert bases[0] == parent, f"{name} is drawn under {parent} but subclasses {bases[0]}"
        assert bases[1:] == builtins, f"{name}: drawn with {builtins}, inherits {bases[1:]}"


def test_the_errors_that_lived_elsewhere_are_in_the_tree():
    classes = error_classes()
    assert issubclass(classes["MalformedSignature"], errors.TrustError)
    for name in ("PluginInstallError", "DemoFailed", "ClaimMismatch"):
        assert classes[name].__bases__ == (errors.GPTStoreError,)


def test_no_error_class_is_defined_outside_errors_py():
    """No module (the server included) defines a subclass of a gptstore error of its own."""
    root = Path(gptstore.__file__).parent
    names = set(error_classes())
    outside = []
    for path in sorted(root.rglob("*.py")):
        if path == root / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
                if bases & names:
                    outside.append(f"{path.relative_to(root)}:{node.lineno} {node.name}")
    assert outside == []
