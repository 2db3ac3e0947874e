"""The admin CLI: ``gptstore server [--data DIR] user|org|token …`` as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gptstore.server.accounts import Accounts, hash_token
from gptstore.server.db import connect

CLI = [sys.executable, "-c", "from gptstore.cli.main import main; main()"]


def gptstore(*args: str, data: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "GPTSTORE_SERVER_DATA"}
    if data is not None:
        env["GPTSTORE_SERVER_DATA"] = str(data)
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=60)


def test_users_orgs_and_tokens_through_the_cli(tmp_path: Path):
    data = tmp_path / "data"
    assert gptstore("server", "--data", str(data), "user", "add", "alice").returncode == 0
    assert gptstore("server", "user", "add", "bob", data=data).returncode == 0  # GPTSTORE_SERVER_DATA
    made = gptstore("server", "org", "add", "acme", "--member", "alice", data=data)
    assert made.returncode == 0 and "acme" in made.stdout
    assert gptstore("server", "org", "list", data=data).stdout.strip() == "acme: alice"

    created = gptstore("server", "token", "create", "alice", "--scope", "write", data=data)
    assert created.returncode == 0
    token = created.stdout.strip()
    assert token.startswith("gst_") and "not shown again" in created.stderr
    listing = gptstore("server", "token", "list", "--json", data=data)
    assert token not in listing.stdout and token not in (data / "catalog.sqlite3").read_bytes().decode("latin-1")
    [info] = json.loads(listing.stdout)
    assert info["user"] == "alice" and info["scope"] == "write" and info["revoked_at"] is None

    accounts = Accounts(connect(data / "catalog.sqlite3"))
    assert accounts.principal(token).orgs == ("acme",)
    assert accounts.db.one("SELECT 1 FROM tokens WHERE hash = ?", (hash_token(token),))
    revoked = gptstore("server", "token", "revoke", info["id"], data=data)
    assert revoked.returncode == 0 and info["id"] in revoked.stdout
    assert accounts.principal(token) is None


def test_cli_errors_are_one_line(tmp_path: Path):
    data = tmp_path / "data"
    missing = gptstore("server", "user", "add", "alice")
    assert missing.returncode == 2 and "GPTSTORE_SERVER_DATA" in missing.stderr
    bad = gptstore("server", "--data", str(data), "user", "add", "no--dashes")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "'--'" in bad.stderr
    assert gptstore("server", "--data", str(data), "user", "add", "alice").returncode == 0
    again = gptstore("server", "--data", str(data), "user", "add", "alice")
    assert again.returncode == 1 and "already taken" in again.stderr
    nobody = gptstore("server", "--data", str(data), "token", "create", "nobody")
    assert nobody.returncode == 1 and "no user 'nobody'" in nobody.stderr
    ghost = gptstore("server", "--data", str(data), "org", "add", "ghosts", "--member", "casper")
    assert ghost.returncode == 1 and "casper" in ghost.stderr
    assert "ghosts" not in gptstore("server", "--data", str(data), "org", "list").stdout
    size = gptstore("server", "--data", str(data), "--max-body", "lots")
    assert size.returncode == 2 and "not a size" in size.stderr
