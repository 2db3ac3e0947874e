"""Provider and library commands: package, publish, list, show, verify, rm."""

from __future__ import annotations

from pathlib import Path

import click

from ..manifest import CATEGORIES, MAX_USE_CASE_CHARS, MAX_USE_CASES
from ._options import allow_unsafe_option, json_option, store_option, token_option
from ._output import echo_json, human_size, json_price, short, table

PACKAGE_EXAMPLES = """
\b
Examples:
  gptstore package ./my-model --name acme/poet --version 1.0.0 --description "Writes verse"
  gptstore package ./my-model --name acme/poet --version 1.1.0 --price-model per_1k_tokens --price 0.02
  gptstore package ./my-lora --name acme/poet-lora --version 1.0.0 --base acme/tiny:1.0.0
  gptstore package ./my-model --name acme/helpdesk --version 1.0.0 --category chat \\
      --use-case "customer-support replies" --use-case "FAQ answers"
"""


@click.command(epilog=PACKAGE_EXAMPLES)
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", required=True, metavar="NS/NAME", help="Reference of the model, namespace/name.")
@click.option("--version", "version", required=True, metavar="X.Y.Z", help="Semantic version of this release.")
@click.option("--description", default=None, help="One paragraph on what the model does.")
@click.option("--adapter", default=None, help="Package format (default: detected).")
@click.option("--base", default=None, metavar="REF",
              help="Base model in the local library, for formats over a base (e.g. a peft adapter); "
                   "recorded by reference and manifest digest.")
@click.option("--license", "license_", default=None, help="SPDX license id, e.g. apache-2.0.")
@click.option("--tag", "tags", multiple=True, help="Search tag (repeatable).")
@click.option("--language", "languages", multiple=True, help="Language code (repeatable).")
@click.option("--provider", default=None, help="Provider name.")
@click.option("--category", type=click.Choice(CATEGORIES), default=None,
              help="Store category (docs/catalogue.md describes each).")
@click.option("--use-case", "use_cases", multiple=True, metavar="PHRASE",
              help=f"What the model is for, a short phrase (repeatable, at most {MAX_USE_CASES}, "
                   f"{MAX_USE_CASE_CHARS} characters each).")
@click.option("--template", default=None, help="Prompt template containing {prompt}.")
@click.option("--price-model", type=click.Choice(["free", "per_1k_tokens", "flat"]), default=None,
              help="How use is priced (default: free; per_1k_tokens when --price or --currency is given).")
@click.option("--price", type=float, default=None, help="Amount for --price-model.")
@click.option("--currency", default=None, help="ISO 4217 currency (default USD).")
@allow_unsafe_option
@json_option
def package(directory, name, version, description, adapter, base, license_, tags, languages, provider,
            category, use_cases, template, price_model, price, currency, allow_unsafe, as_json):
    """Write DIRECTORY/gptstore.json, pinning every file by sha256.

    The format and the file list are always recomputed; the other fields of an earlier
    gptstore.json in DIRECTORY (e.g. what `gptstore finetune` drafted) are kept unless given here.
    """
    from ..manifest import Pricing
    from ..packaging import package as make_package

    fields = {"description": description, "license": license_, "tags": list(tags) or None,
              "languages": list(languages) or None, "prompt_template": template,
              "provider": {"name": provider} if provider else None,
              "category": category, "use_cases": list(use_cases) or None,
              "pricing": Pricing.fields_from(price_model, price, currency)}
    manifest = make_package(directory, name=name, version=version, adapter=adapter,
                            allow_unsafe=allow_unsafe, base=base, **fields)
    if as_json:
        echo_json({"reference": f"{manifest.repo_id}:{manifest.version}", "manifest": str(directory / "gptstore.json"),
                   "digest": f"sha256:{manifest.digest}", "files": len(manifest.files),
                   "bytes": manifest.total_size, "price": json_price(manifest.pricing)})
        return
    fmt = manifest.format
    click.echo(f"Packaged {manifest.repo_id}:{manifest.version} ({fmt.adapter}, {fmt.architecture}, "
               f"{fmt.parameters:,} parameters, {fmt.dtype})")
    if fmt.base:
        click.echo(f"  over base {fmt.base.reference} (sha256:{short(fmt.base.digest)})")
    click.echo(f"  {len(manifest.files)} files, {human_size(manifest.total_size)}, "
               f"digest sha256:{short(manifest.digest)}")
    click.echo(f"  wrote {directory / 'gptstore.json'}; next: gptstore publish {directory}")


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace a version that was published with other content.")
@allow_unsafe_option
@json_option
def publish(directory, force, allow_unsafe, as_json):
    """Publish a packaged DIRECTORY to the local library.

    The model is tagged with its version and as latest.
    """
    from ..library import Library
    from ..packaging import stale_signature

    model = Library().publish(directory, force=force, allow_unsafe=allow_unsafe)
    if warning := stale_signature(directory, model.manifest):
        click.echo(f"Warning: {warning}", err=True)
    if as_json:
        echo_json({"reference": model.name, "digest": f"sha256:{model.digest}", "path": str(model.path)})
        return
    click.echo(f"Published {model.name} (sha256:{short(model.digest)}), also tagged latest")


