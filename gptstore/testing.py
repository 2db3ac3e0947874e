"""gptstore's pytest plugin (entry point ``pytest11``): fixtures for gptstore and its plugins.

Every test gets an isolated ``GPTSTORE_HOME`` under ``tmp_path`` and runs without the installed
entry-point plugins (``GPTSTORE_LOAD_PLUGINS=""`` while it runs), so an installed plugin (a guard
filtering every generation) cannot change what a test sees unless the test asks for it. Fixtures:

- ``gptstore_home`` — the isolated home (a :class:`pathlib.Path`; autouse);
- ``entry_point_plugins`` — opt in: load the installed entry-point plugins for this test (as
  ``GPTSTORE_LOAD_PLUGINS`` said when pytest started; unset = all); returns ``{plugin: distribution}``.
  A plugin's own suite opts in for every test from its conftest:
  ``pytestmark = pytest.mark.usefixtures("entry_point_plugins")`` in a module, or an autouse
  fixture that requests it;
- ``hf_home`` — an isolated Hugging Face home and cache (opt in);
- ``tiny_gpt_dir`` — a tiny GPT-2-shaped model directory, built once per test run (read-only);
- ``tiny_gpt`` — a fresh, writable copy of it for one test;
- ``register_plugin`` — ``register_plugin(obj, name=None)`` registers a throw-away plugin for
  the length of the test;
- ``run_cli`` — ``run_cli("list", "--json")`` runs the ``gptstore`` CLI in-process and returns
  the click ``Result``;
- ``store_server`` — a real ``gptstore server`` process on a free loopback port (one per test
  module), with users alice, bob, carol, an org acme (alice, carol) and tokens in
  ``store_server.tokens["alice:write"]`` etc.; see :class:`StoreServer`. Server test modules run
  once per backend pair of :data:`BACKENDS` (``sqlite+disk``, ``postgresql+s3``; the PostgreSQL
  and moto S3 servers behind them live in :mod:`gptstore.testing_backends`); a test of the disk
  store's internals calls ``store.require_disk(why)``, one that opens the SQLite file
  ``store.require_sqlite()``.

And :func:`tree_state` — ``{relative path: sha256}`` of a directory, to assert that a failed
operation left the library exactly as it was.
For a running store: :func:`publish_package` uploads a tiny gptstore package (manifest fields,
signature, card of your choice), :func:`register_key` registers a namespace's signing key and
:func:`signing_key` makes one.

Nothing heavy is imported until a fixture that needs it runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from .testing_backends import (  # noqa: F401  (re-exported: tests import them from here)
    _SHARED_SECRET,
    BACKENDS,
    PAIRS,
    Backend,
    KiB,
    PostgresServer,
    S3Endpoint,
    free_port,
    postgres_server,
    s3_blobs_options,
    s3_server,
    stop_process,
    start_s3,
)


def publish_copy(source: Path, target: Path, name: str, version: str = "1.0.0", *, base: Any = None) -> Any:
    """Copy a model directory to ``target``, package it as ``name:version`` (with a ``notes.txt``
    naming it, so every model has its own digest) and publish it to the library under
    ``GPTSTORE_HOME``. With ``base`` (a library model), the package is an adapter over it as the
    peft plugin writes one: ``format.base`` pins that base's reference and digest."""
    import shutil

    from .library import Library
    from .manifest import save, validate
    from .packaging import package

    shutil.copytree(source, target)
    (target / "notes.txt").write_text(f"{name} {version}")
    manifest = package(target, name=name, version=version)
    if base is not None:
        data = manifest.model_dump(exclude_none=True)
        data["format"]["base"] = {"reference": f"{base.reference.repo_id}:{base.manifest.version}",
                                  "digest": base.digest}
        save(validate(data), target)
    return Library().publish(target)


def tree_state(root: Path) -> dict[str, str]:
    """``{relative path: sha256 of content}`` of every file under ``root`` (lock files excluded)."""
    import hashlib

    root = Path(root)
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.suffix != ".lock"}


#: GPTSTORE_LOAD_PLUGINS as it was when pytest started (the autouse fixture pins it per test)
_SESSION_LOAD_PLUGINS = os.environ.get("GPTSTORE_LOAD_PLUGINS")


