"""The package manifest (``gptstore.json``) and its digest.

The manifest says what a model is and pins every byte it is made of. The **manifest digest** is
the sha256 of :func:`canonical_json` (sorted keys, no insignificant whitespace, UTF-8, fields that
are ``None`` left out); a signature over that digest covers the whole package.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ManifestError
from .refs import SEMVER, parse as parse_reference

SCHEMA_VERSION = 1
MANIFEST_FILE = "gptstore.json"
SIGNATURE_FILE = "gptstore.sig"
#: files that live beside the package's content but are not part of ``files``
METADATA_FILES = frozenset({MANIFEST_FILE, SIGNATURE_FILE})
_SPDX = re.compile(r"^[A-Za-z0-9.+-]+(?:\s+(?:AND|OR|WITH)\s+[A-Za-z0-9.+-]+)*$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Provider(_Model):
    name: str = Field(min_length=1, description="Who publishes the model (person or organisation).")
    url: str | None = Field(None, description="Home page of the provider.")
    contact: str | None = Field(None, description="E-mail or other contact for questions and reports.")


class BaseModelRef(_Model):
    reference: str = Field(description="Reference of the base model, namespace/name[:tag].")
    digest: str = Field(description="Manifest digest of the base model (64 hex).")

    @field_validator("reference")
    @classmethod
    def _ref(cls, value: str) -> str:
        parse_reference(value)
        return value

    @field_validator("digest")
    @classmethod
    def _digest(cls, value: str) -> str:
        value = value.removeprefix("sha256:")
        if not _HEX64.match(value):
            raise ValueError("must be 64 lowercase hex characters")
        return value


class Format(_Model):
    adapter: str = Field(description="The package format (adapter) that packaged it, e.g. 'transformers'.")
    architecture: str = Field(description="Model architecture, e.g. 'GPT2LMHeadModel'.")
    parameters: int = Field(ge=0, description="Number of parameters, read from the weight headers.")
    context_length: int = Field(ge=1, description="Maximum tokens of context the model was built for.")
    dtype: str = Field(description="Storage dtype of the weights, e.g. 'float32', 'bfloat16'.")
    base: BaseModelRef | None = Field(None, description="The base model, when this package is an adapter over it.")


Strategy = Literal["greedy", "beam", "sample"]


class GenerationDefaults(_Model):
    """Defaults the provider recommends; a call's own params win over these."""

    strategy: Strategy | None = Field(None, description="Decoding strategy: greedy, beam or sample.")
    max_new_tokens: int | None = Field(None, ge=1, le=1_000_000, description="Tokens to generate at most.")
    temperature: float | None = Field(None, gt=0, description="Sampling temperature (> 0).")
    top_k: int | None = Field(None, ge=0, description="Sample among the k most likely tokens (0 = all).")
    top_p: float | None = Field(None, gt=0, le=1, description="Nucleus sampling mass (0 < p <= 1).")
    num_beams: int | None = Field(None, ge=1, description="Beams for beam search.")
    repetition_penalty: float | None = Field(None, gt=0, description="Penalty for repeated tokens (1 = none).")
    stop: list[str] | None = Field(None, description="Strings that end the generation; cut from the output.")


class Metric(_Model):
    name: str = Field(description="Metric name, e.g. 'perplexity' or 'loss'.")
    value: float = Field(description="Measured value.")
    dataset: str | None = Field(None, description="Name or path of the evaluation data.")
    dataset_sha256: str | None = Field(None, description="sha256 of the evaluation data file.")
    split: str | None = Field(None, description="Which part of the data, e.g. 'held-out'.")


class DatasetRecord(_Model):
    name: str = Field(description="Name or path of a training data file.")
    sha256: str = Field(description="sha256 of the data file.")
    size: int | None = Field(None, ge=0, description="Size in bytes.")


class Provenance(_Model):
    base_digest: str | None = Field(None, description="Manifest digest of the model it was fine-tuned from.")
    base_reference: str | None = Field(None, description="Reference or path of the base model.")
    datasets: list[DatasetRecord] = Field(default_factory=list, description="Training data files.")
    hyperparameters: dict[str, Any] = Field(default_factory=dict, description="Training hyper-parameters.")
    frameworks: dict[str, str] = Field(default_factory=dict, description="Library versions used to train.")


class Pricing(_Model):
    model: Literal["free", "per_1k_tokens", "flat"] = Field("free", description="How use is priced.")
    amount: float = Field(0.0, ge=0, description="Price per 1k tokens, or the flat price.")
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 currency code.")

    @model_validator(mode="after")
    def _consistent(self) -> Pricing:
        if self.model == "free" and self.amount:
            raise ValueError("a free model cannot have a non-zero amount")
        return self


class FileEntry(_Model):
    path: str = Field(description="POSIX path relative to the package root.")
    size: int = Field(ge=0, description="Size in bytes.")
    sha256: str = Field(description="sha256 of the content (64 lowercase hex).")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        parts = value.split("/")
        if (not value or value.startswith("/") or "\\" in value
                or any(p in ("", ".", "..") for p in parts) or parts[0] in (".git",)):
            raise ValueError("must be a relative POSIX path without '.', '..' or empty segments")
        if value in METADATA_FILES:
            raise ValueError(f"{value} is package metadata and cannot be listed as a file")
        return value

    @field_validator("sha256")
    @classmethod
    def _sha(cls, value: str) -> str:
        if not _HEX64.match(value):
            raise ValueError("must be 64 lowercase hex characters")
        return value


