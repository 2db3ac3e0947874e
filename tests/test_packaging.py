"""`package`: the adapter's ``inspect`` gets ``base=`` as the Adapter protocol says, always."""

from __future__ import annotations

import pytest

from gptstore.adapters.transformers import TransformersAdapter
from gptstore.errors import UsageError
from gptstore.hookspecs import hookimpl
from gptstore.packaging import package
from gptstore.testing import tree_state


def test_a_full_model_format_refuses_a_base_and_writes_nothing(tiny_gpt):
    before = tree_state(tiny_gpt)
    with pytest.raises(UsageError, match=r"^package format 'transformers' does not take a base model "
                                         r"\(got --base acme/base\); --base is for formats over a base model"):
        package(tiny_gpt, name="acme/tiny", version="1.0.0", base="acme/base")
    assert tree_state(tiny_gpt) == before


def test_the_base_reaches_the_adapter_as_given(tiny_gpt, register_plugin):
    seen: list[str | None] = []

    class OverABase(TransformersAdapter):
        name = "over-a-base"

        def detect(self, path):
            return False

        def inspect(self, path, *, allow_unsafe=False, base=None):
            seen.append(base)
            return super().inspect(path, allow_unsafe=allow_unsafe)

    class Plugin:
        @hookimpl
        def register_adapters(self, register):
            register(OverABase())

    register_plugin(Plugin(), name="over-a-base-plugin")
    package(tiny_gpt, name="acme/tiny", version="1.0.0", adapter="over-a-base", base="acme/base:1.0.0")
    package(tiny_gpt, name="acme/tiny", version="1.0.0", adapter="over-a-base")
    assert seen == ["acme/base:1.0.0", None]
