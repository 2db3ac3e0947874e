"""Every hook is documented in docs/plugins.md and has a test named test_hook_<name>."""

import re
from pathlib import Path

import pytest

from gptstore import plugins

ROOT = Path(__file__).resolve().parent.parent
HOOKS = plugins.HOOKS  # the specified hooks (a plugin's misspelled one is not part of the contract)


def all_test_sources() -> str:
    files = list((ROOT / "tests").rglob("test_*.py")) + list((ROOT / "plugins").glob("*/tests/**/test_*.py"))
    return "\n".join(f.read_text() for f in files)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_with_its_signature(hook):
    spec = getattr(plugins.pm.hook, hook).spec
    signature = f"### `{hook}({', '.join(spec.argnames)})`"
    assert signature in (ROOT / "docs" / "plugins.md").read_text(), f"missing heading {signature}"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook):
    assert re.search(rf"def test_hook_{hook}\b", all_test_sources()), f"no test_hook_{hook}"