@pytest.fixture(autouse=True)
def gptstore_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated ``GPTSTORE_HOME`` for every test, and no entry-point plugins while it runs
    (``GPTSTORE_LOAD_PLUGINS=""``, restored afterwards; gptstore loads or unloads them to match on
    its next hook call). Only ``GPTSTORE_*`` variables are touched, so the test suites of other
    projects in the same environment are not affected."""
    home = tmp_path / "gptstore-home"
    monkeypatch.setenv("GPTSTORE_HOME", str(home))
    monkeypatch.setenv("GPTSTORE_LOAD_PLUGINS", "")
    monkeypatch.delenv("GPTSTORE_STORE", raising=False)
    monkeypatch.delenv("GPTSTORE_TOKEN", raising=False)
    monkeypatch.delenv("GPTSTORE_DEBUG", raising=False)
    return home


@pytest.fixture
def hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated Hugging Face home and cache, no telemetry. Opt in (e.g. autouse in your
    conftest) when tests use huggingface_hub directly; note that huggingface_hub reads
    ``HF_HUB_CACHE`` once, at import, so subprocesses see the new one and this process may not."""
    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    return home


@pytest.fixture(scope="session")
def tiny_gpt_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT-2 model directory (random init, BPE tokenizer on stdlib docstrings). Do not modify."""
    from .training.tiny import build_tiny_gpt

    return build_tiny_gpt(tmp_path_factory.mktemp("tiny-gpt") / "model", seed=0)


@pytest.fixture
def tiny_gpt(tiny_gpt_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the tiny model for one test."""
    target = tmp_path / "tiny-gpt"
    shutil.copytree(tiny_gpt_dir, target)
    return target


@pytest.fixture
def register_plugin() -> Any:
    """``register_plugin(obj, name=None)``: register a plugin until the test ends."""
    from . import plugins

    names: list[str] = []

    def register(obj: object, name: str | None = None) -> str:
        name = name or f"test-plugin-{len(names)}-{id(obj)}"
        plugins.register(obj, name=name)
        names.append(name)
        return name

    yield register
    for name in names:
        plugins.unregister(name)


