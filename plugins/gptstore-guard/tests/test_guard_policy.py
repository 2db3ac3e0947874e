"""The policy on its own: matching, redaction, the config file, and the hooks called directly."""

import json

import pytest

from gptstore.engines.completion import Completion
from gptstore.errors import GPTStoreError
from gptstore_guard import after_generate, before_generate
from gptstore_guard.policy import GuardError, Policy, PromptRefused, config_path, load_policy, save_policy


def test_without_a_config_file_the_defaults_apply(gptstore_home):
    assert config_path() == gptstore_home / "guard.json"
    policy = load_policy()
    assert policy == Policy(block=[], redact=["email", "phone", "blocked"])
    assert not config_path().exists()


def test_the_config_path_can_be_set_by_env(tmp_path, monkeypatch):
    monkeypatch.setenv("GPTSTORE_GUARD_CONFIG", str(tmp_path / "elsewhere.json"))
    save_policy(Policy(block=["x"]))
    assert json.loads((tmp_path / "elsewhere.json").read_text()) == {"block": ["x"],
                                                                     "redact": ["email", "phone", "blocked"]}
    assert load_policy().block == ["x"]


@pytest.mark.parametrize("text, found", [
    ("tell me about hunter2", ["hunter2"]),
    ("HUNTER2!", ["hunter2"]),
    ("(Hunter2)", ["hunter2"]),
    ("hunter22 and xhunter2 and hunter2x", []),
    ("the project\n   X files", ["project x"]),
    ("projectx", []),
    ("I like C++ a lot", ["c++"]),
    ("c++11", []),
])
def test_blocked_terms_match_whole_words_in_any_case(text, found):
    assert Policy(block=["hunter2", "project x", "c++"]).blocked(text) == found


@pytest.mark.parametrize("text, redacted", [
    ("write to bob.smith+tag@mail.example.co.uk.", "write to [email]."),
    ("call +1 (555) 123-4567 now", "call [phone] now"),
    ("or 555-1234, or 555.123.4567, or +44 20 7946 0958", "or [phone], or [phone], or [phone]"),
    ("or 5551234567", "or [phone]"),
    ("on 2024-01-15 at 12:30:45", "on 2024-01-15 at 12:30:45"),
    ("pi is 3.14159265, n is 1,000,000, id 1234567, v1.2.3", "pi is 3.14159265, n is 1,000,000, id 1234567, v1.2.3"),
    ("1 2 3 4 5 6 7 8 and 0x1234567890", "1 2 3 4 5 6 7 8 and 0x1234567890"),
    ("mail hunter2@example.com about Hunter2", "mail [email] about [blocked]"),
])
def test_apply_masks_emails_phones_and_blocked_terms(text, redacted):
    assert Policy(block=["hunter2"]).apply(text).text == redacted


def test_apply_counts_and_masks_only_once():
    # "email" is blocked, but the "[email]" mask is not masked again: one pass over the text
    result = Policy(block=["email"]).apply("email bob@example.com or 555-1234, Email!")
    assert result.text == "[blocked] [email] or [phone], [blocked]!"
    assert result.counts == {"email": 1, "phone": 1, "blocked": 2}


def test_redact_lists_what_is_masked():
    text = "bob@example.com 555-1234 hunter2"
    assert Policy(block=["hunter2"], redact=["phone"]).apply(text).text == "bob@example.com [phone] hunter2"
    assert Policy(block=["hunter2"], redact=[]).apply(text).text == text


def test_add_and_remove_ignore_case_and_spacing():
    policy = Policy()
    assert policy.add("  Project   X ") and policy.block == ["Project X"]
    assert not policy.add("project x")
    assert not policy.remove("nope")
    assert policy.remove("PROJECT X") and policy.block == []
    with pytest.raises(GuardError, match="cannot be empty"):
        policy.add("   ")


@pytest.mark.parametrize("content, message", [
    ("{not json", "cannot read the guard config .*guard.json: Expecting property name"),
    ("[]", "invalid guard config .*: it must be a JSON object"),
    ('{"blocks": ["x"]}', "unknown key.s. blocks"),
    ('{"block": "x"}', "'block' must be a list of non-empty strings"),
    ('{"block": [""]}', "'block' must be a list of non-empty strings"),
    ('{"redact": ["ssn"]}', "'redact' must be a list of email, phone, blocked"),
])
def test_a_broken_config_is_an_error_naming_the_file(gptstore_home, content, message):
    gptstore_home.mkdir(parents=True, exist_ok=True)
    (gptstore_home / "guard.json").write_text(content)
    with pytest.raises(GuardError, match=message):
        load_policy()


def test_save_writes_atomically_and_round_trips(gptstore_home):
    policy = Policy(block=["a", "b c"], redact=["email"])
    path = save_policy(policy)
    assert load_policy() == policy
    assert [p.name for p in path.parent.iterdir()] == ["guard.json"]  # no temp file left


def test_before_generate_refuses_with_a_gptstore_error(gptstore_home):
    before_generate(prompts=["anything goes"])  # no config: nothing is blocked
    save_policy(Policy(block=["hunter2", "secret"]))
    with pytest.raises(PromptRefused) as refused:
        before_generate(prompts=["fine", "my password is HUNTER2", "a secret and hunter2"])
    assert isinstance(refused.value, GPTStoreError) and refused.value.terms == ["hunter2", "secret"]
    assert str(refused.value) == ("prompt refused by gptstore-guard: it contains the blocked term(s) "
                                  "'hunter2', 'secret'; rephrase it, or see `gptstore guard show`")


def test_after_generate_redacts_in_place(gptstore_home):
    completions = [Completion(text="mail bob@example.com", finish_reason="eos"),
                   Completion(text="call 555-1234 re hunter2", finish_reason="length")]
    assert after_generate(completions=completions) is None
    assert [c.text for c in completions] == ["mail [email]", "call [phone] re hunter2"]
    save_policy(Policy(block=["hunter2"]))
    after_generate(completions=completions)
    assert completions[1].text == "call [phone] re [blocked]"
