"""What a repo says about itself: the model card's YAML header and the gptstore manifest.

Both are read at ``main`` on every commit to it and stored with the repo (the card parsed once,
bounded and JSON-safe), so listings need no file reads and no YAML parsing: tags (card tags,
manifest tags, ``gptstore``, ``license:…``, the library and the pipeline tag), ``library_name``,
``pipeline_tag`` and the manifest summary clients render.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from ..manifest import Manifest

_FRONT = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?\r?\n)?---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_OPEN = re.compile(r"\A\ufeff?---[ \t]*\r?\n")
#: largest model-card metadata block (the YAML between the --- lines), in bytes
MAX_FRONT_MATTER = 64 * 1024
#: deepest nesting of lists and mappings in it (real cards, model-index included, need about 7)
MAX_CARD_DEPTH = 32
#: characters of a README that :func:`parse_card` looks at (the block and its delimiter lines)
CARD_READ_LIMIT = MAX_FRONT_MATTER + 4096


@dataclass(frozen=True)
class RepoMetadata:
    card: dict[str, Any]
    summary: dict[str, Any] | None
    tags: list[str]
    library_name: str | None
    pipeline_tag: str | None


def parse_card(text: str) -> dict[str, Any]:
    """The YAML metadata block at the top of a README (``{}`` when there is none), JSON-safe.

    The block comes from anyone who may commit, and its parsed form is served to everyone who
    lists models, so it is bounded before it is stored: at most :data:`MAX_FRONT_MATTER` bytes,
    nesting at most :data:`MAX_CARD_DEPTH` deep, no anchors or aliases (a 350-byte block of nested
    aliases expanded to 105 MB), and only values JSON can hold. Only the first
    :data:`CARD_READ_LIMIT` characters of ``text`` are looked at, so callers may pass a prefix.

    Raises ValueError with a readable message when the block breaks one of these rules or is not
    a YAML mapping.
    """
    window = text[:CARD_READ_LIMIT]
    match = _FRONT.match(window)
    if not match:
        if _OPEN.match(window) and len(window.encode("utf-8", "replace")) > MAX_FRONT_MATTER + 8:
            raise ValueError(f"the metadata block at the top of the README is not closed by a --- line "
                             f"within {MAX_FRONT_MATTER // 1024} KiB; close it (and keep it under "
                             f"{MAX_FRONT_MATTER // 1024} KiB)")
        return {}
    block = match.group(1) or ""
    if len(block.encode("utf-8", "replace")) > MAX_FRONT_MATTER:
        raise ValueError(f"the README metadata is larger than {MAX_FRONT_MATTER // 1024} KiB; shorten it")
    data = _load_yaml(block)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError("the README metadata must be a YAML mapping (key: value)")
    return _json_safe(data)


def _load_yaml(block: str) -> Any:
    """Parse ``block`` after checking its event stream: no anchor, no alias, bounded nesting."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    depth = 0
    try:
        for event in yaml.parse(block, Loader=loader):
            if isinstance(event, yaml.AliasEvent):
                raise ValueError("the README metadata uses a YAML alias (*name); aliases and anchors are "
                                 "not allowed, write the values out")
            if isinstance(event, yaml.NodeEvent) and event.anchor is not None:
                raise ValueError("the README metadata defines a YAML anchor (&name); anchors and aliases are "
                                 "not allowed, write the values out")
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_CARD_DEPTH:
                    raise ValueError(f"the README metadata is nested more than {MAX_CARD_DEPTH} levels deep")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        try:
            return yaml.load(block, Loader=loader)
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:  # e.g. a 5,000-digit int
            raise ValueError(f"the README metadata holds a value that cannot be read: "
                             f"{str(exc).split(';')[0]}") from None
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "flow level" in first:  # libyaml's own nesting limit, hit while scanning ahead
            raise ValueError(f"the README metadata is nested more than {MAX_CARD_DEPTH} levels deep") from None
        raise ValueError(f"the README metadata is not valid YAML: {first}") from None


def _json_safe(value: Any) -> Any:
    """``value`` as JSON can hold it: dates as ISO strings, keys as strings; ValueError for NaN,
    infinities, binary values and sets (nesting is already bounded)."""
    if isinstance(value, dict):
        return {_json_key(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("the README metadata holds NaN or Infinity, which JSON cannot represent")
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, bytes):
        raise ValueError("the README metadata holds a binary value (!!binary); use text")
    raise ValueError(f"the README metadata holds a {type(value).__name__} (e.g. !!set); use lists and mappings")


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float)):
        return json.dumps(_json_safe(key))
    return str(_json_safe(key))


# -- the Hub's model-card metadata rules (what validate-yaml checks) --------------------------
#: the warning the Hub gives a card without metadata (``HfApi`` shows it as a UserWarning)
NO_METADATA_WARNING = ("Empty or missing yaml metadata in repo card "
                       "(https://huggingface.co/docs/hub/model-cards#model-card-metadata)")
#: fields that hold one string
STRING_FIELDS = ("license", "license_name", "license_link", "library_name", "pipeline_tag", "thumbnail",
                 "new_version", "base_model_relation")
