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


def test_repackaging_drops_the_stale_signature_and_verify_and_push_name_it(tiny_gpt, tmp_path, run_cli, caplog):
    import logging

    from gptstore.library import Library

    assert run_cli("keys", "generate", "release").exit_code == 0
    assert run_cli("package", str(tiny_gpt), "--name", "acme/tiny", "--version", "1.0.0").exit_code == 0
    assert run_cli("sign", str(tiny_gpt), "--key", "release").exit_code == 0
    signature = (tiny_gpt / "gptstore.sig").read_bytes()
    with caplog.at_level(logging.WARNING):
        again = run_cli("package", str(tiny_gpt), "--name", "acme/tiny", "--version", "1.0.1")
    assert again.exit_code == 0, again.output
    assert not (tiny_gpt / "gptstore.sig").exists()  # publish and push cannot ship it
    [line] = [r.getMessage() for r in caplog.records if r.name == "gptstore.packaging"]
    assert "it signed the previous manifest" in line and f"gptstore sign {tiny_gpt} --key NAME" in line

    (tiny_gpt / "gptstore.sig").write_bytes(signature)  # a stale signature put back by hand
    verified = run_cli("verify", str(tiny_gpt))
    assert "signature for another manifest" in verified.output and "untrusted" not in verified.output
    published = run_cli("publish", str(tiny_gpt))
    assert published.exit_code == 0 and "gptstore.sig signs another manifest than gptstore.json" in published.output
    Library(tmp_path / "other-store").lock().release()  # an empty library as the target store
    pushed = run_cli("push", "acme/tiny", "--store", str(tmp_path / "other-store"))
    assert pushed.exit_code == 1 and "signs another manifest" in pushed.output, pushed.output
    assert "gptstore sign DIR --key NAME" in pushed.output
    assert not Library(tmp_path / "other-store").refs()
    assert run_cli("sign", str(tiny_gpt), "--key", "release").exit_code == 0  # what the hints say to do
    assert "Warning" not in run_cli("publish", str(tiny_gpt)).output
    assert run_cli("push", "acme/tiny", "--store", str(tmp_path / "other-store")).exit_code == 0
