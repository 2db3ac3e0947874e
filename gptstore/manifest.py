"""The package manifest (``gptstore.json``) and its digest.

The manifest says what a model is and pins every byte it is made of. The **manifest digest** is
the sha256 of :func:`canonical_json` (sorted keys, no insignificant whitespace, UTF-8, fields that
are ``None`` left out); a signature over that digest covers the whole package.

A manifest comes from strangers (a store, a lock file, a downloaded package), so reading one is
*total*: :func:`parse_bytes` and :func:`validate` either return a :class:`Manifest` whose
:meth:`~Manifest.canonical_json` works and parses back to the same digest, or raise
:class:`ManifestError` with one printable line; never another exception. The limits that make this
so (size, nesting, integer range, string lengths, file count, path lengths) are the ``MAX_*``
constants below; ``docs/security.md`` lists them.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from . import strictjson
from .errors import ManifestError, UsageError
from .refs import is_digest, is_semver, parse_reference, segment_problem
from .strictjson import CONTROL as _CONTROL, NOT_ONE_LINE as _NOT_ONE_LINE, JSONRefused
from .strictjson import MAX_DEPTH  # noqa: F401  (re-exported: part of the manifest's limits)

#: the schema this gptstore writes; 2 added ``use_cases`` and ``category``. Every version in
#: :data:`READABLE_SCHEMAS` is read, and a version-1 manifest keeps its digest (and so its
#: signatures): the new fields are left out of the canonical JSON when they are not set.
SCHEMA_VERSION = 2
READABLE_SCHEMAS = (1, 2)
#: the catalogue's closed list of categories (``package --category``; the store filters on it;
#: docs/catalogue.md describes each); the domain categories (legal … science, education) are for
#: models made for one field whatever they do in it
CATEGORIES = ("chat", "code", "writing", "summarization", "translation", "classification",
              "legal", "medical", "finance", "science", "education", "other")
#: most use cases one manifest lists, and the longest one (characters)
MAX_USE_CASES = 16
MAX_USE_CASE_CHARS = 80
MANIFEST_FILE = "gptstore.json"
SIGNATURE_FILE = "gptstore.sig"
#: the OpenSSF model-signing (OMS v1.0) signature, a Sigstore bundle (:mod:`gptstore.oms`)
OMS_SIGNATURE_FILE = "model.sig"
#: files that live beside the package's content but are not part of ``files``
METADATA_FILES = frozenset({MANIFEST_FILE, SIGNATURE_FILE, OMS_SIGNATURE_FILE})

#: the largest manifest read, and the largest :func:`validate` lets through (as :func:`dumps` writes it)
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
# MAX_DEPTH (32, from strictjson): the schema itself nests 4 deep; hyper-parameters get the rest
#: sizes and counts: the largest integer a JSON double holds exactly (8 PiB)
MAX_SIZE = 2**53 - 1
MAX_FILES = 10_000
MAX_PATH_BYTES = 1024  # UTF-8 bytes of a file's path in the package
MAX_SEGMENT_BYTES = 255  # UTF-8 bytes of one path segment: what common file systems allow

_SPDX = re.compile(r"\A[A-Za-z0-9.+-]+(?:\s+(?:AND|OR|WITH)\s+[A-Za-z0-9.+-]+)*\Z")
_HINT = "fix the field and try again (`gptstore manifest schema` shows every field)"


# -- string rules ---------------------------------------------------------------------------
def _text(value: str) -> str:
    """Free text: any printable character, newlines and tabs; no controls that move a terminal."""
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters or lone surrogates")
    return value


def _one_line(value: str) -> str:
    """A name-like value: one line, no surrounding whitespace, no bidi overrides."""
    _text(value)
    if _NOT_ONE_LINE.search(value):
        raise ValueError("must be one line without tabs, line breaks or bidi controls")
    if value != value.strip():
        raise ValueError("must not start or end with whitespace")
    return value


def _hex64(value: str) -> str:
    if not is_digest(value):
        raise ValueError("must be 64 lowercase hex characters")
    return value


Text = Annotated[str, AfterValidator(_text)]
Line = Annotated[str, AfterValidator(_one_line)]
Short = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_one_line)]
Hex64 = Annotated[str, AfterValidator(_hex64)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False,
                              str_max_length=100_000)


class Provider(_Model):
    name: Line = Field(min_length=1, max_length=256, description="Who publishes the model (person or organisation).")
    url: Line | None = Field(None, max_length=2048, description="Home page of the provider.")
    contact: Line | None = Field(None, max_length=256, description="E-mail or other contact for questions and reports.")


class BaseModelRef(_Model):
    reference: Line = Field(max_length=512, description="Reference of the base model, namespace/name[:tag].")
    digest: str = Field(max_length=71, description="Manifest digest of the base model (64 hex).")

    @field_validator("reference")
    @classmethod
    def _ref(cls, value: str) -> str:
        parse_reference(value)
        return value

    @field_validator("digest")
    @classmethod
    def _digest(cls, value: str) -> str:
        return _hex64(value.removeprefix("sha256:"))


class Format(_Model):
    adapter: Short = Field(description="The package format (adapter) that packaged it, e.g. 'transformers'.")
    architecture: Short = Field(description="Model architecture, e.g. 'GPT2LMHeadModel'.")
    parameters: int = Field(ge=0, le=MAX_SIZE, description="Number of parameters, read from the weight headers.")
    context_length: int = Field(ge=1, le=2**31 - 1, description="Maximum tokens of context the model was built for.")
    dtype: Short = Field(description="Storage dtype of the weights, e.g. 'float32', 'bfloat16'.")
    base: BaseModelRef | None = Field(None, description="The base model, when this package is an adapter over it.")


#: a decoding strategy: what a manifest's generation defaults and a call's params may name
Strategy = Literal["greedy", "beam", "sample"]


class GenerationDefaults(_Model):
    """Defaults the provider recommends; a call's own params win over these."""

    strategy: Strategy | None = Field(None, description="Decoding strategy: greedy, beam or sample.")
    max_new_tokens: int | None = Field(None, ge=1, le=1_000_000, description="Tokens to generate at most.")
    temperature: float | None = Field(None, gt=0, description="Sampling temperature (> 0).")
    top_k: int | None = Field(None, ge=0, le=2**31 - 1, description="Sample among the k most likely tokens (0 = all).")
    top_p: float | None = Field(None, gt=0, le=1, description="Nucleus sampling mass (0 < p <= 1).")
    num_beams: int | None = Field(None, ge=1, le=1024, description="Beams for beam search.")
    repetition_penalty: float | None = Field(None, gt=0, description="Penalty for repeated tokens (1 = none).")
    stop: list[Annotated[Text, Field(min_length=1, max_length=256)]] | None = Field(
        None, max_length=64, description="Strings that end the generation; cut from the output.")


