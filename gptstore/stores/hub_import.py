"""Import a plain Hub repo (no ``gptstore.json``, e.g. ``openai-community/gpt2``) as an unsigned package.

:meth:`HubStore.locate <gptstore.stores.hub.HubStore.locate>` calls :func:`import_located` when
the commit it resolved holds no manifest. The client then builds the manifest itself, so the rest
of a pull (safety, authenticity, parallel verified downloads, the library) is the same as for a
published package:

- only what the transformers adapter needs is picked (:func:`wanted`): ``config.json``,
  ``generation_config.json``, tokenizer files, ``*.safetensors`` and their index, at the repo's
  root; never code. A config (or tokenizer config) with ``auto_map`` (remote code) is refused
  before any weight is read, ``--allow-unsafe`` or not. A repo with pickle weights and no
  safetensors is refused unless ``allow_unsafe``: then its ``pytorch_model*.bin`` weights (and
  their index) are taken instead (:func:`wanted_pickle`), and the safety layer reports them as
  allowed-unsafe, as for a package with pickle weights;
- each file is pinned by sha256: an LFS file by the ``lfs.sha256`` the store announces (checked
  again while it streams into the library), any other file by hashing it here, its length checked
  against the size the store announced;
- the format part comes from the transformers adapter's own inspection, run over the config, the
  index and the safetensors *headers* (read with range requests, bounded); for pickle weights
  (never opened for that) the parameters are counted on a model built from the config alone
  (:func:`~gptstore.adapters.transformers.parameters_from_config`);
- the version is ``0.0.0+<commit[:12]>`` (semver build metadata), ``created_at`` a fixed instant,
  so the same commit always gives the same manifest digest; ``provenance.imported_from`` records
  ``<store>/<repo>@<commit>``, which authenticity reports (:mod:`gptstore.trust`).

Everything the store sends stays hostile: the listing is size-capped and validated (paths through
:class:`~gptstore.manifest.FileEntry`, digests 64 hex, sizes integers), every read bounded.
"""

from __future__ import annotations

import hashlib
import re
import struct
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..errors import GPTStoreError, ManifestError, PackageError, StoreError, UnsafeContentError
from ..safety import CODE_SUFFIXES, MAX_CONFIG_BYTES, PICKLE_SUFFIXES, check_safety, parse_model_config
from .base import Located
from ..blobs import is_sha256
from .bounded_http import check_commit_id, one_line

if TYPE_CHECKING:
    from ..manifest import FileEntry
    from ..refs import Reference
    from .hub import HubStore

CONFIGS = frozenset({"config.json", "generation_config.json"})
TOKENIZER_FILES = frozenset({
    "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json",
    "added_tokens.json", "vocab.txt", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model",
    "chat_template.jinja", "chat_template.json"})
INDEX_FILE = "model.safetensors.index.json"
PICKLE_INDEX_FILE = "pytorch_model.bin.index.json"
_PICKLE_WEIGHTS = re.compile(r"pytorch_model(-\d{1,6}-of-\d{1,6})?\.bin")
#: a file that is not in LFS is hashed here, in memory: at most this large
MAX_INLINE_BYTES = 64 * 1024 * 1024
#: the largest safetensors header read to count parameters
MAX_HEADER_BYTES = 16 * 1024 * 1024
#: entries of a repo listing read at most
MAX_LISTING = 10_000
#: an imported manifest's creation time: fixed, so that one commit gives one digest
IMPORTED_AT = datetime(1970, 1, 1, tzinfo=timezone.utc)


def wanted(path: str) -> bool:
    """Whether an import takes a repo file: configs, tokenizer files, safetensors weights and index."""
    return "/" not in path and (path in CONFIGS or path in TOKENIZER_FILES or path == INDEX_FILE
                                or path.endswith(".safetensors"))


def wanted_pickle(path: str) -> bool:
    """Whether an ``--allow-unsafe`` import of a pickle-only repo takes a file: its weights and index."""
    return path == PICKLE_INDEX_FILE or _PICKLE_WEIGHTS.fullmatch(path) is not None


def import_version(commit: str) -> str:
    """The version of an imported commit: ``0.0.0+<first 12 hex>`` (semver build metadata)."""
    return f"0.0.0+{commit[:12]}"


def source_of(store: HubStore, repo_id: str, commit: str) -> str:
    """``<store>/<repo>@<commit>``, as provenance records it (``hf://openai-community/gpt2@…``)."""
    return f"{store.url.rstrip('/')}/{repo_id}@{commit}" if store.url != "hf://" else f"hf://{repo_id}@{commit}"


