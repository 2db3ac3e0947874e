"""The README's tutorial is the plugin's real code, and its sessions are what the CLI prints.

A fenced block after ``<!-- file: PATH -->`` must be the whole file, after
``<!-- excerpt: PATH -->`` a verbatim part of it; ``<!-- session -->`` blocks are run command by
command; ``<!-- plugins-row -->`` rows must be in `gptstore plugins`' output.
"""

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"<!-- (file|excerpt|session|plugins-row):? ?(\S*) -->\n```\w*\n(.*?)```", README, re.S)


def blocks(kind):
    return [(path, body) for k, path, body in BLOCKS if k == kind]


def test_the_readme_marks_enough_blocks():
    assert len(blocks("file")) == 2 and len(blocks("excerpt")) >= 8
    assert len(blocks("session")) == 1 and len(blocks("plugins-row")) == 1


@pytest.mark.parametrize("path, body", blocks("file"), ids=[p for p, _ in blocks("file")])
def test_whole_files_are_the_real_files(path, body):
    assert body == (ROOT / path).read_text()


@pytest.mark.parametrize("path, body", blocks("excerpt"), ids=[p for p, _ in blocks("excerpt")])
def test_excerpts_are_verbatim_parts_of_the_real_files(path, body):
    assert body in (ROOT / path).read_text()


def test_the_session_prints_what_the_readme_says(published_as_poet, run_cli, gptstore_home):
    (body,) = [b for _, b in blocks("session")]
    steps = re.findall(r"^\$ (.*)\n((?:(?!\$ ).*\n)*)", body, re.M)
    assert len(steps) == 5
    for command, expected in steps:
        args = shlex.split(command)
        assert args[0] == "gptstore"
        result = run_cli(*args[1:])
        assert result.output.replace(str(gptstore_home), "~/.local/share/gptstore") == expected, command


def test_the_plugins_rows_are_what_gptstore_plugins_prints(guard, run_cli):
    (body,) = [b for _, b in blocks("plugins-row")]
    command, *rows = body.splitlines()
    assert command == "$ gptstore plugins"
    printed = [line.split() for line in run_cli("plugins").output.splitlines()]
    for row in rows:
        assert row.split() in printed, row


@pytest.fixture
def published_as_poet(tiny_gpt, guard):
    from gptstore.library import Library
    from gptstore.packaging import package

    package(tiny_gpt, name="acme/poet", version="1.0.0")
    Library().publish(tiny_gpt)