class Manifest(_Model):
    schema_version: Literal[1] = Field(SCHEMA_VERSION, description="Version of this manifest schema.")
    # identity
    namespace: str = Field(description="Owner of the model (user or organisation).")
    name: str = Field(description="Model name within the namespace.")
    version: str = Field(description="Semantic version of this release, e.g. '1.2.0'.")
    description: str = Field("", max_length=2000, description="One paragraph on what the model does.")
    provider: Provider | None = Field(None, description="Who publishes it.")
    license: str = Field("other", description="SPDX license identifier or expression, e.g. 'apache-2.0'.")
    tags: list[str] = Field(default_factory=list, description="Search tags.")
    languages: list[str] = Field(default_factory=list, description="Languages (ISO 639-1), e.g. ['en'].")
    task: Literal["text-generation"] = Field("text-generation", description="What the model does.")
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc).replace(microsecond=0),
                                 description="When the package was made (UTC).")
    # format
    format: Format = Field(description="What the files are and how to load them.")
    # behaviour
    generation: GenerationDefaults = Field(default_factory=GenerationDefaults,
                                           description="Recommended generation defaults.")
    prompt_template: str | None = Field(None, description="Template applied to prompts; must contain '{prompt}'.")
    # evidence
    metrics: list[Metric] = Field(default_factory=list, description="Measured quality (e.g. perplexity).")
    provenance: Provenance | None = Field(None, description="How the model was trained.")
    # commerce
    pricing: Pricing = Field(default_factory=Pricing, description="Price of use.")
    terms: str | None = Field(None, description="Usage terms beyond the license.")
    # content
    files: list[FileEntry] = Field(description="Every file of the package; nothing else is part of it.")

    @field_validator("namespace", "name")
    @classmethod
    def _segment(cls, value: str, info) -> str:
        parse_reference(f"{value}/x" if info.field_name == "namespace" else f"x/{value}")
        return value

    @field_validator("version")
    @classmethod
    def _semver(cls, value: str) -> str:
        if not SEMVER.match(value):
            raise ValueError("must be a semantic version like 1.2.0")
        return value

    @field_validator("license")
    @classmethod
    def _license(cls, value: str) -> str:
        if not _SPDX.match(value):
            raise ValueError("must be an SPDX identifier or expression, e.g. 'mit' or 'apache-2.0'")
        return value

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)

    @field_validator("prompt_template")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None and "{prompt}" not in value:
            raise ValueError("must contain the placeholder {prompt}")
        return value

    @model_validator(mode="after")
    def _unique_files(self) -> Manifest:
        seen: set[str] = set()
        for entry in self.files:
            if entry.path in seen:
                raise ValueError(f"file {entry.path} is listed twice")
            seen.add(entry.path)
        return self

    # -- derived ---------------------------------------------------------------------------
    @property
    def repo_id(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    def file(self, path: str) -> FileEntry | None:
        return next((f for f in self.files if f.path == path), None)

    def canonical_json(self) -> bytes:
        return canonical_json(self.model_dump(mode="json", exclude_none=True))

    @property
    def digest(self) -> str:
        """sha256 hex of the canonical JSON."""
        return hashlib.sha256(self.canonical_json()).hexdigest()

    def render(self, prompt: str) -> str:
        """Apply the prompt template (if any) to a prompt."""
        if not self.prompt_template:
            return prompt
        return self.prompt_template.replace("{prompt}", prompt)


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _describe(error: ValidationError) -> tuple[str, str, object]:
    first = error.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "(root)"
    value = first.get("input")
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    message = first["msg"].removeprefix("Value error, ")
    more = len(error.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return field, f"{field}: {message} (got {shown}){suffix}", value


def validate(data: Any, *, source: str = "manifest") -> Manifest:
    """Validate a dict as a :class:`Manifest`, raising :class:`ManifestError` naming the field."""
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        field, text, value = _describe(exc)
        raise ManifestError(f"invalid {source}: {text}", path=source, field=field, value=value,
                            hint="fix the field and try again (`gptstore manifest schema` shows every field)")


def parse_bytes(data: bytes, *, source: str = "manifest") -> Manifest:
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"invalid {source}: not JSON ({exc})", path=source,
                            hint="the manifest must be a JSON object")
    if not isinstance(obj, dict):
        raise ManifestError(f"invalid {source}: expected a JSON object", path=source)
    return validate(obj, source=source)


def load(path: Path | str) -> Manifest:
    """Read a manifest file, or a package directory's ``gptstore.json``."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ManifestError(f"no manifest at {path}", path=path,
                            hint="run `gptstore package DIR --name ns/name --version X.Y.Z` first") from None
    return parse_bytes(data, source=str(path))


def dumps(manifest: Manifest) -> bytes:
    """Human-friendly JSON (indented, sorted) with the same digest as the canonical form."""
    data = manifest.model_dump(mode="json", exclude_none=True)
    return (json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def save(manifest: Manifest, path: Path | str) -> Path:
    """Write atomically to ``path`` (a file, or a directory that gets ``gptstore.json``)."""
    from .fsutil import atomic_write

    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_FILE
    atomic_write(path, dumps(manifest))
    return path


def json_schema() -> dict[str, Any]:
    return Manifest.model_json_schema()