def import_located(store: HubStore, ref: Reference, commit: str, *, allow_unsafe: bool = False) -> Located:
    """A :class:`Located` for a plain repo at ``commit``, its manifest built here (see the module).

    ``allow_unsafe`` takes a pickle-only repo's ``pytorch_model*.bin`` weights instead of refusing it.
    """
    try:
        return _import(store, ref, check_commit_id(commit, where=store.url), allow_unsafe=allow_unsafe)
    except GPTStoreError:
        raise
    except Exception as exc:
        raise store._fail(exc, f"importing {ref.repo_id}") from exc


def _listing(store: HubStore, repo_id: str, commit: str) -> dict[str, dict[str, Any]]:
    """``{path: sibling}`` of the commit (``blobs=true``: size and LFS sha256), validated."""
    url = f"{store.endpoint}/api/models/{quote(repo_id, safe='/')}/revision/{commit}"
    info, _ = store.http.get_json(url, what=f"the file list of {repo_id}", params=[("blobs", "true")])
    siblings = info.get("siblings") if isinstance(info, dict) else None
    if not isinstance(siblings, list) or len(siblings) > MAX_LISTING:
        raise StoreError(f"{store.url} sent no usable file list for {repo_id}", hint="the store is broken or hostile")
    files: dict[str, dict[str, Any]] = {}
    for item in siblings:
        name = item.get("rfilename") if isinstance(item, dict) else None
        if isinstance(name, str) and len(name) <= 1024:
            files[name] = item
    return files


def _size(item: dict[str, Any], path: str, where: str) -> int:
    size = item.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise StoreError(f"{where} announced no valid size for {one_line(path, 100)}",
                         hint="the store is broken or hostile")
    return size


def _lfs_sha256(item: dict[str, Any], size: int, path: str, where: str) -> str | None:
    lfs = item.get("lfs")
    if lfs is None:
        return None
    sha = lfs.get("sha256", lfs.get("oid")) if isinstance(lfs, dict) else None
    if not is_sha256(sha) or lfs.get("size", size) != size:
        raise StoreError(f"{where} announced a malformed LFS entry for {one_line(path, 100)}",
                         hint="the store is broken or hostile")
    return sha


def _checked_path(path: str, repo: str, where: str) -> None:
    from ..manifest import FileEntry

    try:
        FileEntry(path=path, size=0, sha256="0" * 64)
    except ValueError:
        raise StoreError(f"{where} listed an invalid file name {one_line(path, 100)!r} in {repo}",
                         hint="the store is broken or hostile") from None


def _refuse_unsafe(repo: str, where: str, files: dict[str, dict[str, Any]], *, allow_unsafe: bool) -> bool:
    """Refuse what cannot be imported; True when the weights to take are pickle (``allow_unsafe`` only)."""
    paths = list(files)
    if not any(p.endswith(".safetensors") and "/" not in p for p in paths):
        pickles = [p for p in paths if Path(p).suffix.lower() in PICKLE_SUFFIXES]
        if pickles and not allow_unsafe:
            raise UnsafeContentError(
                f"{repo} on {where} has only pickle weights ({', '.join(sorted(pickles)[:3])}), no safetensors; "
                "pickle can run code when loaded", path=pickles[0],
                hint="pass --allow-unsafe (allow_unsafe=True) to import them if you trust the source, "
                     "or ask the publisher for safetensors weights")
        if any(wanted_pickle(p) for p in pickles):
            if "config.json" not in files:
                raise PackageError(f"{repo} on {where} has no gptstore.json and no config.json",
                                   hint="it is not a transformers model gptstore can import")
            return True
        raise PackageError(f"{repo} on {where} has no gptstore.json and no safetensors weights to import",
                           hint="it is not a model gptstore can run; check the name")
    if "config.json" not in files:
        raise PackageError(f"{repo} on {where} has no gptstore.json and no config.json",
                           hint="it is not a transformers model gptstore can import")
    return False