@pytest.fixture
def entry_point_plugins(gptstore_home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Opt in to the installed entry-point plugins for this test: ``GPTSTORE_LOAD_PLUGINS`` goes
    back to what it was when pytest started (unset: every installed plugin) in this process and in
    the subprocesses the test starts. Returns ``{plugin name: distribution}`` of those loaded."""
    from . import plugins

    if _SESSION_LOAD_PLUGINS is None:
        monkeypatch.delenv("GPTSTORE_LOAD_PLUGINS", raising=False)
    else:
        monkeypatch.setenv("GPTSTORE_LOAD_PLUGINS", _SESSION_LOAD_PLUGINS)
    return plugins.entry_point_plugins()


@pytest.fixture
def run_cli() -> Callable[..., Any]:
    """Run the gptstore CLI in-process: ``run_cli("list", "--json", input=None)``."""
    from click.testing import CliRunner

    from .cli.main import cli

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None):
        runner = CliRunner()
        return runner.invoke(cli, list(args), input=input, env=env, catch_exceptions=False,
                             standalone_mode=True)

    return run


# -- a real store server ---------------------------------------------------------------------

CLI = [sys.executable, "-c", "from gptstore.cli.main import main; main()"]
SMALL = ["--lfs-threshold", str(256 * KiB), "--multipart-threshold", str(1024 * KiB),
         "--part-size", str(256 * KiB), "--max-body", str(4096 * KiB), "--page-size", "3"]



def admin(data: Path, *args: str, catalog: str | None = None) -> str:
    """Run ``gptstore server --data DATA [--catalog URL] ARGS`` in-process through click; returns stdout."""
    from click.testing import CliRunner

    from gptstore.cli.main import cli

    result = CliRunner().invoke(cli, ["server", "--data", str(data), *(["--catalog", catalog] if catalog else []), *args])
    assert result.exit_code == 0, f"{args}: {result.output}"
    return result.stdout.strip()


@dataclass
class StoreServer:
    data: Path
    log: Path
    args: list[str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    #: extra environment of the server process (e.g. :attr:`S3Endpoint.env`)
    env: dict[str, str] = field(default_factory=dict)
    #: the catalog URL (``--catalog``); None = the SQLite file in :attr:`data`
    catalog: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "HF_HUB_DISABLE_TELEMETRY": "1", **self.env}
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            catalog = ["--catalog", self.catalog, "--secret", _SHARED_SECRET] if self.catalog else []
            self.proc = subprocess.Popen([*CLI, "server", "--data", str(self.data), "--port", str(self.port),
                                          "--log-level", "warning", *catalog, *self.args],
                                         stdout=log, stderr=subprocess.STDOUT, env=env)
        import httpx

        deadline = time.time() + 30
        while time.time() < deadline:  # ready: the catalog (and the bucket) answer
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()  # not left running behind the failure
        raise RuntimeError(f"server did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        stop_process(self.proc)

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, like a crash or an OOM kill."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def admin(self, *args: str) -> str:
        return admin(self.data, *args, catalog=self.catalog)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``: the catalog engine this server runs on."""
        return "postgresql" if self.catalog and self.catalog.startswith("postgresql") else "sqlite"

    def require_sqlite(self) -> None:
        """Skip the calling test unless the catalog is the SQLite file (a test that opens it with sqlite3)."""
        if self.dialect != "sqlite":
            pytest.skip("reads or rewrites the SQLite catalog file directly")

    @property
    def blobs(self) -> str:
        """``disk`` (DATA/blobs) or ``s3`` (``--blobs s3://…``): where this server keeps its blobs."""
        return "s3" if "--blobs" in self.args or "GPTSTORE_SERVER_BLOBS" in self.env else "disk"

    def require_disk(self, why: str = "looks at the local blob directory (DATA/blobs) itself") -> None:
        """Skip the calling test unless the blobs are on the local disk (a test of the disk store's
        internals: its staging files, its multipart part ids); say which S3 test covers the same."""
        if self.blobs != "disk":
            pytest.skip(why)

    def rewrite_blob(self, sha256: str, change: Callable[[bytes], bytes]) -> None:
        """Replace the stored bytes of blob ``sha256`` by ``change(old bytes)`` behind the store's
        back (a rotten disk, a tampered bucket): on disk or in the S3 bucket, whichever it uses."""
        if self.blobs == "disk":
            blob = self.data / "blobs" / "sha256" / sha256
            blob.chmod(0o644)  # committed blobs are read-only
            blob.write_bytes(change(blob.read_bytes()))
            return
        url = self.args[self.args.index("--blobs") + 1] if "--blobs" in self.args else self.env["GPTSTORE_SERVER_BLOBS"]
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        key = f"{prefix.strip('/')}/sha256/{sha256}" if prefix.strip("/") else f"sha256/{sha256}"
        client = s3_server().client()
        old = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        client.put_object(Bucket=bucket, Key=key, Body=change(old))

    def api(self, user: str | None = "alice", scope: str = "write") -> Any:
        from huggingface_hub import HfApi

        token = self.tokens[f"{user}:{scope}"] if user else False
        return HfApi(endpoint=self.url, token=token)

    def http(self, user: str | None = None, scope: str = "write") -> Any:
        import httpx

        headers = {"authorization": f"Bearer {self.tokens[f'{user}:{scope}']}"} if user else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


_default_backend = "sqlite+disk"


@contextlib.contextmanager
def default_backend(name: str) -> Iterator[str]:
    """While it lasts, :func:`start_store` without ``backend=`` starts stores on ``name`` (a key of
    :data:`BACKENDS`); tests/server/conftest.py wraps every module in it, once per pair."""
    global _default_backend
    PAIRS[name]  # noqa: B018  (a KeyError names an unknown pair at once)
    previous, _default_backend = _default_backend, name
    try:
        yield name
    finally:
        _default_backend = previous


def start_store(root: Path, args: list[str] = SMALL, *, env: dict[str, str] | None = None,
                backend: str | None = None) -> StoreServer:
    """A running store with users alice, bob, carol, org acme and their tokens (see :class:`StoreServer`),
    its catalog and blobs as :data:`BACKENDS` names them (default: :func:`default_backend`'s; a
    PostgreSQL catalog is a fresh database on the test session's server, :func:`postgres_server`;
    skips when none can start; ``s3`` blobs are a prefix of their own in the session's moto bucket,
    :func:`s3_blobs_options`, unless ``args`` name ``--blobs`` themselves)."""
    chosen = PAIRS[backend or _default_backend]
    catalog = postgres_server().create_database() if chosen.catalog == "postgresql" else None
    args, env = list(args), dict(env or {})
    if chosen.blobs == "s3" and "--blobs" not in args:  # a test that names its own bucket keeps it
        blob_args, blob_env = s3_blobs_options()
        args, env = [*args, *blob_args], {**blob_env, **env}
    server = StoreServer(root / "data", root / "server.log", args, env=env, catalog=catalog)
    server.admin("user", "add", "alice")
    server.admin("user", "add", "bob")
    server.admin("user", "add", "carol")
    server.admin("org", "add", "acme", "--member", "alice", "--member", "carol")
    for user, scope in [("alice", "write"), ("alice", "read"), ("bob", "write"), ("carol", "write")]:
        server.tokens[f"{user}:{scope}"] = server.admin("token", "create", user, "--scope", scope)
    server.start()
    return server


#: the ``format`` of the tiny packages :func:`publish_package` uploads
PACKAGE_FORMAT = {"adapter": "transformers", "architecture": "GPT2LMHeadModel", "context_length": 64,
                  "dtype": "float32"}
#: the base an adapter package made by :func:`publish_package` names
PACKAGE_BASE = {"reference": "alice/helpdesk:1.0.0", "digest": "b" * 64}


def signing_key() -> Any:
    """A fresh Ed25519 private key (needs the ``cryptography`` package)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()


def register_key(server: StoreServer, namespace: str, key: Any, tmp: Path) -> str:
    """Register ``key``'s public half for ``namespace`` on ``server``; its key id."""
    from .signing import key_id, public_key_pem

    pub = Path(tmp) / f"{namespace}-{key_id(key.public_key())}.pub"
    pub.write_text(public_key_pem(key.public_key()))
    server.admin("key", "add", namespace, str(pub))
    return key_id(key.public_key())


def publish_package(server: StoreServer, tmp: Path, repo_id: str, *, user: str, key: Any = None,
                    private: bool = False, readme: str | None = None, version: str = "1.0.0",
                    create: bool = True, **fields: Any) -> None:
    """A tiny gptstore package (one data file, its manifest, signed with ``key``, a ``README.md``
    when given) uploaded to ``server`` as ``user`` with the stock client; ``fields`` go into the
    manifest (``parameters=`` and ``adapter=True`` into its format). ``create=False`` commits a
    new ``version`` to an existing repo."""
    import hashlib

    from .manifest import dumps, validate
    from .signing import make_envelope

    namespace, name = repo_id.split("/")
    folder = Path(tmp) / f"{repo_id.replace('/', '--')}-{version}"
    folder.mkdir(parents=True)
    data = f"weights of {repo_id} {version}".encode()
    (folder / "weights.bin").write_bytes(data)
    fmt = {**PACKAGE_FORMAT, "parameters": fields.pop("parameters", 1000)}
    if fields.pop("adapter", False):
        fmt["base"] = PACKAGE_BASE
    entry = {"path": "weights.bin", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    manifest = validate({"namespace": namespace, "name": name, "version": version, "format": fmt,
                         "files": [entry], **fields})
    (folder / "gptstore.json").write_bytes(dumps(manifest))
    if key is not None:
        (folder / "gptstore.sig").write_bytes(make_envelope(manifest, key))
    if readme is not None:
        (folder / "README.md").write_text(readme)
    api = server.api(user)
    if create:
        api.create_repo(repo_id, private=private)
    api.upload_folder(folder_path=folder, repo_id=repo_id)


@pytest.fixture(scope="module", params=list(BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    """The catalog + blobs pair (a key of :data:`BACKENDS`) the module's store runs on; every server
    test module runs once per pair."""
    return request.param


@pytest.fixture(scope="module")
def store_server(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[StoreServer]:
    """A running ``gptstore server`` for the tests of one module (see :class:`StoreServer`), on
    each of :data:`BACKENDS` in turn."""
    server = start_store(tmp_path_factory.mktemp("store"), backend=backend)
    yield server
    server.stop()
