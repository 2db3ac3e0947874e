"""transformers loads models from the store through HF_ENDPOINT and generates what the original does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# HF_ENDPOINT must be set before transformers (huggingface_hub) is imported: hence a subprocess.
SCRIPT = r"""
import json, sys
from transformers import AutoModelForCausalLM, AutoTokenizer

def greedy(source, **kwargs):
    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    ids = tokenizer("Return the value of the", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    return out[0].tolist()

local, public, private, token = sys.argv[1:5]
result = {"local": greedy(local), "public": greedy(public, revision="v1.0.0", token=False),
          "private": greedy(private, token=token)}
try:
    greedy(private, token=False)
    result["private_anonymous"] = "loaded"
except OSError as exc:
    result["private_anonymous"] = type(exc).__name__
print(json.dumps(result))
"""


@pytest.mark.slow
def test_from_pretrained_through_hf_endpoint(store, tiny_gpt_dir: Path, tmp_path: Path):
    api = store.api("alice")
    for repo, private in (("alice/loadable", False), ("acme/private-loadable", True)):
        api.create_repo(repo, private=private)
        api.upload_folder(folder_path=tiny_gpt_dir, repo_id=repo)
    api.create_tag("alice/loadable", tag="v1.0.0")
    env = {**os.environ, "HF_ENDPOINT": store.url, "HF_HUB_CACHE": str(tmp_path / "cache"),
           "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("HF_TOKEN", None)
    args = [str(tiny_gpt_dir), "alice/loadable", "acme/private-loadable", store.tokens["carol:write"]]
    result = subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    tokens = json.loads(result.stdout.strip().splitlines()[-1])
    assert tokens["public"] == tokens["local"] and len(tokens["local"]) > 12
    assert tokens["private"] == tokens["local"]
    assert tokens["private_anonymous"] != "loaded"
