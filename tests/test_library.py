import json
import os
import shutil
import subprocess
import sys

import pytest

from gptstore import verify
from gptstore.errors import (ConflictError, DigestMismatch, FileMissing, ModelNotFound, PackageError,
                             UnknownComponent, UnlistedFile, UnsafeContentError)
from gptstore.library import GCResult, Library
from gptstore.packaging import package
from gptstore.testing import tree_state


@pytest.fixture
def packaged(tiny_gpt):
    package(tiny_gpt, name="acme/tiny", version="1.0.0", description="tiny")
    return tiny_gpt


def test_publish_resolve_list_show(packaged, gptstore_home):
    lib = Library()
    model = lib.publish(packaged)
    assert model.name == "acme/tiny:1.0.0"
    assert lib.resolve("acme/tiny")[1] == model.digest
    assert lib.resolve("acme/tiny:1.0.0")[1] == model.digest
    assert lib.resolve(f"acme/tiny@sha256:{model.digest}")[1] == model.digest
    assert {(e.repo_id, e.tag) for e in lib.refs()} == {("acme/tiny", "1.0.0"), ("acme/tiny", "latest")}
    got = lib.get("acme/tiny")
    assert got.manifest.description == "tiny"
    # the snapshot is the package: same files, hard-linked to the blobs
    for entry in got.manifest.files:
        snap = got.path / entry.path
        assert snap.read_bytes() == (packaged / entry.path).read_bytes()
        assert os.stat(snap).st_ino == os.stat(lib.blobs.path(entry.sha256)).st_ino
    assert (got.path / "gptstore.json").is_file()


def test_blobs_are_shared_across_models(packaged, tmp_path):
    lib = Library()
    lib.publish(packaged)
    before = set(lib.blobs.all())
    other = tmp_path / "other"
    shutil.copytree(packaged, other)
    (other / "generation_config.json").write_text('{"max_new_tokens": 7}')
    package(other, name="acme/other", version="0.1.0")
    lib.publish(other)
    added = set(lib.blobs.all()) - before
    assert len(added) == 1  # only the changed file is a new blob


def test_republish_same_content_is_a_no_op_and_conflict_needs_force(packaged, gptstore_home):
    lib = Library()
    first = lib.publish(packaged)
    assert lib.publish(packaged).digest == first.digest
    package(packaged, name="acme/tiny", version="1.0.0", description="changed")
    state = tree_state(gptstore_home)
    with pytest.raises(ConflictError, match="acme/tiny:1.0.0 is already published"):
        lib.publish(packaged)
    assert tree_state(gptstore_home) == state
    replaced = lib.publish(packaged, force=True)
    assert replaced.digest != first.digest
    assert lib.resolve("acme/tiny:1.0.0")[1] == replaced.digest
    assert not lib.has_manifest(first.digest)  # publish --force collected the old content already
    assert lib.gc() == GCResult()  # so there is nothing left to collect
    for tag in ("1.0.0", "latest"):  # refs gone without a collection (a crash): garbage
        (gptstore_home / "refs" / "acme" / "tiny" / tag).unlink()
    blobs = {f.sha256: f.size for f in replaced.manifest.files}
    assert lib.gc() == GCResult(manifests=1, blobs=len(blobs), bytes=sum(blobs.values()))
    assert not lib.has_manifest(replaced.digest) and list(lib.blobs.all()) == []
    assert not lib.snapshot_path(replaced.digest).exists()


@pytest.mark.parametrize("damage,error,needle", [
    (lambda d: (d / "tokenizer.json").unlink(), FileMissing, "tokenizer.json is listed in the manifest but missing"),
    (lambda d: (d / "notes.txt").write_text("extra"), UnlistedFile, "notes.txt is present but not listed"),
    (lambda d: (d / "config.json").write_text("{}"), DigestMismatch, "config.json has"),
    (lambda d: _flip_byte(d / "model.safetensors"), DigestMismatch, "model.safetensors does not match its sha256"),
])
def test_bad_packages_are_refused_and_change_nothing(packaged, gptstore_home, damage, error, needle):
    lib = Library()
    lib.publish(packaged)
    package(packaged, name="acme/tiny", version="2.0.0")
    state = tree_state(gptstore_home)
    damage(packaged)
    with pytest.raises(error) as info:
        lib.publish(packaged)
    assert needle in str(info.value)
    assert tree_state(gptstore_home) == state


