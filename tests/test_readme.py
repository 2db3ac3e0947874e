"""The README can be followed in order: every ``$ gptstore …`` line of its shell blocks runs, top to
bottom, against a real local ``gptstore server``, and the test fails at the first one that breaks.

Each ```console block of README.md is preceded by ``<!-- test: NAME -->`` (a block without one
fails :func:`test_every_shell_block_of_the_readme_is_run`, so none escapes). The walkthrough is
the blocks ``server``, ``provider`` and ``consumer``, in that order; any other marked block (e.g.
``hub``) runs in its place too. The README is run
literally, except for what only a reader's own machine has, replaced as follows:

- ``http://models.internal:8765`` is the test server's URL, ``/srv/gptstore`` its data directory;
- ``gptstore server --data … --host … --port …`` starts that server (a free loopback port);
- the token printed by ``token create`` is what ``gptstore login`` is given on its prompt;
- ``[--flag]`` (an optional flag) is left out;
- lines that need huggingface.co (``openai-community/…``, ``hf://``) are skipped, and so are
  commands other than ``gptstore`` (``hf download``): the test puts the tiny GPT fixture at
  ``./base`` where the README downloads one, and writes ``topic.txt`` / ``heldout.txt``;
- ``--max-steps 200`` trains 4 steps (the same command, a minute less; the steps are not what the
  walkthrough shows).

Shell syntax it understands: ``\\`` continuations, ``# comments``, ``A && B``, ``CMD > FILE``.
The output lines under a command are illustrations (digests, sizes and counts differ): the test
checks only that each begins as a line the command printed does, on its first two words with
digests and tokens blanked (``ok   authenticity``, ``Pulled acme/poet:1.0.0``, the table headers),
so a check that turns to ``warn`` or a model under another name fails it.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from gptstore.testing import SMALL, StoreServer

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PLACEHOLDER_URL = "http://models.internal:8765"
PLACEHOLDER_DATA = "/srv/gptstore"
NEEDS_INTERNET = ("openai-community/", "hf://")
TOPIC = "\n\n".join(f"Rivers in spring run {w} under the bridge, and the herons wait." for w in
                    ["fast", "slow", "cold", "clear", "wide", "deep", "loud", "bright"] * 3)


def shell_blocks() -> list[tuple[str, str]]:
    """``(name, body)`` of every marked ```console block, in README order."""
    return re.findall(r"<!-- test: (\w+) -->\n```console\n(.*?)```", README, re.S)


def commands(body: str) -> list[tuple[str, list[str]]]:
    """``(command, illustrated output lines)`` of each ``$`` line of a block, continuations joined."""
    joined = re.sub(r"\\\n\s*", " ", body)
    steps: list[tuple[str, list[str]]] = []
    for line in joined.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps and line.strip():
            steps[-1][1].append(line)
    return steps


def opening(line: str) -> list[str]:
    """The first two words of an output line, digests and tokens blanked."""
    line = re.sub(r"sha256:[0-9a-f]+", "sha256:…", line)
    return [re.sub(r"^gst_\S*", "gst_…", word) for word in line.split()[:2]]


def test_every_shell_block_of_the_readme_is_run():
    assert len(re.findall(r"^```console$", README, re.M)) == len(shell_blocks())
    walkthrough = [name for name, _ in shell_blocks() if name in ("server", "provider", "consumer")]
    assert walkthrough == ["server", "provider", "consumer"]  # a store, then a provider, then a consumer


def test_the_walkthrough_runs_in_order(run_cli, tiny_gpt_dir, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "topic.txt").write_text(TOPIC)
    (work / "heldout.txt").write_text(TOPIC.replace("herons", "ducks"))
    shutil.copytree(tiny_gpt_dir, work / "base")
    for path in (work / "base").rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    server = StoreServer(tmp_path / "data", tmp_path / "server.log", list(SMALL))
    state = {"token": None}
    ran = []
    try:
        for _name, body in shell_blocks():
            for line, shown in commands(body):
                if any(marker in line for marker in NEEDS_INTERNET):
                    continue
                printed = ""
                for argv, out in _parse(line, server):
                    if argv[0] != "gptstore":
                        continue
                    printed += _run(argv[1:], out, server, state, run_cli, line)
                    ran.append(line)
                openings = [opening(p) for p in printed.splitlines()]
                for expected in shown:
                    assert opening(expected) in openings, \
                        f"README line `$ {line}` shows {expected!r}; it printed:\n{printed}"
    finally:
        server.stop()
    assert len(ran) >= 20, ran


def _parse(line: str, server: StoreServer) -> list[tuple[list[str], str | None]]:
    """``[(argv, redirect file or None)]`` for ``A && B > F``, placeholders replaced."""
    line = line.replace(PLACEHOLDER_URL, server.url).replace(PLACEHOLDER_DATA, str(server.data))
    line = line.replace("--max-steps 200", "--max-steps 4")
    tokens = [t for t in shlex.split(line, comments=True) if not re.fullmatch(r"\[.*\]", t)]
    steps, current = [], []
    for token in [*tokens, "&&"]:
        if token == "&&":
            out = None
            if ">" in current:
                at = current.index(">")
                current, out = current[:at], current[at + 1]
            steps.append((current, out))
            current = []
        else:
            current.append(token)
    return steps


def _run(args: list[str], out: str | None, server: StoreServer, state: dict, run_cli, line: str) -> str:
    """Run one command; returns what it printed on stdout (none of it when redirected)."""
    if args[:1] == ["server"] and "--port" in args:  # the server itself: start it in the background
        server.start()
        return ""
    result = run_cli(*args, input=f"{state['token']}\n" if args[:1] == ["login"] else None)
    assert result.exit_code == 0, f"README line failed: $ {line}\n{result.output}"
    if args[:1] == ["server"] and args[3:5] == ["token", "create"]:
        state["token"] = result.stdout.strip()
    if out is not None:
        Path(out).write_text(result.stdout)
        return ""
    return result.stdout