class Metric(_Model):
    name: Short = Field(description="Metric name, e.g. 'perplexity' or 'loss'.")
    value: float = Field(description="Measured value.")
    dataset: Line | None = Field(None, max_length=4096, description="Name or path of the evaluation data.")
    dataset_sha256: Hex64 | None = Field(None, description="sha256 of the evaluation data file.")
    split: Short | None = Field(None, description="Which part of the data, e.g. 'held-out'.")
    # lm-evaluation-harness claims (``gptstore eval --tasks``): None when unset, so manifests
    # without them keep their canonical JSON (and digest). gptstore.evaluation.claim_status reads them.
    task: Short | None = Field(None, description="lm-evaluation-harness task the value was measured on.")
    task_version: Short | None = Field(None, description="The task's version (its YAML's metadata.version).")
    task_hash: Hex64 | None = Field(None, description="The harness's task hash: sha256 over every evaluated "
                                    "document, prompt and target (as lm-eval's task_hashes).")
    num_fewshot: int | None = Field(None, ge=0, le=1024, description="Few-shot examples per prompt.")
    limit: int | None = Field(None, ge=1, le=2**31 - 1, description="Documents evaluated (the harness's --limit).")
    seed: int | None = Field(None, ge=0, lt=2**63, description="Random seed of the evaluation (few-shot sampling).")
    harness: Short | None = Field(None, description="What measured it, e.g. 'lm-eval 0.4.13'.")


class DatasetRecord(_Model):
    name: Line = Field(max_length=4096, description="Name or path of a training data file.")
    sha256: Hex64 = Field(description="sha256 of the data file.")
    size: int | None = Field(None, ge=0, le=MAX_SIZE, description="Size in bytes.")


class Provenance(_Model):
    base_digest: Line | None = Field(None, max_length=128,
                                     description="Manifest digest of the model it was fine-tuned from.")
    base_reference: Line | None = Field(None, max_length=4096, description="Reference or path of the base model.")
    datasets: list[DatasetRecord] = Field(default_factory=list, max_length=MAX_FILES,
                                          description="Training data files.")
    hyperparameters: dict[str, Any] = Field(default_factory=dict, description="Training hyper-parameters.")
    frameworks: dict[Short, Short] = Field(default_factory=dict, max_length=256,
                                           description="Library versions used to train.")
    imported_from: Line | None = Field(None, max_length=4096,
                                       description="For a package imported from a plain Hub repo (no gptstore.json): "
                                                   "the store, repo and commit, '<store>/<repo>@<commit>'.")

    @field_validator("hyperparameters")
    @classmethod
    def _plain_json(cls, value: dict[str, Any]) -> dict[str, Any]:
        problem = strictjson.problem(value, json_only=True, depth=2)
        if problem:
            raise ValueError(f"{problem[0]}: {problem[1]}" if problem[0] else problem[1])
        return value


