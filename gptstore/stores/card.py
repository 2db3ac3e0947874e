"""The model card (``README.md``) pushed with every model: Hub metadata plus a readable summary.

The metadata block is huggingface_hub's own: a ``ModelCardData`` (``library_name: gptstore``, the
tags with ``gptstore`` first, ``license``, ``language``, ``base_model``, ``pipeline_tag:
text-generation``) written and checked by ``ModelCard``, so the YAML is what the Hub, ``gptstore
server`` (:mod:`gptstore.server.metadata`) and ``huggingface_hub.ModelCard.load`` read back,
whatever characters the manifest's values hold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from huggingface_hub import ModelCardData

    from ..manifest import Manifest

#: where the card lives in a hub repo
CARD_FILE = "README.md"


def card_data(manifest: Manifest) -> ModelCardData:
    """The metadata the Hub indexes, from the manifest."""
    from huggingface_hub import ModelCardData

    from ..refs import parse_reference

    m = manifest
    return ModelCardData(
        library_name="gptstore",
        license=m.license,
        pipeline_tag="text-generation",
        tags=list(dict.fromkeys(["gptstore", *m.tags])),
        language=list(m.languages) or None,
        base_model=parse_reference(m.format.base.reference).repo_id if m.format.base else None,
    )


def model_card(manifest: Manifest, digest: str) -> str:
    """The whole ``README.md``: the metadata block (:func:`card_data`) followed by a short
    description, the format, the price, the metrics, usage and the pinned digest."""
    from huggingface_hub import ModelCard

    m = manifest
    lines = [f"# {m.repo_id} {m.version}", ""]
    if m.description:
        lines += [m.description, ""]
    lines += [
        f"- Format: {m.format.adapter} ({m.format.architecture}, {m.format.parameters:,} parameters, "
        f"context {m.format.context_length}, {m.format.dtype})",
        f"- Provider: {m.provider.name if m.provider else 'unknown'}",
        f"- License: {m.license}",
        f"- Price: {m.pricing.label()}",
        f"- Manifest digest: `sha256:{digest}`",
    ]
    lines += [f"- {metric.name}: {metric.value:.4g}" + (f" on {metric.dataset}" if metric.dataset else "")
              for metric in m.metrics]
    lines += ["", "## Use", "", "```", f"gptstore pull {m.repo_id}:{m.version} --store URL",
              f"gptstore run {m.repo_id}:{m.version} \"Your prompt\"", "```", "",
              "Every file is pinned by sha256 in `gptstore.json`; `gptstore verify` checks them.", ""]
    body = "\n".join(lines)
    return str(ModelCard(f"---\n{card_data(m).to_yaml()}\n---\n\n{body}"))
