"""Training methods from plugins: the ``register_finetune_methods`` hook."""

from __future__ import annotations

import pytest

from gptstore import plugins
from gptstore.errors import UsageError
from gptstore.hookspecs import hookimpl
from gptstore.training.finetune import finetune, make_config, methods


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
            register("full", prepare)  # a built-in name: reported, the built-in stays

    register_plugin(Plugin(), name="top-layers-plugin")
    known = methods()
    assert known["top-layers"].plugin == "top-layers-plugin" and known["full"].plugin == "gptstore"
    assert any(p.plugin == "top-layers-plugin" and "'full' is built in" in p.error for p in plugins.problems())
    assert make_config(method="top-layers").method == "top-layers"

    with pytest.raises(UsageError, match="method 'top-layers' has no option nope"):
        finetune(tiny_gpt, topic_corpus.train, tmp_path / "bad",
                 config=make_config(method="top-layers", method_options={"nope": 1}))
    assert calls == [] and not (tmp_path / "bad").exists()  # refused before anything heavy

    result = finetune(tiny_gpt, topic_corpus.train, tmp_path / "out", name="acme/top",
                      config=make_config(method="top-layers", max_steps=1, eval_base=False))
    assert calls == [("prepare", {"layers": 1}), ("save", None)]  # a base directory has no reference
    manifest = result.manifest
    assert "NOTES.txt" in {f.path for f in manifest.files} and manifest.format.adapter == "transformers"
    assert manifest.provenance.hyperparameters["method"] == "top-layers"
    assert manifest.provenance.hyperparameters["method_options"] == {"layers": 1}