# Pricing is the one place that knows the pricing defaults, how a price prints and what a use
# costs: search hits, `gptstore show`, model cards and `gptstore usage` all go through label() and
# cost(). (The class docstring is the JSON Schema's description, so it speaks to providers.)
class Pricing(_Model):
    """What using the model costs."""

    model: Literal["free", "per_1k_tokens", "flat"] = Field("free", description="How use is priced.")
    amount: float = Field(0.0, ge=0, description="Price per 1k tokens, or the flat price.")
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 currency code.")

    #: the pricing model meant when a provider gives an amount or a currency but no model
    DEFAULT_PAID_MODEL: ClassVar[str] = "per_1k_tokens"

    @model_validator(mode="after")
    def _consistent(self) -> Pricing:
        if self.model == "free" and self.amount:
            raise ValueError("a free model cannot have a non-zero amount")
        return self

    @classmethod
    def fields_from(cls, model: str | None = None, amount: float | None = None,
                    currency: str | None = None) -> dict[str, Any] | None:
        """A manifest's ``pricing`` fields from what a provider gave (``gptstore package
        --price-model/--price/--currency``): None when nothing was given; an amount or a currency
        without a model means :attr:`DEFAULT_PAID_MODEL`. They are validated with the rest of the
        manifest, so a mistake is reported as the manifest's (``pricing: a free model cannot …``);
        a paid model without an amount is refused here (UsageError), never priced at 0."""
        if model is None and amount is None and currency is None:
            return None
        paid = model or cls.DEFAULT_PAID_MODEL
        if paid != "free" and amount is None:  # else it would be priced at 0: a paid model for nothing
            given = f"--price-model {model}" if model else f"--currency {currency}"
            unit = "per 1k tokens" if paid == "per_1k_tokens" else "for the flat price"
            raise UsageError(f"{given} needs --price (the amount {unit})",
                             hint=f"e.g. --price-model {paid} --price 0.02, or --price-model free")
        given = {"model": paid, "amount": amount, "currency": currency}
        return {key: value for key, value in given.items() if value is not None}

    @classmethod
    def unchecked(cls, model: str, amount: float = 0.0, currency: str = "USD") -> Pricing:
        """A pricing from stored values (a usage-log row, a store's search JSON), not validated,
        for :meth:`label` and :meth:`cost` only: an unknown model prints and prices as free."""
        return cls.model_construct(model=model, amount=amount, currency=currency)

    def label(self) -> str:
        """``free``, ``0.5 EUR/1k tokens`` or ``10 USD flat``."""
        if self.model == "per_1k_tokens":
            return f"{self.amount:g} {self.currency}/1k tokens"
        if self.model == "flat":
            return f"{self.amount:g} {self.currency} flat"
        return "free"

    def cost(self, tokens: int) -> float:
        """What ``tokens`` (prompt + completion) cost; ``flat`` is charged once per model version,
        whatever the tokens."""
        if self.model == "per_1k_tokens":
            return self.amount * tokens / 1000
        if self.model == "flat":
            return self.amount
        return 0.0


class FileEntry(_Model):
    path: str = Field(max_length=MAX_PATH_BYTES, description="POSIX path relative to the package root.")
    size: int = Field(ge=0, le=MAX_SIZE, description="Size in bytes.")
    sha256: Hex64 = Field(description="sha256 of the content (64 lowercase hex).")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        parts = value.split("/")
        if (not value or value.startswith("/") or "\\" in value
                or any(p in ("", ".", "..") for p in parts)):
            raise ValueError("must be a relative POSIX path without '.', '..' or empty segments")
        _one_line(value)
        if any(p.casefold() == ".git" for p in parts):
            raise ValueError("must not contain a .git folder")
        if parts[0] in METADATA_FILES:
            raise ValueError(f"{parts[0]} is package metadata and cannot be listed as a file")
        if len(value.encode("utf-8")) > MAX_PATH_BYTES:
            raise ValueError(f"must be at most {MAX_PATH_BYTES} bytes long")
        if any(len(p.encode("utf-8")) > MAX_SEGMENT_BYTES for p in parts):
            raise ValueError(f"each part of the path must be at most {MAX_SEGMENT_BYTES} bytes long")
        return value


