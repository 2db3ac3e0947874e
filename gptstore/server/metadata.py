"""What a repo says about itself: the model card's YAML header and the gptstore manifest.

Both are read at ``main`` on every commit to it and stored with the repo, so listings need no
file reads: tags (card tags, manifest tags, ``gptstore``, ``license:…``, the library and the
pipeline tag), ``library_name``, ``pipeline_tag`` and the manifest summary clients render.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..manifest import Manifest

_FRONT = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?\r?\n)?---[ \t]*(?:\r?\n|\Z)", re.DOTALL)


@dataclass(frozen=True)
class RepoMetadata:
    card: dict[str, Any]
    summary: dict[str, Any] | None
    tags: list[str]
    library_name: str | None
    pipeline_tag: str | None


def parse_card(text: str) -> dict[str, Any]:
    """The YAML metadata block at the top of a README (``{}`` when there is none).

    Raises ValueError with a readable message when the block is not a YAML mapping.
    """
    import yaml

    match = _FRONT.match(text)
    if not match:
        return {}
    try:
        data = yaml.safe_load(match.group(1) or "")
    except yaml.YAMLError as exc:
        raise ValueError(f"the README metadata is not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError("the README metadata must be a YAML mapping (key: value)")
    return data


def summarize(manifest: Manifest, digest: str) -> dict[str, Any]:
    """The part of a manifest search results show, without another request."""
    provider = manifest.provider.model_dump(exclude_none=True) if manifest.provider else None
    return {
        "name": f"{manifest.namespace}/{manifest.name}",
        "version": manifest.version,
        "description": manifest.description,
        "provider": provider,
        "license": manifest.license,
        "tags": list(manifest.tags),
        "pricing": manifest.pricing.model_dump(),
        "task": manifest.task,
        "architecture": manifest.format.architecture,
        "parameters": manifest.format.parameters,
        "context_length": manifest.format.context_length,
        "digest": digest,
    }


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, (str, int, float))]
    return []


def repo_metadata(card: dict[str, Any], summary: dict[str, Any] | None) -> RepoMetadata:
    library = card.get("library_name") if isinstance(card.get("library_name"), str) else None
    pipeline = card.get("pipeline_tag") if isinstance(card.get("pipeline_tag"), str) else None
    if summary:
        library = library or "gptstore"
        pipeline = pipeline or summary["task"]
    tags = _strings(card.get("tags"))
    if summary:
        tags += ["gptstore", *summary["tags"]]
    licenses = _strings(card.get("license")) or ([summary["license"]] if summary else [])
    tags += [f"license:{value.lower()}" for value in licenses]
    tags += [t for t in (library, pipeline) if t]
    unique = list(dict.fromkeys(tag for tag in tags if tag))
    return RepoMetadata(card, summary, unique, library, pipeline)
