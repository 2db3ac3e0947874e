"""Training methods: the ``register_finetune_methods`` hook, the built-in ``full`` registered
through it, and method options validated by the method's own options model."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field

from gptstore import plugins
from gptstore.errors import UsageError
from gptstore.hookspecs import hookimpl
from gptstore.training.config import FinetuneConfig, Method, make_config, methods
from gptstore.training.finetune import finetune


def test_hook_register_finetune_methods(register_plugin, tiny_gpt, topic_corpus, tmp_path):
    calls = []

    def check(options):
        unknown = set(options) - {"layers"}
        if unknown:
            raise UsageError(f"method 'top-layers' has no option {', '.join(sorted(unknown))}")
        return {"layers": 1} | options

    def prepare(model, options):
        calls.append(("prepare", options))
        for parameter in model.parameters():
            parameter.requires_grad = False
        for parameter in model.transformer.h[-options["layers"]:].parameters():
            parameter.requires_grad = True
        return model

    def save(*, model, tokenizer, out_dir, base):
        calls.append(("save", base))
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
        (out_dir / "NOTES.txt").write_text("only the top layers were trained\n")

    class Plugin:
        @hookimpl
        def register_finetune_methods(self, register):
            register("top-layers", prepare, check=check, save=save)
            register("broken", prepare, options=dict)  # not a pydantic model: reported, left out

    register_plugin(Plugin(), name="top-layers-plugin")
    known = methods()
    assert known["top-layers"].plugin == "top-layers-plugin" and "broken" not in known
    assert any(p.plugin == "top-layers-plugin" and "bad registration of finetune method 'broken'" in p.error
               for p in plugins.problems())
    assert make_config(method="top-layers").method_options == {"layers": 1}  # checked, defaults filled in

    with pytest.raises(UsageError, match="method 'top-layers' has no option nope"):
        finetune(tiny_gpt, topic_corpus.train, tmp_path / "bad",
                 config=FinetuneConfig(method="top-layers", method_options={"nope": 1}))
    assert calls == [] and not (tmp_path / "bad").exists()  # refused before anything heavy

    result = finetune(tiny_gpt, topic_corpus.train, tmp_path / "out", name="acme/top",
                      config=make_config(method="top-layers", max_steps=1, eval_base=False))
    assert calls == [("prepare", {"layers": 1}), ("save", None)]  # a base directory has no reference
    manifest = result.manifest
    assert "NOTES.txt" in {f.path for f in manifest.files} and manifest.format.adapter == "transformers"
    assert manifest.provenance.hyperparameters["method"] == "top-layers"
    assert manifest.provenance.hyperparameters["method_options"] == {"layers": 1}


def test_full_is_a_builtin_plugin_registered_through_the_hook():
    assert "gptstore.training.full" in plugins.DEFAULT_PLUGINS
    impls = {impl.plugin_name: impl for impl in plugins.pm.hook.register_finetune_methods.get_hookimpls()}
    assert impls["gptstore.training.full"].trylast  # plugins override it only on purpose
    full = methods()["full"]
    assert full.plugin == "gptstore.training.full" and full.options is None and full.check is None
    with pytest.raises(UsageError, match=r"^method 'full' takes no options \(got r\); leave out --method-option"):
        make_config(method_options={"r": "8"})


def test_a_plugin_may_take_the_full_name_on_purpose(register_plugin):
    def mine(model, options):
        return model

    class Plugin:
        @hookimpl(tryfirst=True)
        def register_finetune_methods(self, register):
            register("full", mine)

    register_plugin(Plugin(), name="my-full")
    assert methods()["full"].prepare is mine


class Ranked(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rank: int = Field(4, ge=1, description="how many layers, e.g. rank=2")
    names: list[str] = Field(default_factory=list, description="layer names")


RANKED = Method("ranked", prepare=lambda model, options: model, options=Ranked)


def test_options_are_validated_and_normalised_by_the_methods_own_model():
    checked = RANKED.check_options({"rank": "2"})  # the CLI passes strings; the model converts them
    assert checked == {"rank": 2, "names": []}
    assert RANKED.check_options(checked) == checked  # idempotent: a checked config passes again
    assert RANKED.check_options({}) == {"rank": 4, "names": []}


@pytest.mark.parametrize("options, message", [
    ({"rnak": "2"}, "method 'ranked' has no option 'rnak'; its options: rank, names"),
    ({"rank": "0"}, "method 'ranked' option rank=0 is invalid: Input should be greater than or equal to 1; "
                    "rank: how many layers, e.g. rank=2"),
    ({"rank": "two"}, "method 'ranked' option rank=two is invalid: Input should be a valid integer"),
])
def test_a_bad_option_is_one_line_naming_the_method_and_the_key(options, message):
    with pytest.raises(UsageError) as info:
        RANKED.check_options(options)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_method_options_on_the_command_line(register_plugin, run_cli, tiny_gpt, topic_corpus, tmp_path,
                                            monkeypatch):
    from transformers import Trainer

    def refuse(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(Trainer, "train", refuse)

    class Plugin:
        @hookimpl
        def register_finetune_methods(self, register):
            register("ranked", RANKED.prepare, options=Ranked)

    register_plugin(Plugin(), name="ranked-plugin")
    out = tmp_path / "out"
    common = ["finetune", "--base", str(tiny_gpt), "--data", str(topic_corpus.train), "--out", str(out)]
    cases = [
        (["--method", "ranked", "--method-option", "rank=0"],
         "Error: method 'ranked' option rank=0 is invalid: Input should be greater than or equal to 1; "
         "rank: how many layers, e.g. rank=2"),
        (["--method", "ranked", "--method-option", "size=3"],
         "Error: method 'ranked' has no option 'size'; its options: rank, names"),
        (["--method", "ranked", "--method-option", "rank"],
         "Error: --method-option 'rank' is not KEY=VALUE; write it as KEY=VALUE"),
        (["--method", "ranked", "--method-option", "rank=2", "--method-option", "rank=3"],
         "Error: --method-option rank is given twice; give each option once; a list is one comma-separated value"),
        (["--method-option", "rank=2"],
         "Error: method 'full' takes no options (got rank); leave out --method-option, or choose a method "
         "that takes these options"),
    ]
    for args, error in cases:
        result = run_cli(*common, *args)
        assert result.exit_code == 2, result.output
        assert result.output.strip().splitlines() == [error]
    assert not out.exists()
