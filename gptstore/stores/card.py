"""The model card (``README.md``) pushed with every model: Hub metadata plus a readable summary."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..manifest import Manifest


def _yaml_list(name: str, values: list[str]) -> list[str]:
    return [f"{name}:"] + [f"- {json.dumps(v)}" for v in values] if values else []


def model_card(manifest: Manifest, digest: str) -> str:
    """YAML front matter the Hub indexes (library_name, tags, license, base_model, pipeline_tag)
    followed by a short description, usage and the pinned digest."""
    from .base import price_label

    m = manifest
    tags = list(dict.fromkeys(["gptstore", *m.tags]))
    lines = ["---", "library_name: gptstore", f"license: {json.dumps(m.license)}",
             "pipeline_tag: text-generation", *_yaml_list("tags", tags), *_yaml_list("language", m.languages)]
    if m.format.base:
        lines.append(f"base_model: {json.dumps(m.format.base.reference.split(':')[0])}")
    lines += ["---", "", f"# {m.repo_id} {m.version}", ""]
    if m.description:
        lines += [m.description, ""]
    lines += [
        f"- Format: {m.format.adapter} ({m.format.architecture}, {m.format.parameters:,} parameters, "
        f"context {m.format.context_length}, {m.format.dtype})",
        f"- Provider: {m.provider.name if m.provider else 'unknown'}",
        f"- License: {m.license}",
        f"- Price: {price_label(m)}",
        f"- Manifest digest: `sha256:{digest}`",
    ]
    lines += [f"- {metric.name}: {metric.value:.4g}" + (f" on {metric.dataset}" if metric.dataset else "")
              for metric in m.metrics]
    lines += ["", "## Use", "", "```", f"gptstore pull {m.repo_id}:{m.version} --store URL",
              f"gptstore run {m.repo_id}:{m.version} \"Your prompt\"", "```", "",
              "Every file is pinned by sha256 in `gptstore.json`; `gptstore verify` checks them.", ""]
    return "\n".join(lines)