def _import(store: HubStore, ref: Reference, commit: str, *, allow_unsafe: bool) -> Located:
    from ..adapters.transformers import TransformersAdapter, parameters_from_config
    from ..manifest import FileEntry, Manifest, Provenance

    repo = ref.repo_id
    where = store.url
    files = _listing(store, repo, commit)
    pickled = _refuse_unsafe(repo, where, files, allow_unsafe=allow_unsafe)
    entries: list[FileEntry] = []
    inline: dict[str, bytes] = {}
    lfs_weights: list[str] = []
    for path in sorted(p for p in files if wanted(p) or (pickled and wanted_pickle(p))):
        item = files[path]
        size = _size(item, path, where)
        _checked_path(path, repo, where)  # before the name goes into any URL or temporary file
        sha = _lfs_sha256(item, size, path, where)
        if sha is None:  # small file in git: hash it here, checked against the size announced
            limit = MAX_CONFIG_BYTES if path in CONFIGS else MAX_INLINE_BYTES
            if size > limit:
                raise StoreError(f"{path} of {repo} on {where} is {size} bytes, more than {limit} for a file "
                                 "outside LFS; refusing it", hint="the store is broken or hostile")
            data = store.read_file(repo, path, commit, limit=limit)
            if data is None or len(data) != size:
                raise StoreError(f"{where} announced {size} bytes for {path} of {repo} and sent "
                                 f"{'none' if data is None else len(data)}", hint="the store is broken or hostile")
            inline[path] = data
            sha = hashlib.sha256(data).hexdigest()
        elif path.endswith(".safetensors"):
            lfs_weights.append(path)
        entries.append(FileEntry(path=path, size=size, sha256=sha))
    for name in ("config.json", "tokenizer_config.json"):  # remote code, before any weight
        if name in inline:
            config = parse_model_config(inline[name])
            if name == "config.json" and config is None:
                raise PackageError(f"config.json of {repo} on {where} is not a JSON object")
            check_safety([e.path for e in entries], allow_unsafe=allow_unsafe, config=config,
                         where=f"{repo} on {where}")
    if "config.json" not in inline:
        raise StoreError(f"{where} keeps config.json of {repo} in LFS; refusing to import it",
                         hint="the store is broken or hostile")
    with tempfile.TemporaryDirectory(prefix="gptstore-import-") as tmp:
        root = Path(tmp)
        for path, data in inline.items():
            if path in CONFIGS or path == INDEX_FILE or path.endswith(".safetensors"):
                (root / path).write_bytes(data)
        for path in lfs_weights:
            (root / path).write_bytes(_safetensors_header(store, repo, path, commit))
        try:
            fmt = TransformersAdapter().inspect(root, allow_unsafe=pickled)
            if pickled:  # no safetensors header to count: the model built from config.json alone
                fmt["parameters"], fmt["dtype"] = parameters_from_config(parse_model_config(inline["config.json"]))
        except PackageError as exc:
            raise PackageError(f"{repo} on {where} cannot be imported: {exc.message}", hint=exc.hint) from None
    source = source_of(store, repo, commit)
    try:
        manifest = Manifest(
            namespace=ref.namespace, name=ref.name, version=import_version(commit),
            description=f"Imported from {source} (no gptstore.json: unsigned)", created_at=IMPORTED_AT,
            tags=["imported"], format=fmt, provenance=Provenance(imported_from=source), files=entries)
    except ValueError as exc:
        raise ManifestError(f"{repo} on {where} cannot be imported: {one_line(str(exc), 300)}") from None
    return Located(ref, manifest, manifest.digest, None, commit)


def _safetensors_header(store: HubStore, repo: str, path: str, commit: str) -> bytes:
    """The first 8 bytes and the JSON header of a safetensors file, by range requests (bounded)."""
    url = store._file_url(repo, path, commit)
    what = f"the header of {path} of {repo}"
    head = _range(store, url, 0, 8, what)
    (length,) = struct.unpack("<Q", head)
    if length > MAX_HEADER_BYTES:
        raise PackageError(f"{path} of {repo} announces a {length}-byte safetensors header; refusing it",
                           hint="the file is broken or hostile")
    return head + _range(store, url, 8, length, what)


def _range(store: HubStore, url: str, start: int, count: int, what: str) -> bytes:
    """``count`` bytes from ``start`` (a server ignoring Range sends the file: read only what is needed)."""
    headers = {"Range": f"bytes={start}-{start + count - 1}"}
    with store.http.open(url, what=what, headers=headers) as response:
        skip = 0 if response.status_code == 206 else start
        data = store.http._read(response, skip + count, what, truncate=True)[skip:]
    if len(data) != count:
        raise StoreError(f"{store.url} sent {len(data)} of the {count} bytes of {what}",
                         hint="the store is broken or hostile")
    return data
