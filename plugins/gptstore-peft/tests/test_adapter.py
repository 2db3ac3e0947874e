"""The peft package format: packaging an adapter over a library base, and what it records."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gptstore.errors import ModelNotFound, PackageError, UsageError
from gptstore.library import Library
from gptstore.packaging import package

from peft_refs import ADAPTER, BASE, BASE_VERSION


def test_import_is_cheap():
    code = "import sys, gptstore_peft; print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_package_records_base_and_is_a_small_fraction(adapter_dir, base_model, run_cli):
    result = run_cli("package", str(adapter_dir), "--name", ADAPTER, "--version", "0.1.0",
                     "--base", f"{BASE}:{BASE_VERSION}")
    assert result.exit_code == 0, result.output
    assert f"over base {BASE}:{BASE_VERSION}" in result.output and "(peft, GPT2LMHeadModel" in result.output
    manifest = json.loads((adapter_dir / "gptstore.json").read_text())
    fmt = manifest["format"]
    assert fmt["adapter"] == "peft" and fmt["base"] == {"reference": f"{BASE}:{BASE_VERSION}",
                                                          "digest": base_model.digest}
    assert fmt["architecture"] == base_model.manifest.format.architecture
    assert fmt["context_length"] == base_model.manifest.format.context_length == 128
    # r=4, A (r x in) and B (out x r) on c_attn (64 -> 192), attn.c_proj (64 -> 64) and mlp.c_proj
    # (256 -> 64) in each of 2 layers
    assert fmt["parameters"] == 2 * (4 * (64 + 192) + 4 * (64 + 64) + 4 * (256 + 64)) and fmt["dtype"] == "float32"
    assert {f["path"] for f in manifest["files"]} == {"adapter_config.json", "adapter_model.safetensors"}
    adapter_size = sum(f["size"] for f in manifest["files"])
    ratio = adapter_size / base_model.manifest.total_size
    assert ratio < 0.2, f"adapter is {ratio:.1%} of the full model"
    published = Library().publish(adapter_dir)
    assert published.manifest.format.base.digest == base_model.digest


def test_repackaging_keeps_the_base(adapter_dir, base_model):
    package(adapter_dir, name=ADAPTER, version="0.1.0", base=f"{BASE}:{BASE_VERSION}")
    again = package(adapter_dir, name=ADAPTER, version="0.1.1", description="second")
    assert again.format.base.digest == base_model.digest and again.format.base.reference == f"{BASE}:{BASE_VERSION}"


def test_base_from_adapter_config_when_it_is_a_library_reference(adapter_dir, base_model):
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = BASE
    (adapter_dir / "adapter_config.json").write_text(json.dumps(config))
    manifest = package(adapter_dir, name=ADAPTER, version="0.1.0")
    assert manifest.format.base.digest == base_model.digest


def test_package_refusals(adapter_dir, base_model, tiny_gpt, run_cli):
    with pytest.raises(PackageError, match="its base model must be named; pass --base REF"):
        package(adapter_dir, name=ADAPTER, version="0.1.0")
    with pytest.raises(ModelNotFound, match="model acme/nope:latest not found in the local library; the base must"):
        package(adapter_dir, name=ADAPTER, version="0.1.0", base="acme/nope")
    with pytest.raises(UsageError, match="package format 'transformers' does not take a base model"):
        package(tiny_gpt, name="acme/other", version="1.0.0", base=BASE)
    package(adapter_dir, name=ADAPTER, version="0.1.0", base=BASE)
    Library().publish(adapter_dir)
    nested = adapter_dir.parent / "nested"
    nested.mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (nested / name).write_bytes((adapter_dir / name).read_bytes())
    with pytest.raises(PackageError, match="is a 'peft' package; a peft adapter's base must be a full model"):
        package(nested, name="acme/nested", version="0.1.0", base=ADAPTER)
    (nested / "adapter_model.safetensors").rename(nested / "adapter_model.bin")
    result = run_cli("package", str(nested), "--name", "acme/nested", "--version", "0.1.0", "--base", BASE)
    assert result.exit_code != 0 and "pickle-based weights" in result.output
