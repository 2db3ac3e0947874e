"""Signing commands: ``keys`` (generate, list, export), ``sign`` and ``trust`` (add, list, rm, policy).

Thin: parse, call :mod:`gptstore.signing` / :mod:`gptstore.trust` (``sign``: the front door's
:func:`gptstore.sdk.sign`), print. ``cryptography`` is imported only when a command runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from ._commands import SuggestingGroup
from ._options import json_option
from ._output import echo_json, table


def _passphrase_option(confirm: bool):
    return click.option(
        "--passphrase", default=None, prompt="Passphrase", prompt_required=False, hide_input=True,
        confirmation_prompt=confirm, metavar="[TEXT]",
        help="Passphrase of the private key; give the flag alone to be prompted "
             "(default: GPTSTORE_KEY_PASSPHRASE).")


KEYS_EXAMPLES = """
\b
Examples:
  gptstore keys generate release --passphrase      # prompts for a passphrase
  gptstore keys export release > release.pub       # hand this file to your users
  gptstore sign ./my-model --key release
  gptstore keys generate oms --type ec-p256        # also signs OpenSSF model.sig
"""


@click.group(cls=SuggestingGroup, epilog=KEYS_EXAMPLES)
def keys() -> None:
    """Make, list and export Ed25519 or P-256 signing keys.

    They are kept in GPTSTORE_HOME/keys.
    """


@keys.command("generate")
@click.argument("name")
@_passphrase_option(confirm=True)
@click.option("--force", is_flag=True, help="Replace an existing key of that name.")
@click.option("--type", "key_type", type=click.Choice(["ed25519", "ec-p256"]), default="ed25519", show_default=True,
              help="Key type; ec-p256 can also sign OpenSSF model.sig (`gptstore sign --format oms`).")
@json_option
def keys_generate(name, passphrase, force, key_type, as_json):
    """Make a key pair NAME.key (mode 0600) and NAME.pub."""
    from .. import config
    from ..signing import generate_key

    info = generate_key(name, passphrase=passphrase or config.key_passphrase(), force=force, type=key_type)
    if as_json:
        echo_json(info.to_dict())
        return
    protected = "passphrase-protected" if info.encrypted else "no passphrase"
    kind = f", {info.type}" if info.type != "ed25519" else ""
    click.echo(f"Generated key {info.name} (keyid {info.keyid}, {protected}{kind}) at {info.path}")
    click.echo(f"Share the public key: gptstore keys export {info.name} > {info.name}.pub")


@keys.command("list")
@json_option
def keys_list(as_json):
    """List your signing keys."""
    from ..signing import list_keys

    found = list_keys()
    if as_json:
        echo_json([k.to_dict() for k in found])
        return
    if not found:
        click.echo("No keys. Make one with `gptstore keys generate NAME`.")
        return
    table(["NAME", "TYPE", "KEYID", "PASSPHRASE", "PATH"],
          [(k.name, k.type, k.keyid, "yes" if k.encrypted else "no", k.path) for k in found])


@keys.command("export")
@click.argument("name")
@json_option
def keys_export(name, as_json):
    """Print a public key (PEM SubjectPublicKeyInfo) for `gptstore trust add`."""
    from ..signing import export_public_key, get_key

    if as_json:
        info = get_key(name)
        echo_json({"name": info.name, "keyid": info.keyid, "public_key": info.public_key})
        return
    click.echo(export_public_key(name), nl=False)


SIGN_EXAMPLES = """
\b
Examples:
  gptstore sign ./my-model --key release
  GPTSTORE_KEY_PASSPHRASE=... gptstore sign ./my-model --key release --json
  gptstore sign ./my-model --key oms --format both   # also model.sig (OpenSSF), a P-256 key
"""


@click.command(epilog=SIGN_EXAMPLES)
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--key", "key_name", required=True, metavar="NAME", help="Signing key (see `gptstore keys list`).")
@_passphrase_option(confirm=False)
@click.option("--format", "fmt", type=click.Choice(["gptstore", "oms", "both"]), default="gptstore", show_default=True,
              help="gptstore.sig, model.sig (OpenSSF model signing; needs an ec-p256 key), or both.")
@json_option
def sign(directory, key_name, passphrase, fmt, as_json):
    """Sign a package directory (writes DIRECTORY/gptstore.sig and/or model.sig).

    Every file is checked against gptstore.json first.
    """
    from .. import config
    from ..sdk import sign as sign_package
    from ..signing import get_key

    if passphrase is None and config.key_passphrase() is None and get_key(key_name).encrypted:
        passphrase = click.prompt(f"Passphrase for key {key_name}", hide_input=True, err=True)
    result = sign_package(directory, key=key_name, passphrase=passphrase, format=fmt)
    if as_json:
        echo_json(result.to_dict())
        return
    click.echo(f"Signed {result.reference} (sha256:{result.digest[:12]}) with key {result.key} "
               f"({result.keyid}): {', '.join(str(p) for p in result.paths)}")


TRUST_EXAMPLES = """
\b
Examples:
  gptstore trust add acme acme-release.pub        # models of acme/* now need acme's signature
  gptstore trust list
  gptstore trust policy require                  # every namespace needs a trusted signature
  gptstore trust policy warn --namespace acme    # only warn for acme
  gptstore trust rm acme 1a2b3c4d
