"""One line of help per built-in command, for ``gptstore --help``: GENERATED, do not edit.

The lines are read from the commands themselves (each command's ``get_short_help_str``: the first
sentence of its docstring, or its ``short_help``). After changing a command's help, regenerate::

    python -m gptstore.cli._summaries

Why a generated table: ``gptstore --help`` must start fast and import no command module (``run``
builds its options from the pydantic ``GenerationParams``), and reading the commands' sources
at help time would cost about 10 ms of a 130 ms start and re-implement click's decorators. A
table checked by a test costs nothing: ``tests/test_cli_main.py`` fails as soon as this table and
a command's own help differ, so the two cannot drift apart again (they once differed for every
command). Plugin commands are not listed here: they are imported anyway, so click asks them.
"""

from __future__ import annotations

# nothing else is imported at the top: this module is read by every `gptstore --help`

#: command name -> its short help, unshortened (hidden commands are left out)
SUMMARIES: dict[str, str] = {
    "config": "Show the effective settings: default store, Hub endpoint, offline, home.",
    "demo": "Run the end-to-end demo on the local library (GPTSTORE_HOME).",
    "eval": "Measure a model's perplexity on data, or --check its claim.",
    "finetune": "Fine-tune a model on text; write a package draft to --out.",
    "keys": "Make, list and export Ed25519 or P-256 signing keys.",
    "list": "List models in the local library.",
    "lock": "Print a lock file pinning models to exact digests.",
    "login": "Check a token against a store and save it (mode 0600).",
    "logout": "Remove the login saved for a store by `gptstore login`.",
    "manifest": "Manifest tools: the JSON Schema of gptstore.json.",
    "package": "Write DIRECTORY/gptstore.json, pinning every file by sha256.",
    "plugins": "List plugins, their hooks and load errors; install, uninstall.",
    "publish": "Publish a packaged DIRECTORY to the local library.",
    "pull": "Pull models into the local library, verified and resumable.",
    "push": "Push a library model to a store, uploading only what it lacks.",
    "rm": "Remove a model, one of its tags, or one digest from the library.",
    "run": "Generate text from REFERENCE for PROMPT (default: stdin).",
    "search": "Search a store for models (name, description, provider, tags, use cases).",
    "serve": "Serve library models over an OpenAI-compatible API.",
    "server": "Run a private Hub-compatible store; manage users, orgs, keys.",
    "show": "Show a model's manifest, from the local library or a store.",
    "sign": "Sign a package directory (writes DIRECTORY/gptstore.sig and/or model.sig).",
    "trust": "Trust publishers' keys per namespace; set the signature policy.",
    "usage": "Calls, tokens and cost per model, from the usage log.",
    "verify": "Check a model's integrity, authenticity and safety.",
    "whoami": "Show who the token a command would send to a store belongs to.",
}

#: a limit no first sentence reaches, so that the table holds the whole sentence; the root help
#: shortens it to the terminal's width the way click does (``main.short_help``)
UNSHORTENED = 10_000


def generate() -> dict[str, str]:
    """Each visible built-in command's summary, read from the command (imports every command module)."""
    from ._commands import COMMANDS, builtin_command

    found = {}
    for name in sorted(COMMANDS):
        command = builtin_command(name)
        if not command.hidden:
            found[name] = command.get_short_help_str(limit=UNSHORTENED)
    return found


def write(path: str | None = None) -> bool:
    """Rewrite the :data:`SUMMARIES` table in this file (or ``path``) from :func:`generate`; True
    if it changed."""
    import json
    from pathlib import Path

    path = Path(path or __file__)
    source = path.read_text(encoding="utf-8")
    head = "SUMMARIES: dict[str, str] = {\n"
    start = source.index(head) + len(head)
    end = source.index("}\n", start)
    rows = "".join(f"    {json.dumps(name)}: {json.dumps(text, ensure_ascii=False)},\n"
                   for name, text in generate().items())
    updated = source[:start] + rows + source[end:]
    if updated == source:
        return False
    path.write_text(updated, encoding="utf-8")
    return True


if __name__ == "__main__":
    print(f"{'updated' if write() else 'unchanged'}: {__file__}")