@click.command("list")
@json_option
def list_models(as_json):
    """List models in the local library."""
    from ..library import Library

    rows = []
    for entry, manifest in Library().iter_models():
        rows.append({"reference": f"{entry.repo_id}:{entry.tag}", "version": manifest.version,
                     "digest": f"sha256:{entry.digest}", "size": manifest.total_size,
                     "format": manifest.format.adapter, "description": manifest.description,
                     "price": json_price(manifest.pricing)})
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No models yet. Package and publish one, or pull one: gptstore pull NS/NAME")
        return
    table(["REFERENCE", "VERSION", "DIGEST", "SIZE", "FORMAT", "DESCRIPTION"],
          [[r["reference"], r["version"], short(r["digest"][7:]), human_size(r["size"]), r["format"],
            (r["description"][:50] + "…") if len(r["description"]) > 50 else r["description"]] for r in rows],
          right={3})


@click.command()
@click.argument("reference")
@store_option
@token_option
@json_option
def show(reference, store_url, token, as_json):
    """Show a model's manifest, from the local library or a store.

    Identity, format, files, metrics (and whether `gptstore eval --check` can re-check each),
    pricing, provenance, and its signatures: gptstore.sig and the OpenSSF model.sig, each
    checked against the keys your trust store trusts for the namespace.
    """
    from ..refs import parse_reference
    from ..stores import get_store

    ref = parse_reference(reference)
    from ..errors import ModelNotFound
    from ..stores.base import library_store

    try:  # without --store: the local library first, then the effective store (GPTSTORE_STORE, else hf://)
        source = get_store(store_url, token=token) if store_url else library_store()
        located = source.locate(ref)
    except ModelNotFound as missing:
        if store_url:
            raise
        from .. import config
        from ..errors import StoreError

        try:
            located = get_store(None, token=token).locate(ref)
        except StoreError as exc:  # offline, or the default store unreachable: say both
            raise ModelNotFound(missing.reference, hint=f"{config.effective_store()} could not be asked: "
                                f"{exc.message}") from None
    from ..sdk import signature_status

    manifest, digest = located.manifest, located.digest
    signatures = signature_status(manifest, located.signature, located.oms_signature)
    if as_json:
        data = manifest.model_dump(mode="json", exclude_none=True)
        data["reference"] = f"{manifest.repo_id}:{manifest.version}"
        data["price"] = json_price(manifest.pricing)
        data["digest"] = f"sha256:{digest}"
        data["signed"] = any(s.present for s in signatures)
        data["signatures"] = {s.file: {"present": s.present, "verified": s.verified, "keyid": s.keyid,
                                       "status": s.describe()} for s in signatures}
        from ..evaluation import claim_status

        for metric, shown in zip(manifest.metrics, data.get("metrics", [])):
            checkable, how = claim_status(metric)
            shown["recheck"] = {"checkable": checkable, "how": how}
        echo_json(data)
        return
    m = manifest
    click.echo(f"{m.repo_id}:{m.version}  sha256:{digest}")
    if m.description:
        click.echo(f"  {m.description}")
    click.echo(f"  provider:   {m.provider.name if m.provider else '-'}    license: {m.license}    "
               f"price: {m.pricing.label()}")
    click.echo(f"  format:     {m.format.adapter} {m.format.architecture}, {m.format.parameters:,} parameters, "
               f"context {m.format.context_length}, {m.format.dtype}")
    if m.format.base:
        click.echo(f"  base:       {m.format.base.reference} sha256:{short(m.format.base.digest)}")
    click.echo(f"  signed:     {'yes' if any(s.present for s in signatures) else 'no'}    "
               f"created: {m.created_at:%Y-%m-%d %H:%M}Z")
    click.echo(f"  signatures: {'; '.join(f'{s.file}: {s.describe()}' for s in signatures)}")
    if m.category:
        click.echo(f"  category:   {m.category}")
    if m.use_cases:
        click.echo(f"  use cases:  {'; '.join(m.use_cases)}")
    if m.tags:
        click.echo(f"  tags:       {', '.join(m.tags)}")
    from ..evaluation import claim_status

    for metric in m.metrics:
        where = f" on {metric.task or metric.dataset}" if metric.task or metric.dataset else ""
        checkable, how = claim_status(metric)
        click.echo(f"  metric:     {metric.name} = {metric.value:.4g}{where}")
        click.echo(f"              {'re-checkable' if checkable else 'cannot be re-checked'}: {how}")
    if m.provenance:
        p = m.provenance
        base = p.base_reference or (f"sha256:{short(p.base_digest)}" if p.base_digest else "-")
        click.echo(f"  provenance: base {base}, {len(p.datasets)} dataset(s), "
                   f"{', '.join(f'{k} {v}' for k, v in sorted(p.frameworks.items()))}")
    click.echo(f"  files ({len(m.files)}, {human_size(m.total_size)}):")
    table(["PATH", "SIZE", "SHA256"], [[f.path, human_size(f.size), short(f.sha256)] for f in m.files],
          indent=4, right={1})


