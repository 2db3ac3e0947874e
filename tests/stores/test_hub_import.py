"""hf:// (HF_ENDPOINT), the default store, and plain Hub repos imported as unsigned packages.

Every test talks to a real `gptstore server` process; repos are uploaded the way users make them
(the stock huggingface_hub `upload_folder`, i.e. `hf upload`, and transformers' `push_to_hub`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

import gptstore
from gptstore.errors import ModelNotFound, PackageError, TrustError, UnsafeContentError, UsageError
from gptstore.library import Library
from gptstore.pulling import pull
from gptstore.stores import get_store
from gptstore.stores.hub import HubStore, without_xet

# HF_ENDPOINT must be set before transformers (huggingface_hub) is imported: hence a subprocess
PUSH_SCRIPT = r"""
import sys
from transformers import AutoModelForCausalLM, AutoTokenizer
source, repo, token = sys.argv[1:4]
AutoModelForCausalLM.from_pretrained(source).push_to_hub(repo, token=token)
AutoTokenizer.from_pretrained(source).push_to_hub(repo, token=token)
"""


def upload(store_server, folder, repo: str) -> str:
    """Upload a directory as `hf upload` does (LFS: a gptstore server has no Xet); returns the commit."""
    api = store_server.api()
    api.create_repo(repo, exist_ok=True)
    with without_xet():
        return api.upload_folder(folder_path=str(folder), repo_id=repo).oid


@pytest.fixture(scope="module")
def plain(store_server, tiny_gpt_dir):
    """alice/plain: the tiny GPT as a plain Hub repo (no gptstore.json), uploaded by upload_folder."""
    return upload(store_server, tiny_gpt_dir, "alice/plain")


def consumer(tmp_path, monkeypatch, name="consumer"):
    monkeypatch.setenv("GPTSTORE_HOME", str(tmp_path / name))
    return Library()


def test_a_plain_repo_is_imported_pinned_and_runs(store_server, plain, tiny_gpt_dir, tmp_path, monkeypatch):
    consumer(tmp_path, monkeypatch)
    result = pull("alice/plain", store=store_server.url)
    manifest = result.model.manifest
    assert manifest.version == f"0.0.0+{plain[:12]}" and manifest.format.adapter == "transformers"
    assert manifest.format.architecture == "GPT2LMHeadModel" and manifest.format.parameters > 0
    assert manifest.provenance.imported_from == f"{store_server.url}/alice/plain@{plain}"
    expected = {p.name for p in tiny_gpt_dir.iterdir() if p.name not in (".gitattributes", "README.md")}
    assert {f.path for f in manifest.files} == expected  # what the adapter needs, nothing of the store's own
    for entry in manifest.files:  # each file pinned by the sha256 of its bytes
        assert entry.sha256 == hashlib.sha256((tiny_gpt_dir / entry.path).read_bytes()).hexdigest()
    assert gptstore.verify("alice/plain").ok
    auth = [c for c in result.checks if c.name == "authenticity"][0]
    assert f"unsigned, imported from {store_server.url}/alice/plain@{plain}" in auth.summary
    again = pull("alice/plain", store=store_server.url)  # one commit, one digest
    assert again.model.digest == result.model.digest and again.fetched_files == 0
    with gptstore.load("alice/plain", device="cpu") as model:
        assert model.generate("Return the", max_new_tokens=3).usage.completion_tokens == 3


def test_hf_scheme_follows_hf_endpoint_and_is_the_default_store(store_server, plain, tmp_path, monkeypatch,
                                                                 run_cli):
    consumer(tmp_path, monkeypatch)
    monkeypatch.setenv("HF_ENDPOINT", store_server.url)
    store = get_store("hf://")
    assert isinstance(store, HubStore) and store.endpoint == store_server.url and store.url == "hf://"
    assert isinstance(get_store(None), HubStore) and get_store(None).url == "hf://"  # nothing set: hf://
    shown = run_cli("config", "--json")
    settings = json.loads(shown.output)
    assert settings["store"] == {"value": "hf://", "source": "default"}
    assert settings["hf_endpoint"] == {"value": store_server.url, "source": "HF_ENDPOINT"}
    # run with no --store and no GPTSTORE_STORE: the library lacks it, so hf:// (the local server)
    ran = run_cli("run", "alice/plain", "Return the", "--max-new-tokens", "2", "--json")
    assert ran.exit_code == 0, ran.output
    assert Library().get("alice/plain").manifest.provenance.imported_from == f"hf://alice/plain@{plain}"
    shown = run_cli("show", "alice/plain")  # from the library now
    assert shown.exit_code == 0 and f"0.0.0+{plain[:12]}" in shown.output
    monkeypatch.setenv("GPTSTORE_STORE", "http://127.0.0.1:9")
    assert json.loads(run_cli("config", "--json").output)["store"]["source"] == "GPTSTORE_STORE"
    monkeypatch.delenv("GPTSTORE_STORE")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline: the library still serves; nothing else is asked
    assert run_cli("run", "alice/plain", "Return the", "--max-new-tokens", "1").exit_code == 0
    missing = run_cli("run", "alice/absent", "hi")
    assert missing.exit_code == 1 and "HF_HUB_OFFLINE is set" in missing.output
    pulled = run_cli("pull", "alice/plain")
    assert pulled.exit_code == 1 and "HF_HUB_OFFLINE" in pulled.output


def test_hf_url_takes_no_host():
    with pytest.raises(UsageError, match="hf:// takes no host"):
        get_store("hf://huggingface.co")


def test_hf_token_opens_a_private_repo_on_hf_only(store_server, tiny_gpt_dir, tmp_path, monkeypatch):
    api = store_server.api()
    api.create_repo("alice/secret", private=True)
    with without_xet():
        api.upload_folder(folder_path=str(tiny_gpt_dir), repo_id="alice/secret")
    consumer(tmp_path, monkeypatch)
    monkeypatch.setenv("HF_ENDPOINT", store_server.url)
    with pytest.raises(ModelNotFound, match="private and you are not authorised"):
        pull("alice/secret")  # hf://, anonymous
    monkeypatch.setenv("HF_TOKEN", store_server.tokens["alice:read"])
    with pytest.raises(ModelNotFound):
        pull("alice/secret", store=store_server.url)  # HF_TOKEN is for hf:// only
    assert pull("alice/secret").model.manifest.provenance.imported_from.startswith("hf://alice/secret@")


@pytest.mark.slow
def test_a_repo_pushed_by_transformers_loads_by_name(store_server, tiny_gpt_dir, tmp_path, monkeypatch):
    env = {**os.environ, "HF_ENDPOINT": store_server.url, "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1",
           "TOKENIZERS_PARALLELISM": "false", "HF_HOME": str(tmp_path / "hf")}
    pushed = subprocess.run([sys.executable, "-c", PUSH_SCRIPT, str(tiny_gpt_dir), "alice/by-transformers",
                             store_server.tokens["alice:write"]], capture_output=True, text=True, env=env, timeout=300)
    assert pushed.returncode == 0, pushed.stderr[-3000:]
    consumer(tmp_path, monkeypatch)
    monkeypatch.setenv("HF_ENDPOINT", store_server.url)
    with gptstore.load("alice/by-transformers", device="cpu") as model:  # no store named: hf://
        assert model.manifest.provenance.imported_from.startswith("hf://alice/by-transformers@")
        assert model.generate("Return the", max_new_tokens=2).usage.completion_tokens == 2


def test_remote_code_is_refused_before_any_weight(store_server, tiny_gpt_dir, tmp_path, monkeypatch):
    folder = tmp_path / "automap"
    shutil.copytree(tiny_gpt_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_evil.py").write_text("import os\n")
    upload(store_server, folder, "alice/remote-code")
    library = consumer(tmp_path, monkeypatch)
    with pytest.raises(UnsafeContentError, match=r"alice/remote-code .*custom code \(config.json auto_map\)"):
        pull("alice/remote-code", store=store_server.url)
    assert library.refs() == [] and list(library.blobs.all()) == []  # nothing fetched at all


def test_pickle_only_repo_is_refused(store_server, tiny_gpt_dir, tmp_path, monkeypatch):
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(tiny_gpt_dir / "config.json", folder / "config.json")
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    upload(store_server, folder, "alice/pickled")
    consumer(tmp_path, monkeypatch)
    with pytest.raises(UnsafeContentError, match=r"only pickle weights \(pytorch_model.bin\)"):
        pull("alice/pickled", store=store_server.url)
    (folder / "pytorch_model.bin").unlink()
    (folder / "notes.txt").write_text("no weights")
    upload(store_server, folder, "alice/no-weights")
    with pytest.raises(PackageError, match="no safetensors weights"):
        pull("alice/no-weights", store=store_server.url)


def test_pickle_only_repo_imports_with_allow_unsafe_only(store_server, tiny_gpt_dir, tmp_path, monkeypatch, run_cli):
    """A repo as `save_pretrained(safe_serialization=False)` wrote it: pytorch_model.bin, no safetensors."""
    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "bin-only"
    folder.mkdir()
    for name in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_gpt_dir / name, folder / name)
    # transformers 5 no longer writes pickle: the same state dict (tied lm_head left out), torch.save'd
    torch.save(load_file(tiny_gpt_dir / "model.safetensors"), folder / "pytorch_model.bin")
    commit = upload(store_server, folder, "alice/bin-only")
    library = consumer(tmp_path, monkeypatch)
    refused = run_cli("pull", "alice/bin-only", "--store", store_server.url)
    assert refused.exit_code == 1
    lines = refused.output.strip().splitlines()
    assert len(lines) == 1 and "pickle" in lines[0] and "--allow-unsafe" in lines[0], refused.output
    assert library.refs() == [] and list(library.blobs.all()) == []  # nothing fetched at all
    pulled = run_cli("pull", "alice/bin-only", "--store", store_server.url, "--allow-unsafe", "--json")
    assert pulled.exit_code == 0, pulled.output
    manifest = Library().get("alice/bin-only").manifest
    assert {f.path for f in manifest.files} == {p.name for p in folder.iterdir()}
    bin_entry = [f for f in manifest.files if f.path == "pytorch_model.bin"][0]  # pinned by the LFS sha256
    assert bin_entry.sha256 == hashlib.sha256((folder / "pytorch_model.bin").read_bytes()).hexdigest()
    assert manifest.version == f"0.0.0+{commit[:12]}" and manifest.format.dtype == "float32"
    from gptstore.adapters.transformers import count_parameters, weight_files

    assert manifest.format.parameters == count_parameters(weight_files(tiny_gpt_dir))[0]  # same as safetensors
    assert run_cli("verify", "alice/bin-only").exit_code != 0  # pickle without --allow-unsafe: refused
    verified = run_cli("verify", "alice/bin-only", "--allow-unsafe", "--json")
    assert verified.exit_code == 0, verified.output
    safety = [c for c in json.loads(verified.output)["checks"] if c["name"] == "safety"][0]
    assert safety["ok"] and safety["warning"] and "pytorch_model.bin" in safety["summary"]
    ran = run_cli("run", "alice/bin-only", "Return the", "--max-new-tokens", "3", "--allow-unsafe", "--json")
    assert ran.exit_code == 0, ran.output
    with gptstore.load("alice/bin-only", device="cpu", allow_unsafe=True) as model:
        assert model.generate("Return the", max_new_tokens=3).usage.completion_tokens == 3
    # sharded: pytorch_model-0000x-of-00002.bin and their index, all taken, loaded by transformers
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    (folder / "pytorch_model.bin").unlink()
    names = sorted(state)
    shards = {"pytorch_model-00001-of-00002.bin": names[::2], "pytorch_model-00002-of-00002.bin": names[1::2]}
    for shard, keys in shards.items():
        torch.save({k: state[k] for k in keys}, folder / shard)
    index = {"metadata": {}, "weight_map": {k: shard for shard, keys in shards.items() for k in keys}}
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    upload(store_server, folder, "alice/bin-sharded")
    with pytest.raises(UnsafeContentError, match="--allow-unsafe"):
        pull("alice/bin-sharded", store=store_server.url)
    sharded = pull("alice/bin-sharded", store=store_server.url, allow_unsafe=True).model.manifest
    assert {f.path for f in sharded.files} == {p.name for p in folder.iterdir()}
    assert sharded.format.parameters == manifest.format.parameters
    with gptstore.load("alice/bin-sharded", device="cpu", allow_unsafe=True) as model:
        assert model.generate("Return the", max_new_tokens=2).usage.completion_tokens == 2


def test_require_refuses_an_import_unless_the_namespace_is_allowed(store_server, plain, tmp_path, monkeypatch,
                                                                   run_cli):
    library = consumer(tmp_path, monkeypatch)
    assert run_cli("trust", "policy", "require").exit_code == 0
    with pytest.raises(TrustError, match=rf"alice/plain:0.0.0\+{plain[:12]} is unsigned, imported from "):
        pull("alice/plain", store=store_server.url)
    assert library.refs() == []
    allowed = run_cli("trust", "allow-unsigned", "alice")
    assert allowed.exit_code == 0, allowed.output
    assert "unsigned allowed" in run_cli("trust", "list").output
    result = pull("alice/plain", store=store_server.url)
    auth = [c for c in result.checks if c.name == "authenticity"][0]
    assert auth.ok and not auth.warning and "unsigned, imported from" in auth.summary
    assert run_cli("trust", "allow-unsigned", "alice", "--undo").exit_code == 0
    with pytest.raises(TrustError):
        gptstore.verify("alice/plain")


def test_a_config_declaring_absurd_depth_is_refused_before_any_model_is_built():
    """Counting the parameters of a pickle-only repo builds its model on torch's meta device: a
    hostile config.json must not turn that into unbounded work."""
    from gptstore.adapters.transformers import MAX_LAYERS, parameters_from_config
    from gptstore.errors import PackageError

    with pytest.raises(PackageError, match=f"declares 10000000 layers; gptstore builds at most {MAX_LAYERS}"):
        parameters_from_config({"model_type": "gpt2", "n_layer": 10_000_000})
    assert parameters_from_config({"model_type": "gpt2", "n_layer": 1, "n_embd": 8, "n_head": 2,
                                   "vocab_size": 10, "n_positions": 4})[0] > 0