"""


@click.group(cls=SuggestingGroup, epilog=TRUST_EXAMPLES)
def trust() -> None:
    """Trust publishers' keys per namespace; set the signature policy.

    \b
    Policies: off (skip), warn (one warning line), require (refuse).
    A namespace follows its own policy if set, else `require` once it has a trusted key,
    else the global policy (default: warn).
    """


@trust.command("add")
@click.argument("namespace")
@click.argument("pubkey_file", type=click.File("rb"))
@json_option
def trust_add(namespace, pubkey_file, as_json):
    """Trust the public key in PUBKEY_FILE (`-` for stdin) for models of NAMESPACE."""
    from ..trust import TrustStore

    source = getattr(pubkey_file, "name", "public key")
    with TrustStore.edit() as store:
        key, added = store.add_key(namespace, pubkey_file.read(), source=str(source))
        policy, why = store.effective_policy(namespace)
    if as_json:
        echo_json({"namespace": namespace, "keyid": key.keyid, "added": added, "policy": policy})
        return
    verb = "Trusted" if added else "Already trusted:"
    click.echo(f"{verb} key {key.keyid} for {namespace} (policy {policy}, from {why})")


@trust.command("list")
@json_option
def trust_list(as_json):
    """Show the global policy and each namespace's keys and policy."""
    from ..trust import TrustStore

    data = TrustStore.load().describe()
    if as_json:
        echo_json(data)
        return
    click.echo(f"Global policy: {data['default_policy']} (namespaces without a trusted key or own policy)")
    rows = []
    for namespace, entry in data["namespaces"].items():
        policy = f"{entry['effective_policy']} ({entry['policy_source']})"
        policy += ", unsigned allowed" if entry.get("allow_unsigned") else ""
        for key in entry["keys"] or [{"keyid": "-", "added_at": ""}]:
            rows.append((namespace, policy, key["keyid"], key["added_at"]))
    if rows:
        table(["NAMESPACE", "POLICY", "KEYID", "ADDED"], rows)
    else:
        click.echo("No trusted keys. Add one with `gptstore trust add NAMESPACE PUBKEY_FILE`.")


@trust.command("rm")
@click.argument("namespace")
@click.argument("keyid", required=False)
@json_option
def trust_rm(namespace, keyid, as_json):
    """Stop trusting KEYID (a unique prefix will do), or every key, for NAMESPACE."""
    from ..trust import TrustStore

    with TrustStore.edit() as store:
        removed = store.remove(namespace, keyid)
        policy, _ = store.effective_policy(namespace)
    if as_json:
        echo_json({"namespace": namespace, "removed": [k.keyid for k in removed], "policy": policy})
        return
    click.echo(f"Removed {', '.join(k.keyid for k in removed)} from {namespace} (policy now {policy})")


@trust.command("allow-unsigned")
@click.argument("namespace")
@click.option("--undo", is_flag=True, help="Stop allowing unsigned models of NAMESPACE.")
@json_option
def trust_allow_unsigned(namespace, undo, as_json):
    """Let unsigned models of NAMESPACE pass every policy (e.g. Hub repos imported without gptstore.json)."""
    from ..trust import TrustStore

    with TrustStore.edit() as store:
        store.set_allow_unsigned(namespace, not undo)
    if as_json:
        echo_json({"namespace": namespace, "allow_unsigned": not undo})
        return
    click.echo(f"{'No longer allowing' if undo else 'Allowing'} unsigned models of {namespace}")


@trust.command("policy")
@click.argument("policy", required=False, type=click.Choice(["off", "warn", "require", "inherit"]))
@click.option("--namespace", "-n", default=None, help="Set it for this namespace only.")
@json_option
def trust_policy(policy, namespace, as_json):
    """Set (or show) the trust policy: off, warn or require; `inherit` clears a namespace's own."""
    from ..errors import UsageError
    from ..trust import TrustStore

    if policy == "inherit" and namespace is None:
        raise UsageError("`inherit` applies to a namespace", hint="add --namespace NS")
    if policy is None:
        store = TrustStore.load()
    else:
        with TrustStore.edit() as store:
            store.set_policy(None if policy == "inherit" else policy, namespace)
    if namespace is not None:
        effective, why = store.effective_policy(namespace)
        if as_json:
            echo_json({"namespace": namespace, "policy": effective, "policy_source": why})
        else:
            click.echo(f"Trust policy for {namespace}: {effective} ({why})")
        return
    keyed = sorted(ns for ns, entry in store.namespaces.items() if entry.keys and not entry.policy)
    if as_json:
        echo_json({"default_policy": store.default_policy, "require_by_trusted_key": keyed})
        return
    click.echo(f"Global trust policy: {store.default_policy}")
    if keyed and store.default_policy != "require":
        click.echo(f"Still require (they have trusted keys): {', '.join(keyed)}; change one with "
                   "`gptstore trust policy POLICY --namespace NS`", err=True)


__all__ = ["keys", "sign", "trust"]