@click.command()
@click.argument("reference")
@click.option("--full", is_flag=True, help="Re-hash every file instead of trusting unchanged stamps.")
@allow_unsafe_option
@json_option
def verify(reference, full, allow_unsafe, as_json):
    """Check a model's integrity, authenticity and safety.

    REFERENCE is a library model or a package directory. Exits 1 when any check fails.
    """
    from ..errors import IntegrityError
    from ..verification import verify as verify_target

    report = verify_target(reference, full=full, allow_unsafe=allow_unsafe, strict=False)
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(f"{report.reference}  sha256:{short(report.digest)}")
        for check in report.checks:
            mark = "ok  " if check.ok and not check.warning else ("warn" if check.ok else "FAIL")
            click.echo(f"  {mark} {check.name:<13} {check.summary}")
        for line in report.warnings:  # what is wrong and how to fix it; the JSON has it as "note"
            click.echo(line, err=True)
    if not report.ok:
        failed = ", ".join(c.name for c in report.checks if not c.ok)
        raise IntegrityError(f"verification of {report.reference} failed ({failed})",
                             hint="see the lines above; pull or publish the model again")


@click.command()
@click.argument("reference")
@click.option("--force", is_flag=True, help="Remove a base model even though installed adapters pin it.")
@json_option
def rm(reference, force, as_json):
    """Remove a model, one of its tags, or one digest from the library.

    NS/NAME removes every tag, NS/NAME:TAG one tag, NS/NAME@sha256:… one digest. Blobs no
    other model uses are deleted. A base model that an installed adapter pins is kept unless
    --force.
    """
    from ..removal import remove

    result = remove(reference, force=force)
    kept = dict(result.kept_by)
    if as_json:
        echo_json([{"reference": f"{e.repo_id}:{e.tag}", "digest": f"sha256:{e.digest}",
                    "still_tagged": kept.get(f"{e.repo_id}:{e.tag}", [])} for e in result.removed])
        return
    for entry in result.removed:
        name = f"{entry.repo_id}:{entry.tag}"
        if name in kept:
            tags = kept[name]
            click.echo(f"Removed tag {name}; {', '.join(tags)} still point{'s' if len(tags) == 1 else ''} at it "
                       f"(sha256:{short(entry.digest)}), so no data was deleted")
        else:
            click.echo(f"Removed {name} (sha256:{short(entry.digest)})")
    if result.orphaned:
        click.echo(f"Warning: {', '.join(result.orphaned)} lost {'their' if len(result.orphaned) > 1 else 'its'} "
                   "base model; pull it again to run them", err=True)
