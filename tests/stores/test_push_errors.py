"""push against a real `gptstore server`: refusals say what happened and pass the store's own
reason on; an adapter whose base the store lacks warns, or brings its base with --with-base."""

from __future__ import annotations

import json
import logging

import pytest

from gptstore.testing import publish_copy


@pytest.fixture(autouse=True)
def _alice(store_server, monkeypatch):
    monkeypatch.setenv("GPTSTORE_TOKEN", store_server.tokens["alice:write"])


def publish(source, tmp_path, name, version="1.0.0", *, base=None):
    return publish_copy(source, tmp_path / f"{name.replace('/', '_')}-{version}", name, version, base=base)


def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    assert "HfUriError" not in result.output and "unexpected" not in result.output
    return lines[0]


def test_refused_pushes_say_what_happened_and_pass_the_reason_on(store_server, tiny_gpt_dir, tmp_path,
                                                                   monkeypatch, run_cli):
    publish(tiny_gpt_dir, tmp_path, "alice/guarded")
    assert run_cli("push", "alice/guarded", "--store", store_server.url).exit_code == 0
    publish(tiny_gpt_dir, tmp_path, "alice/guarded", "1.1.0")  # the repo exists: a new version
    monkeypatch.delenv("GPTSTORE_TOKEN")

    anonymous = one_line_error(run_cli("push", "alice/guarded", "--store", store_server.url))
    assert "not authorised" in anonymous and "authentication required" in anonymous and "--token" in anonymous
    read = one_line_error(run_cli("push", "alice/guarded", "--store", store_server.url,
                                  "--token", store_server.tokens["alice:read"]))
    assert "refused to write alice/guarded:1.1.0" in read and "is read-only" in read
    stranger = one_line_error(run_cli("push", "alice/guarded", "--store", store_server.url,
                                      "--token", store_server.tokens["bob:write"]))
    assert "refused to write" in stranger and "bob may not write to the namespace 'alice'" in stranger

    publish(tiny_gpt_dir, tmp_path, "acme/newrepo")  # a new repo in an org bob is not a member of
    org = one_line_error(run_cli("push", "acme/newrepo", "--store", store_server.url,
                                 "--token", store_server.tokens["bob:write"]))
    assert "bob may not write to the namespace 'acme'" in org and "org add" in org
    api = store_server.api()
    assert [t.name for t in api.list_repo_refs("alice/guarded").tags] == ["v1.0.0"]  # nothing went in
    assert not api.repo_exists("acme/newrepo")
    member = run_cli("push", "acme/newrepo", "--store", store_server.url, "--token", store_server.tokens["carol:write"])
    assert member.exit_code == 0, member.output


def test_adapter_without_its_base_on_the_store_warns_or_brings_it(store_server, tiny_gpt_dir, tmp_path, run_cli,
                                                                   caplog):
    base = publish(tiny_gpt_dir, tmp_path, "alice/base-model")
    publish(tiny_gpt_dir, tmp_path, "alice/lora", "0.1.0", base=base)

    with caplog.at_level(logging.WARNING):  # the warning is logged (stderr in a terminal), once
        warned = run_cli("push", "alice/lora", "--store", store_server.url)
    assert warned.exit_code == 0, warned.output
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"does not have the base alice/base-model:1.0.0 (sha256:{base.digest[:12]}…)" in line
    assert "--with-base" in line and "\n" not in line
    api = store_server.api()
    assert api.repo_exists("alice/lora") and not api.repo_exists("alice/base-model")

    publish(tiny_gpt_dir, tmp_path, "alice/lora", "0.2.0", base=base)
    both = run_cli("push", "alice/lora", "--store", store_server.url, "--with-base", "--json")
    assert both.exit_code == 0, both.output
    result = json.loads(both.stdout)
    assert result["reference"] == "alice/lora:0.2.0" and result["warnings"] == []
    assert result["base"]["reference"] == "alice/base-model:1.0.0"
    assert result["base"]["digest"] == f"sha256:{base.digest}"
    assert {t.name for t in api.list_repo_refs("alice/base-model").tags} == {"v1.0.0"}

    publish(tiny_gpt_dir, tmp_path, "alice/lora", "0.3.0", base=base)
    again = json.loads(run_cli("push", "alice/lora", "--store", store_server.url, "--json").stdout)
    assert again["warnings"] == [] and again["base"] is None  # the base is on the store now