#: fields that hold a string or a list of strings
STRINGS_FIELDS = ("language", "datasets", "metrics", "base_model")
BASE_MODEL_RELATIONS = ("adapter", "merge", "quantized", "finetune")
#: a model id as ``base_model`` names it: ``name`` or ``namespace/name`` (huggingface_hub's rules)
_MODEL_ID = re.compile(r"(?:[A-Za-z0-9_](?:[\w.-]{0,94}[A-Za-z0-9_])?/)?[A-Za-z0-9_](?:[\w.-]{0,94}[A-Za-z0-9_])?",
                       re.ASCII)
#: most problems one answer lists
MAX_PROBLEMS = 20


def card_problems(card: dict[str, Any]) -> list[str]:
    """What is wrong with a model card's metadata by the Hub's rules, in the Hub's (Joi) wording:
    ``"license" must be a string``, ``"tags" must be an array``, ``"model-index[0].name" is
    required``, … (empty when nothing is). A field left empty (YAML null) counts as unset."""
    problems: list[str] = []
    for key in STRING_FIELDS:
        if card.get(key) is not None and not isinstance(card[key], str):
            problems.append(f'"{key}" must be a string')
    relation = card.get("base_model_relation")
    if isinstance(relation, str) and relation not in BASE_MODEL_RELATIONS:
        problems.append(f'"base_model_relation" must be one of [{", ".join(BASE_MODEL_RELATIONS)}]')
    for key in STRINGS_FIELDS:
        value = card.get(key)
        if value is None or isinstance(value, str):
            continue
        if not isinstance(value, list):
            problems.append(f'"{key}" must be one of [string, array]')
        else:
            problems += [f'"{key}[{i}]" must be a string' for i, item in enumerate(value) if not isinstance(item, str)]
    base = card.get("base_model")
    for i, item in enumerate([base] if isinstance(base, str) else base if isinstance(base, list) else []):
        if isinstance(item, str) and (not _MODEL_ID.fullmatch(item) or ".." in item or "--" in item):
            where = "base_model" if isinstance(base, str) else f"base_model[{i}]"
            problems.append(f'"{where}" with value "{item[:200]}" is not valid: name a model on the Hub '
                            "(namespace/name), not a local path")
    tags = card.get("tags")
    if tags is not None:
        if not isinstance(tags, list):
            problems.append('"tags" must be an array')
        else:
            problems += [f'"tags[{i}]" must be a string' for i, tag in enumerate(tags) if not isinstance(tag, str)]
    if card.get("widget") is not None and not isinstance(card["widget"], list):
        problems.append('"widget" must be an array')
    if card.get("inference") is not None and not isinstance(card["inference"], (bool, dict)):
        problems.append('"inference" must be one of [boolean, object]')
    emissions = card.get("co2_eq_emissions")
    if emissions is not None and (isinstance(emissions, bool) or not isinstance(emissions, (int, float, dict))):
        problems.append('"co2_eq_emissions" must be one of [number, object]')
    if "model-index" in card:
        problems += _model_index_problems(card["model-index"])
    return problems[:MAX_PROBLEMS]


def _model_index_problems(index: Any) -> list[str]:
    """The model-index rules: models with a ``name`` and ``results``; each result a ``task``
    (with a ``type``), optionally a ``dataset`` (``type`` and ``name``), and ``metrics`` (each a
    ``type`` and a ``value``)."""
    if not isinstance(index, list):
        return ['"model-index" must be an array']
    problems: list[str] = []

    def need(obj: dict[str, Any], key: str, where: str, kind: type | None = str) -> Any:
        if obj.get(key) is None:
            problems.append(f'"{where}.{key}" is required')
        elif kind is not None and not isinstance(obj[key], kind):
            problems.append(f'"{where}.{key}" must be {"a string" if kind is str else "an array"}')
        return obj.get(key)

    for m, model in enumerate(index):
        where = f"model-index[{m}]"
        if not isinstance(model, dict):
            problems.append(f'"{where}" must be of type object')
            continue
        need(model, "name", where)
        results = need(model, "results", where, list)
        for r, result in enumerate(results if isinstance(results, list) else []):
            at = f"{where}.results[{r}]"
            if not isinstance(result, dict):
                problems.append(f'"{at}" must be of type object')
                continue
            for key, fields in (("task", ("type",)), ("dataset", ("type", "name"))):
                part = result.get(key)
                if part is None and key == "task":
                    problems.append(f'"{at}.task" is required')
                elif part is not None and not isinstance(part, dict):
                    problems.append(f'"{at}.{key}" must be of type object')
                elif part is not None:
                    for field in fields:
                        need(part, field, f"{at}.{key}")
            metrics = need(result, "metrics", at, list)
            for i, metric in enumerate(metrics if isinstance(metrics, list) else []):
                if not isinstance(metric, dict):
                    problems.append(f'"{at}.metrics[{i}]" must be of type object')
                    continue
                need(metric, "type", f"{at}.metrics[{i}]")
                need(metric, "value", f"{at}.metrics[{i}]", None)
    return problems


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
