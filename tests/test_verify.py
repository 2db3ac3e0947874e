import os
import time

import pytest

from gptstore.errors import DigestMismatch, FileMissing, UnlistedFile
from gptstore.library import Library
from gptstore.packaging import package
from gptstore.verify import check_integrity, verify_model


@pytest.fixture
def model(tiny_gpt):
    package(tiny_gpt, name="acme/tiny", version="1.0.0")
    return Library().publish(tiny_gpt)


def test_stamps_make_reverify_cheap_and_full_rehashes(model):
    lib = Library()
    assert lib.check(model).hashed == len(model.manifest.files)
    assert lib.check(model).hashed == 0
    assert lib.check(model, full=True).hashed == len(model.manifest.files)


def test_same_size_change_is_caught_despite_stamps(model):
    lib = Library()
    assert lib.check(model).ok
    target = model.path / "config.json"
    data = target.read_bytes()
    time.sleep(0.01)
    target.write_bytes(data.replace(b"gpt2", b"gpt3"))
    report = lib.check(model)
    assert not report.ok
    with pytest.raises(DigestMismatch, match="config.json does not match its sha256"):
        report.raise_first()


def test_missing_and_extra_files_named(model):
    (model.path / "tokenizer.json").unlink()
    (model.path / "extra.bin").write_bytes(b"x")
    report = Library().check(model)
    kinds = {type(p) for p in report.problems}
    assert kinds == {FileMissing, UnlistedFile}
    text = " ".join(str(p) for p in report.problems)
    assert "tokenizer.json" in text and "extra.bin" in text


def test_verify_model_report_and_strict(model):
    lib = Library()
    report = verify_model(model, lib)
    assert report.ok and [c.name for c in report.checks] == ["integrity", "authenticity", "safety"]
    (model.path / "model.safetensors").write_bytes(b"0")
    report = verify_model(model, lib, strict=False)
    assert not report.ok and report.checks[0].name == "integrity"
    with pytest.raises(DigestMismatch, match="model.safetensors"):
        verify_model(model, lib)


def test_parallel_hashing_matches_serial(model):
    serial = check_integrity(model.path, model.manifest, full=True, workers=1)
    parallel = check_integrity(model.path, model.manifest, full=True, workers=2)
    assert serial.ok and parallel.ok and serial.hashed == parallel.hashed == len(model.manifest.files)


def test_hook_register_verifiers(model, register_plugin):
    from gptstore import hookimpl
    from gptstore.verify import CheckResult

    seen = []

    class Plugin:
        @hookimpl
        def register_verifiers(self, register):
            def check(manifest, path):
                seen.append((manifest.repo_id, os.path.isdir(path)))
                return CheckResult("license", manifest.license != "other", f"license {manifest.license}")

            register("license", check)

    register_plugin(Plugin(), name="license-check")
    report = verify_model(model, Library(), strict=False)
    assert seen == [("acme/tiny", True)]
    assert [c.name for c in report.checks] == ["integrity", "authenticity", "license", "safety"]
    assert not report.ok
