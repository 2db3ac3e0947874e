"""`gptstore guard ...` through the gptstore CLI, and the guard as `gptstore plugins` sees it."""

import json
import os
import subprocess
import sys

HOOKS = ["after_generate", "before_generate", "register_commands"]


def test_show_add_rm(guard, run_cli, gptstore_home):
    path = gptstore_home / "guard.json"
    shown = run_cli("guard", "show")
    assert shown.exit_code == 0
    assert shown.output == (f"config:  {path} (absent: the defaults apply)\n"
                            "blocked: -\nredact:  email, phone, blocked\n")
    added = run_cli("guard", "add", "hunter2", "Project   X", "HUNTER2")
    assert added.output == "blocked 'hunter2'\nblocked 'Project X'\n'HUNTER2' is already blocked\n"
    assert json.loads(run_cli("guard", "show", "--json").output) == {
        "path": str(path), "exists": True, "block": ["hunter2", "Project X"],
        "redact": ["email", "phone", "blocked"]}
    assert run_cli("guard", "rm", "project x").output == "unblocked 'project x'\n"
    assert json.loads(path.read_text())["block"] == ["hunter2"]


def test_rm_of_a_term_that_is_not_blocked_fails_and_changes_nothing(guard, run_cli, gptstore_home):
    run_cli("guard", "add", "a")
    before = (gptstore_home / "guard.json").read_text()
    result = run_cli("guard", "rm", "a", "b")
    assert result.exit_code == 1
    assert result.stderr == "Error: 'b' is not blocked; see `gptstore guard show`\n"
    assert (gptstore_home / "guard.json").read_text() == before


def test_test_shows_what_would_be_refused_and_redacted(guard, run_cli):
    run_cli("guard", "add", "hunter2")
    result = run_cli("guard", "test", "Mail bob@example.com the Hunter2 file, or call 555-123-4567")
    assert result.exit_code == 0
    assert result.output == ("prompt:   refused (blocked: hunter2)\n"
                             "output:   Mail [email] the [blocked] file, or call [phone]\n"
                             "redacted: email 1, phone 1, blocked 1\n")
    data = json.loads(run_cli("guard", "test", "just words", "--json").output)
    assert data == {"refused": False, "blocked": [], "output": "just words",
                    "redacted": {"email": 0, "phone": 0, "blocked": 0}}


def test_a_broken_config_is_one_line(guard, run_cli, gptstore_home):
    gptstore_home.mkdir(parents=True, exist_ok=True)
    (gptstore_home / "guard.json").write_text('{"blocks": []}')
    result = run_cli("guard", "show")
    assert result.exit_code == 1
    assert result.stderr == (f"Error: invalid guard config {gptstore_home / 'guard.json'}: unknown key(s) blocks; "
                             'expected {"block": ["term", ...], "redact": ["email", "phone", "blocked"]}\n')


def test_plugins_lists_the_guard(guard, run_cli):
    result = run_cli("plugins", "--json")
    info = {p["name"]: p for p in json.loads(result.output)}["guard"]
    assert info == {"name": "guard", "version": "0.1.0", "hooks": HOOKS, "builtin": False, "errors": []}


def test_a_fresh_gptstore_process_loads_it_from_its_entry_point_without_heavy_imports(guard, tmp_path):
    code = ("import sys, json\nfrom gptstore.cli.main import main\nsys.argv = ['gptstore', 'plugins', '--json']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(json.dumps(sorted(m for m in ('torch', 'transformers') if m in sys.modules)))")
    env = dict(os.environ, GPTSTORE_LOAD_PLUGINS="gptstore-guard")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    listing, heavy = result.stdout.rsplit("\n[", 1)
    assert "[" + heavy.strip() == "[]"
    info = {p["name"]: p for p in json.loads(listing)}
    assert info["guard"]["version"] == "0.1.0" and info["guard"]["hooks"] == HOOKS