#: a category, from :data:`CATEGORIES` (a Literal so the JSON Schema lists them)
Category = Literal[CATEGORIES]  # type: ignore[valid-type]
UseCase = Annotated[str, Field(min_length=1, max_length=MAX_USE_CASE_CHARS), AfterValidator(_one_line)]


class Manifest(_Model):
    schema_version: Literal[1, 2] = Field(SCHEMA_VERSION, description="Version of this manifest schema "
                                          "(1 is still read; use_cases and category need 2).")
    # identity
    namespace: str = Field(description="Owner of the model (user or organisation).")
    name: str = Field(description="Model name within the namespace.")
    version: str = Field(max_length=128, description="Semantic version of this release, e.g. '1.2.0'.")
    description: Text = Field("", max_length=2000, description="One paragraph on what the model does.")
    provider: Provider | None = Field(None, description="Who publishes it.")
    license: str = Field("other", max_length=256,
                         description="SPDX license identifier or expression, e.g. 'apache-2.0'.")
    tags: list[Short] = Field(default_factory=list, max_length=64, description="Search tags.")
    languages: list[Annotated[Short, Field(max_length=35)]] = Field(
        default_factory=list, max_length=64, description="Languages (ISO 639-1), e.g. ['en'].")
    task: Literal["text-generation"] = Field("text-generation", description="What the model does.")
    # catalogue (schema 2): None when unset, so a version-1 manifest's canonical JSON is unchanged
    category: Category | None = Field(None, description="What kind of model it is, one of: "
                                      + ", ".join(CATEGORIES) + " (schema 2).")
    use_cases: list[UseCase] | None = Field(None, max_length=MAX_USE_CASES,
                                            description="Short phrases saying what it is for, e.g. "
                                                        "'customer-support replies' (schema 2).")
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc).replace(microsecond=0),
                                 description="When the package was made (UTC).")
    # format
    format: Format = Field(description="What the files are and how to load them.")
    # behaviour
    generation: GenerationDefaults = Field(default_factory=GenerationDefaults,
                                           description="Recommended generation defaults.")
    prompt_template: Text | None = Field(None, max_length=20_000,
                                         description="Template applied to prompts; must contain '{prompt}'.")
    # evidence
    metrics: list[Metric] = Field(default_factory=list, max_length=256,
                                  description="Measured quality (e.g. perplexity).")
    provenance: Provenance | None = Field(None, description="How the model was trained.")
    # commerce
    pricing: Pricing = Field(default_factory=Pricing, description="Price of use.")
    terms: Text | None = Field(None, max_length=20_000, description="Usage terms beyond the license.")
    # content
    files: list[FileEntry] = Field(max_length=MAX_FILES,
                                   description="Every file of the package; nothing else is part of it.")

    @field_validator("namespace", "name")
    @classmethod
    def _segment(cls, value: str, info) -> str:
        problem = segment_problem(value, info.field_name)
        if problem:
            raise ValueError(problem)
        if info.field_name == "name" and value.endswith(".git"):
            raise ValueError("the name may not end in .git")
        return value

    @field_validator("version")
    @classmethod
    def _semver(cls, value: str) -> str:
        if not is_semver(value):
            raise ValueError("must be a semantic version like 1.2.0")
        return value

    @field_validator("license")
    @classmethod
    def _license(cls, value: str) -> str:
        if not _SPDX.fullmatch(value):
            raise ValueError("must be an SPDX identifier or expression, e.g. 'mit' or 'apache-2.0'")
        return value

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        try:
            return value.astimezone(timezone.utc)
        except (OverflowError, ValueError):  # e.g. year 1 at +01:00 is before the first UTC instant
            raise ValueError("is out of range once converted to UTC") from None

    @field_validator("prompt_template")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None and "{prompt}" not in value:
            raise ValueError("must contain the placeholder {prompt}")
        return value

    @model_validator(mode="after")
    def _schema_fields(self) -> Manifest:
        if self.schema_version < 2 and (self.category is not None or self.use_cases is not None):
            raise ValueError("category and use_cases need schema_version 2 (package again with this gptstore)")
        if self.schema_version < 2 and any(m.task is not None or m.task_hash is not None for m in self.metrics):
            raise ValueError("harness metrics (task, task_hash) need schema_version 2 (package again with this "
                             "gptstore)")
        if self.use_cases is not None and len(set(self.use_cases)) != len(self.use_cases):
            raise ValueError("use_cases lists one phrase twice")
        return self

    @model_validator(mode="after")
    def _unique_files(self) -> Manifest:
        paths: set[str] = set()
        folders: set[str] = set()
        for entry in self.files:
            if entry.path in paths:
                raise ValueError(f"file {strictjson.printable(entry.path, 100)} is listed twice")
            paths.add(entry.path)
            parts = entry.path.split("/")
            folders.update("/".join(parts[:i]) for i in range(1, len(parts)))
        clash = min(paths & folders, default=None)
        if clash is not None:
            raise ValueError(f"{strictjson.printable(clash, 100)} is listed as a file and is also a folder "
                             "of other files")
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
    try:
        errors = error.errors(include_url=False)
        first = errors[0]
        field = strictjson.field_path(first["loc"])
        value = first.get("input")
        message = strictjson.printable(str(first["msg"]).removeprefix("Value error, "))
        more = len(errors) - 1
    except Exception:  # never let describing an error become a second error
        return "(root)", "does not validate", None
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return field, f"{field}: {message} (got {strictjson.shown(value)}){suffix}", value


