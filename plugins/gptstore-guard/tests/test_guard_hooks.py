"""The guard's hooks through the real seams: gptstore.load(...).generate/stream and `gptstore run`,
on the tiny (random-init) model.

The tiny model's text is not predictable, so redaction is checked end to end with a helper
plugin that appends a known e-mail address, phone number and term to each completion before the
guard runs (the guard's hooks are trylast), and by applying the policy to what the helper saw.
"""

import json

import pytest

import gptstore
from gptstore import hookimpl, usage
from gptstore_guard.policy import GuardError, Policy, PromptRefused, config_path, save_policy

SUFFIX = " Write to bob@example.com or call +1 555 123 4567 about hunter2."
MASKED = " Write to [email] or call [phone] about [blocked]."


class Leaky:
    """Appends personal data to every completion; records what the model wrote."""

    def __init__(self):
        self.raw = []

    @hookimpl
    def after_generate(self, completions):
        for completion in completions:
            self.raw.append(completion.text)
            completion.text += SUFFIX


def test_without_a_config_generation_works_and_only_redacts(published, register_plugin):
    seen = Leaky()
    register_plugin(seen, name="leaky")
    with gptstore.load(published, device="cpu") as model:
        completion = model.generate("Return the", max_new_tokens=8)
    assert completion.text == Policy().apply(seen.raw[0] + SUFFIX).text
    assert completion.text.endswith(" Write to [email] or call [phone] about hunter2.")  # nothing blocked
    assert not config_path().exists()  # the guard never writes its config by itself


def test_a_blocked_term_refuses_the_whole_call(published):
    save_policy(Policy(block=["hunter2"]))
    with gptstore.load(published, device="cpu") as model:
        with pytest.raises(PromptRefused, match="blocked term.s. 'hunter2'"):
            model.generate(["Return the", "what is HUNTER2?"], max_new_tokens=4)
        with pytest.raises(PromptRefused):
            model.stream("hunter2 is", max_new_tokens=4)
        assert model.generate("hunter22 is fine", max_new_tokens=4).finish_reason == "length"
    assert len(usage.records()) == 1  # refused calls generated nothing


def test_outputs_are_redacted_end_to_end(published, register_plugin):
    save_policy(Policy(block=["hunter2"]))
    seen = Leaky()
    register_plugin(seen, name="leaky")
    with gptstore.load(published, device="cpu") as model:
        completions = model.generate(["Return the", "If the file"], max_new_tokens=6)
        stream = model.stream("Return the", max_new_tokens=6)
        pieces = "".join(stream)
    assert [c.text for c in completions] == [Policy(block=["hunter2"]).apply(r + SUFFIX).text for r in seen.raw[:2]]
    assert all(c.text.endswith(MASKED) for c in completions)
    # streamed pieces are the model's own text; the final completion is redacted
    assert pieces == seen.raw[2] and stream.completion.text.endswith(MASKED)


def test_run_refuses_a_blocked_prompt_with_one_line(published, run_cli):
    assert run_cli("guard", "add", "hunter2").exit_code == 0
    result = run_cli("run", published, "what is Hunter2", "--max-new-tokens", "4")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == ("Error: prompt refused by gptstore-guard: it contains the blocked term(s) 'hunter2'; "
                             "rephrase it, or see `gptstore guard show`\n")


def test_run_json_prints_the_redacted_completion(published, register_plugin, run_cli):
    register_plugin(Leaky(), name="leaky")
    result = run_cli("run", published, "Return the", "--max-new-tokens", "4", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["text"].endswith(" Write to [email] or call [phone] about hunter2.")


def test_a_broken_config_fails_closed(published, run_cli, gptstore_home):
    config_path().write_text("{broken")
    with gptstore.load(published, device="cpu") as model:
        with pytest.raises(GuardError, match="cannot read the guard config"):
            model.generate("Return the", max_new_tokens=4)
    result = run_cli("run", published, "Return the", "--max-new-tokens", "4")
    assert result.exit_code == 1 and result.stderr.startswith("Error: cannot read the guard config ")
    assert len(result.stderr.splitlines()) == 1