def _flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_pickle_weights_refused_unless_allowed(tiny_gpt, gptstore_home):
    (tiny_gpt / "training_args.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(UnsafeContentError, match="training_args.bin"):
        package(tiny_gpt, name="acme/tiny", version="1.0.0")
    assert not (tiny_gpt / "gptstore.json").exists()
    manifest = package(tiny_gpt, name="acme/tiny", version="1.0.0", allow_unsafe=True)
    assert manifest.file("training_args.bin")
    with pytest.raises(UnsafeContentError, match="--allow-unsafe"):
        Library().publish(tiny_gpt)
    assert tree_state(gptstore_home) == {}
    Library().publish(tiny_gpt, allow_unsafe=True)


def test_custom_code_refused(tiny_gpt):
    (tiny_gpt / "modeling_evil.py").write_text("import os")
    with pytest.raises(UnsafeContentError, match="custom code"):
        package(tiny_gpt, name="acme/tiny", version="1.0.0", allow_unsafe=True)


def test_unknown_adapter_and_undetectable_dir(tiny_gpt, tmp_path):
    with pytest.raises(UnknownComponent, match="unknown adapter 'gguf' \\(known: .*transformers"):  # + plugins
        package(tiny_gpt, name="acme/tiny", version="1.0.0", adapter="gguf")
    with pytest.raises(PackageError, match="no adapter recognises"):
        package(tmp_path, name="acme/tiny", version="1.0.0")


def test_adapter_reads_format_from_headers(packaged):
    manifest = Library().publish(packaged).manifest
    assert manifest.format.architecture == "GPT2LMHeadModel"
    assert manifest.format.context_length == 128
    assert manifest.format.dtype == "float32"
    from safetensors import safe_open

    with safe_open(str(packaged / "model.safetensors"), "np") as f:
        expected = sum(f.get_tensor(k).size for k in f.keys())
    assert manifest.format.parameters == expected


def test_sharded_safetensors(tiny_gpt):
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(tiny_gpt / "model.safetensors"))
    names = sorted(tensors)
    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    for shard, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, str(tiny_gpt / shard))
    (tiny_gpt / "model.safetensors").unlink()
    index = {"metadata": {}, "weight_map": {k: s for s, ks in shards.items() for k in ks}}
    (tiny_gpt / "model.safetensors.index.json").write_text(json.dumps(index))
    manifest = package(tiny_gpt, name="acme/tiny", version="1.0.0")
    assert manifest.format.parameters == sum(t.size for t in tensors.values())
    (tiny_gpt / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(PackageError, match="shard model-00002-of-00002.safetensors"):
        package(tiny_gpt, name="acme/tiny", version="1.0.0")


def test_remove_tag_model_and_gc(packaged, gptstore_home):
    lib = Library()
    model = lib.publish(packaged)
    state = tree_state(gptstore_home)
    with pytest.raises(ModelNotFound):
        lib.remove("acme/nope")
    with pytest.raises(ModelNotFound):
        lib.remove("acme/tiny:9.9.9")
    assert tree_state(gptstore_home) == state
    removed = lib.remove("acme/tiny:latest")
    assert [(e.tag) for e in removed] == ["latest"]
    assert lib.resolve("acme/tiny:1.0.0")[1] == model.digest
    assert set(lib.blobs.all()) == {f.sha256 for f in model.manifest.files}
    lib.remove("acme/tiny")
    assert lib.refs() == []
    assert list(lib.blobs.all()) == []
    assert not model.path.exists()


def test_stored_manifest_tamper_detected(packaged):
    lib = Library()
    model = lib.publish(packaged)
    path = lib.root / "manifests" / "sha256" / model.digest
    data = json.loads(path.read_bytes())
    data["description"] = "evil"
    path.write_text(json.dumps(data))
    with pytest.raises(DigestMismatch, match="was modified"):
        lib.get("acme/tiny")


PUBLISHER = """
import sys
from gptstore.library import Library
for i in range(int(sys.argv[2])):
    Library().publish(sys.argv[1], force=True)
"""


@pytest.mark.slow
def test_concurrent_publishers_leave_a_consistent_library(packaged, tmp_path, gptstore_home):
    other = tmp_path / "other"
    shutil.copytree(packaged, other)
    (other / "generation_config.json").write_text('{"max_new_tokens": 3}')
    package(other, name="acme/other", version="1.0.0")
    env = dict(os.environ)
    procs = [subprocess.Popen([sys.executable, "-c", PUBLISHER, str(d), "3"], env=env)
             for d in (packaged, other, packaged)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    lib = Library()
    assert {e.repo_id for e in lib.refs()} == {"acme/tiny", "acme/other"}
    for entry in lib.refs():
        model = lib.get(f"{entry.repo_id}:{entry.tag}")
        assert verify(model, library=lib, full=True).ok
    assert not list((lib.blobs.tmp).iterdir())


def test_base_of_is_exactly_the_pinned_digest(packaged):
    from gptstore.manifest import BaseModelRef

    lib = Library()
    base = lib.publish(packaged)
    fmt = base.manifest.format

    def over(digest):
        pinned = fmt.model_copy(update={"base": BaseModelRef(reference="acme/tiny:1.0.0", digest=digest)})
        return base.manifest.model_copy(update={"name": "lora", "format": pinned})

    found = lib.base_of(over(base.digest))
    assert (found.digest, found.path) == (base.digest, base.path)
    with pytest.raises(DigestMismatch, match=f"made for base acme/tiny:1.0.0 sha256:{'a' * 64}, but the local "
                                             f"library has acme/tiny:1.0.0 as sha256:{base.digest}"):
        lib.base_of(over("a" * 64))
    lib.remove("acme/tiny")
    with pytest.raises(ModelNotFound, match=f"acme/tiny:1.0.0@sha256:{base.digest} not found.*gptstore pull"):
        lib.base_of(over(base.digest))
    with pytest.raises(PackageError, match="without a base model"):
        lib.base_of(base.manifest)


def test_the_origin_of_a_pulled_model_goes_with_its_manifest(tiny_gpt):
    from gptstore.origins import origin_path, read_origin, record_origin
    from gptstore.packaging import package

    package(tiny_gpt, name="acme/origin", version="1.0.0")
    library = Library()
    model = library.publish(tiny_gpt)
    assert read_origin(library.root, model.digest) is None  # published here: no store known
    record_origin(library.root, model.digest, "http://127.0.0.1:9/")
    assert read_origin(library.root, model.digest) == "http://127.0.0.1:9/"
    origin_path(library.root, model.digest).write_bytes(b"{" * 5000)  # damaged or oversized: no origin
    assert read_origin(library.root, model.digest) is None
    record_origin(library.root, model.digest, "http://127.0.0.1:9/")
    library.remove("acme/origin")
    assert not origin_path(library.root, model.digest).exists()  # garbage-collected with the manifest