def _source(source: object) -> str:
    return strictjson.printable(str(source), 200) if isinstance(source, (str, Path)) else "manifest"


def validate(data: Any, *, source: str = "manifest") -> Manifest:
    """Validate a dict as a :class:`Manifest`, raising :class:`ManifestError` naming the field.

    Total: whatever ``data`` holds, the answer is a manifest whose canonical JSON can be written
    and read back, or a :class:`ManifestError`.
    """
    where = _source(source)
    if not isinstance(data, dict):
        raise ManifestError(f"invalid {where}: expected a JSON object, got {type(data).__name__}",
                            path=source, hint="the manifest must be a JSON object")
    problem = strictjson.problem(data)
    if problem:
        raise ManifestError(f"invalid {where}: {problem[0]}: {problem[1]}", path=source, field=problem[0],
                            hint=_HINT)
    try:
        manifest = Manifest.model_validate(data)
        manifest.canonical_json()  # proves it serialises; the indented form below is the larger one
        size = len(dumps(manifest))  # what `save` and a push write must be readable again
    except ValidationError as exc:
        field, text, value = _describe(exc)
        raise ManifestError(f"invalid {where}: {text}", path=source, field=field, value=value,
                            hint=_HINT) from None
    except ManifestError:
        raise
    except Exception as exc:  # anything pydantic or json did not foresee still ends as a ManifestError
        raise ManifestError(f"invalid {where}: cannot be validated ({type(exc).__name__})", path=source,
                            hint=_HINT) from None
    if size > MAX_MANIFEST_BYTES:
        raise ManifestError(f"invalid {where}: its JSON is {size} bytes, more than the "
                            f"{MAX_MANIFEST_BYTES} a manifest may have", path=source,
                            hint="list fewer files or shorten the free-text fields")
    return manifest


def parse_bytes(data: bytes, *, source: str = "manifest") -> Manifest:
    """Parse and validate a manifest's JSON (UTF-8, at most :data:`MAX_MANIFEST_BYTES`).

    Stricter than :func:`json.loads` (see :mod:`gptstore.strictjson`): NaN, Infinity, numbers
    beyond 64 bits, duplicate keys, lone surrogates and nesting deeper than :data:`MAX_DEPTH` are
    refused, so whatever validates can be written back and read again.
    """
    where = _source(source)
    try:
        obj = strictjson.loads(data, max_bytes=MAX_MANIFEST_BYTES)
    except JSONRefused as exc:
        raise ManifestError(f"invalid {where}: {exc}", path=source, hint="the manifest must be a UTF-8 JSON "
                            f"object of at most {MAX_MANIFEST_BYTES} bytes") from None
    if not isinstance(obj, dict):
        raise ManifestError(f"invalid {where}: expected a JSON object, got {type(obj).__name__}", path=source,
                            hint="the manifest must be a JSON object")
    return validate(obj, source=source)


def load_manifest(path: Path | str) -> Manifest:
    """Read a manifest file, or a package directory's ``gptstore.json`` (at most 4 MiB)."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_FILE
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        raise ManifestError(f"no manifest at {strictjson.printable(str(path), 200)}", path=path,
                            hint="run `gptstore package DIR --name ns/name --version X.Y.Z` first") from None
    except (IsADirectoryError, PermissionError, OSError) as exc:
        raise ManifestError(f"cannot read manifest {strictjson.printable(str(path), 200)}: {exc.strerror or exc}",
                            path=path) from None
    return parse_bytes(data, source=str(path))


def dumps(manifest: Manifest) -> bytes:
    """Human-friendly JSON (indented, sorted) with the same digest as the canonical form."""
    data = manifest.model_dump(mode="json", exclude_none=True)
    return (json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
            + "\n").encode("utf-8")


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
