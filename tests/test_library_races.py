"""The library against other processes and stray files (issue 11, items 6 and 8).

A pull writes blobs before it records its manifest; ``rm`` (garbage collection) in another process
must never delete them meanwhile. Files the library did not write (``.DS_Store``, a damaged ref)
must not break ``list``, ``pull`` or ``rm``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from gptstore import verify
from gptstore.library import Library
from gptstore.packaging import package
from gptstore.pulling import pull
from gptstore.stores.local import LocalStore

# another process that publishes a model and removes it again: its GC runs over the whole library
CHURN = """
import sys
from gptstore.library import Library
lib = Library()
lib.publish(sys.argv[1])
lib.remove("acme/churn")
"""


@pytest.fixture
def source(tiny_gpt, tmp_path):
    """A library elsewhere holding acme/tiny:1.0.0, and a second package to churn with."""
    package(tiny_gpt, name="acme/tiny", version="1.0.0", description="tiny")
    root = tmp_path / "source-library"
    Library(root).publish(tiny_gpt)
    churn = tmp_path / "churn"
    shutil.copytree(tiny_gpt, churn)
    (churn / "generation_config.json").write_text('{"max_new_tokens": 3}')
    package(churn, name="acme/churn", version="0.1.0")
    return root, churn


def test_rm_in_another_process_never_deletes_blobs_a_running_pull_fetched(source, gptstore_home):
    root, churn = source
    runs = []

    class RacingStore(LocalStore):
        """Before every file, another process publishes and removes a model (a full GC), while the
        files fetched before are in the library but not yet referenced by any ref."""

        def fetch(self, located, entry, writer):
            done = subprocess.run([sys.executable, "-c", CHURN, str(churn)], capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
            runs.append(entry.path)
            super().fetch(located, entry, writer)

    lib = Library()
    result = pull("acme/tiny:1.0.0", store=RacingStore(root), library=lib, workers=1)
    assert runs, "the racing store fetched nothing"
    assert verify(result.model, library=lib, full=True).ok
    assert {e.repo_id for e in lib.refs()} == {"acme/tiny"}
    # once the pull is over its pin is gone: a GC removes what nothing refers to any more
    assert not [p for p in (gptstore_home / "pins").iterdir() if p.suffix == ".pin"]
    lib.remove("acme/tiny")
    assert list(lib.blobs.all()) == []


def test_a_stale_pin_of_a_dead_process_is_dropped_by_gc(source, gptstore_home):
    root, _churn = source
    code = ("import sys, os\nfrom gptstore.library import Library\n"
            "Library().pin([sys.argv[1]])\nos._exit(0)\n")  # dies holding a pin
    lib = Library()
    pull("acme/tiny:1.0.0", store=LocalStore(root), library=lib)
    blob = lib.get("acme/tiny").manifest.files[0].sha256
    subprocess.run([sys.executable, "-c", code, blob], check=True)
    assert [p.suffix for p in (gptstore_home / "pins").iterdir()].count(".pin") == 1
    lib.remove("acme/tiny")
    assert list(lib.blobs.all()) == []
    assert not [p for p in (gptstore_home / "pins").iterdir() if p.suffix == ".pin"]


def test_stray_files_in_the_library_break_nothing(source, gptstore_home, run_cli):
    root, _churn = source
    assert run_cli("pull", "acme/tiny:1.0.0", "--store", str(root)).exit_code == 0
    strays = ["refs/.DS_Store", "refs/acme/.DS_Store", "refs/acme/tiny/.DS_Store", "refs/acme/tiny/bad tag",
              "refs/acme/tiny/2.0.0", "manifests/sha256/.DS_Store", "blobs/sha256/.DS_Store", "refs/x"]
    for stray in strays:
        path = gptstore_home / stray
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("not a digest\n")
    (gptstore_home / "refs" / "acme" / "tiny" / "sub.d").mkdir()

    listed = run_cli("list", "--json")
    assert listed.exit_code == 0, listed.output
    assert {(m["reference"]) for m in json.loads(listed.output)} >= {"acme/tiny:1.0.0"}
    assert run_cli("pull", "acme/tiny:1.0.0", "--store", str(root)).exit_code == 0

    damaged = run_cli("show", "acme/tiny:2.0.0")
    assert damaged.exit_code == 1
    assert "damaged" in damaged.output and len(damaged.output.strip().splitlines()) <= 2

    removed = run_cli("rm", "acme/tiny")
    assert removed.exit_code == 0, removed.output
    assert Library().refs() == []
    assert [b for b in Library().blobs.all() if b != ".DS_Store"] == []
    assert (gptstore_home / "blobs" / "sha256" / ".DS_Store").is_file()  # not ours: left alone
