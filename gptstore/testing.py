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
  ``store_server.tokens["alice:write"]`` etc.; see :class:`StoreServer`.

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
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest


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
KiB = 1024
SMALL = ["--lfs-threshold", str(256 * KiB), "--multipart-threshold", str(1024 * KiB),
         "--part-size", str(256 * KiB), "--max-body", str(4096 * KiB), "--page-size", "3"]


@dataclass(frozen=True)
class Backend:
    """Where a test store keeps its catalog (``sqlite``: DATA/catalog.sqlite3; ``postgresql``: a
    fresh database on :func:`postgres_server`) and its blobs (``disk``: DATA/blobs)."""

    catalog: str
    blobs: str = "disk"


#: the backend pairs every server test module runs on (the ``backend`` fixture's params), by name
BACKENDS: dict[str, Backend] = {
    "sqlite+disk": Backend("sqlite"),
    "postgresql+disk": Backend("postgresql"),
}

#: ``--secret`` of test stores on a shared (PostgreSQL) catalog, which the server requires
_SHARED_SECRET = "gptstore-test-secret-" + "0" * 32


class PostgresServer:
    """A throw-away PostgreSQL server for one test session: Debian's binaries (``initdb``,
    ``postgres`` on PATH or in /usr/local/bin or /usr/lib/postgresql/*/bin), run as the
    unprivileged ``nobody`` when the tests run as root (PostgreSQL refuses root), listening on a
    free loopback port with trust authentication, its data in a fresh temporary directory
    (fsync off: nothing outlives the session). :meth:`create_database` makes one database per store."""

    def __init__(self) -> None:
        import tempfile

        binaries = _postgres_binaries()
        if binaries is None:
            raise RuntimeError("no PostgreSQL server binaries (initdb, postgres) found; install postgresql")
        initdb, postgres = binaries
        self.root = Path(tempfile.mkdtemp(prefix="gptstore-pg-"))
        self.port = free_port()
        self.count = 0
        prefix: list[str] = []
        if os.geteuid() == 0:
            import pwd

            nobody = pwd.getpwnam("nobody")
            os.chown(self.root, nobody.pw_uid, nobody.pw_gid)
            prefix = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"]
        data = self.root / "data"
        done = subprocess.run([*prefix, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync",
                               "-E", "UTF8", "--locale=C"], capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"initdb failed: {(done.stderr or done.stdout).strip()[-500:]}")
        self.log = open(self.root / "postgres.log", "ab")
        self.proc = subprocess.Popen([*prefix, postgres, "-D", str(data), "-p", str(self.port),
                                      "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
                                      "-c", "fsync=off", "-c", "synchronous_commit=off",
                                      "-c", "full_page_writes=off", "-c", "max_connections=400"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while True:
            try:
                self._admin("SELECT 1")
                return
            except Exception as exc:
                if self.proc.poll() is not None or time.time() > deadline:
                    self.stop()
                    raise RuntimeError(f"PostgreSQL did not start: {exc}") from None
                time.sleep(0.1)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql)

    def create_database(self) -> str:
        """A new, empty database on this server; its URL."""
        self.count += 1
        name = f"store{os.getpid()}_{self.count}"
        self._admin(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: smart shutdown; clients are gone by now
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)


def _postgres_binaries() -> tuple[str, str] | None:
    import glob

    folders = [os.path.dirname(p) for p in (shutil.which("initdb"),) if p]
    folders += ["/usr/local/bin", *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for folder in folders:
        initdb, postgres = os.path.join(folder, "initdb"), os.path.join(folder, "postgres")
        if os.access(initdb, os.X_OK) and os.access(postgres, os.X_OK):
            return initdb, postgres
    return None


_postgres: PostgresServer | None = None
_postgres_failure: str | None = None


def postgres_server() -> PostgresServer:
    """The test session's PostgreSQL server, started on first use and stopped when the session
    ends; skips the calling test, with the reason, when it cannot start (or psycopg is missing)."""
    global _postgres, _postgres_failure
    if _postgres is None and _postgres_failure is None:
        try:
            import psycopg  # noqa: F401
            import sqlalchemy  # noqa: F401

            _postgres = PostgresServer()
        except Exception as exc:  # any reason: the PostgreSQL tests skip saying it
            _postgres_failure = f"PostgreSQL unavailable: {exc}"
        else:
            import atexit

            atexit.register(_postgres.stop)
    if _postgres is None:
        pytest.skip(str(_postgres_failure))
    return _postgres


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/api/models", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

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
    BACKENDS[name]  # noqa: B018  (a KeyError names an unknown pair at once)
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
    skips when none can start)."""
    chosen = BACKENDS[backend or _default_backend]
    catalog = postgres_server().create_database() if chosen.catalog == "postgresql" else None
    server = StoreServer(root / "data", root / "server.log", list(args), env=dict(env or {}), catalog=catalog)
    server.admin("user", "add", "alice")
    server.admin("user", "add", "bob")
    server.admin("user", "add", "carol")
    server.admin("org", "add", "acme", "--member", "alice", "--member", "carol")
    for user, scope in [("alice", "write"), ("alice", "read"), ("bob", "write"), ("carol", "write")]:
        server.tokens[f"{user}:{scope}"] = server.admin("token", "create", user, "--scope", scope)
    server.start()
    return server



@dataclass
class S3Endpoint:
    """moto's standalone S3 server on a loopback port (see :func:`start_s3`), spoken to like any
    S3: through boto3 with the standard AWS variables in :attr:`env`."""

    url: str
    proc: subprocess.Popen
    bucket: str = "gptstore-test"

    @property
    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1"}

    def blobs_url(self, prefix: str = "store") -> str:
        """The ``--blobs`` value of a store keeping its blobs under ``prefix`` in the bucket."""
        return f"s3://{self.bucket}/{prefix}"

    def client(self) -> Any:
        import boto3

        env = self.env
        return boto3.client("s3", endpoint_url=self.url, aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_DEFAULT_REGION"])

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_s3(root: Path, *, min_part_size: int = 256 * KiB) -> S3Endpoint:
    """Start moto's S3 server (``python -m moto.server``) on a free loopback port with one bucket;
    a store uses it with ``start_store(root, [..., "--blobs", s3.blobs_url()], env=s3.env)``.
    ``min_part_size`` is S3's smallest multipart part (5 MiB on real S3; the default fits SMALL's
    --part-size). Stop it with :meth:`S3Endpoint.stop`."""
    import httpx

    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "S3_UPLOAD_PART_MIN_SIZE": str(min_part_size)}
    with open(root / "moto.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
    endpoint = S3Endpoint(f"http://127.0.0.1:{port}", proc)
    deadline = time.time() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited:\n{(root / 'moto.log').read_text()}")
        try:
            httpx.get(endpoint.url, timeout=1)
            break
        except httpx.HTTPError:
            if time.time() > deadline:
                endpoint.stop()
                raise RuntimeError("moto server did not start within 30 s") from None
            time.sleep(0.1)
    endpoint.client().create_bucket(Bucket=endpoint.bucket)
    return endpoint


_s3: S3Endpoint | None = None


def s3_server() -> S3Endpoint:
    """The test session's S3 server (:func:`start_s3`), started on first use, stopped at exit."""
    global _s3
    if _s3 is None:
        import atexit
        import tempfile

        _s3 = start_s3(Path(tempfile.mkdtemp(prefix="gptstore-s3-")))
        atexit.register(_s3.stop)
    return _s3


def s3_blobs_options() -> tuple[list[str], dict[str, str]]:
    """``(args, env)`` for a new test store keeping its blobs on the session's S3 server under a
    prefix of its own: ``start_store(root, [*SMALL, *args], env=env)`` (a backend pair's ``s3``)."""
    import uuid

    s3 = s3_server()
    return ["--blobs", s3.blobs_url(f"store-{uuid.uuid4().hex[:12]}")], s3.env


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
