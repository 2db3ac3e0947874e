"""gptstore-guard: refuse prompts that contain blocked terms, redact what the model writes.

Both hooks read the policy (``gptstore guard show``) on every call, so a change applies at once,
and both are ``trylast``: the guard sees the prompts the model will get and the text the caller
will get, after every other plugin.
"""

import gptstore

from .policy import PromptRefused, load_policy


@gptstore.hookimpl(trylast=True)
def before_generate(prompts):
    """Refuse the whole call when any prompt contains a blocked term."""
    policy = load_policy()
    found = [term for prompt in prompts for term in policy.blocked(prompt)]
    if found:
        raise PromptRefused(list(dict.fromkeys(found)))


@gptstore.hookimpl(trylast=True)
def after_generate(completions):
    """Mask e-mail addresses, phone numbers and blocked terms in every completion, in place."""
    policy = load_policy()
    for completion in completions:
        completion.text = policy.apply(completion.text).text


@gptstore.hookimpl
def register_commands(cli):
    from .cli import guard

    cli.add_command(guard)
