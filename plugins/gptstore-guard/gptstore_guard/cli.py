"""``gptstore guard``: show and change the policy, and try it on a text."""

import json

import click

from .policy import GuardError, config_path, load_policy, normalize, save_policy

GUARD_EXAMPLES = """
\b
Examples:
  gptstore guard add hunter2 "project x"
  gptstore guard test "Mail bob@example.com about Project X"
  gptstore guard rm hunter2
  gptstore guard show --json
"""


@click.group(epilog=GUARD_EXAMPLES)
def guard():
    """Refuse prompts with blocked terms; redact e-mails, phone numbers (gptstore-guard)."""


@guard.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def show(as_json):
    """Show the policy: where it lives, the blocked terms, what is redacted."""
    path = config_path()
    policy = load_policy(path)
    if as_json:
        click.echo(json.dumps({"path": str(path), "exists": path.exists(), **policy.to_dict()}, indent=2))
        return
    click.echo(f"config:  {path}" + ("" if path.exists() else " (absent: the defaults apply)"))
    click.echo(f"blocked: {', '.join(policy.block) or '-'}")
    click.echo(f"redact:  {', '.join(policy.redact) or '-'}")


@guard.command()
@click.argument("terms", nargs=-1, required=True)
def add(terms):
    """Block TERMS: refuse prompts that contain them, mask them in outputs."""
    policy = load_policy()
    for term in terms:
        added = policy.add(term)
        click.echo(f"blocked {normalize(term)!r}" if added else f"{normalize(term)!r} is already blocked")
    save_policy(policy)


@guard.command()
@click.argument("terms", nargs=-1, required=True)
def rm(terms):
    """Unblock TERMS."""
    policy = load_policy()
    for term in terms:
        if not policy.remove(term):
            raise GuardError(f"{term!r} is not blocked", hint="see `gptstore guard show`")
    save_policy(policy)
    for term in terms:
        click.echo(f"unblocked {normalize(term)!r}")


@guard.command("test")
@click.argument("text")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def test_text(text, as_json):
    """Show what the guard would do with TEXT, as a prompt and as an output."""
    policy = load_policy()
    blocked = policy.blocked(text)
    redaction = policy.apply(text)
    if as_json:
        click.echo(json.dumps({"refused": bool(blocked), "blocked": blocked, "output": redaction.text,
                               "redacted": redaction.counts}, indent=2))
        return
    click.echo("prompt:   " + (f"refused (blocked: {', '.join(blocked)})" if blocked else "allowed"))
    click.echo(f"output:   {redaction.text}")
    click.echo("redacted: " + ", ".join(f"{kind} {n}" for kind, n in redaction.counts.items()))
