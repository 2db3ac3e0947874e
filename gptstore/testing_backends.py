"""Backends for test stores (part of gptstore's pytest plugin, re-exported by :mod:`gptstore.testing`):
the catalog + blobs pairs (:data:`BACKENDS`), a throw-away PostgreSQL server for the session
(:func:`postgres_server`, run as ``nobody`` when the tests run as root) and moto's standalone S3
server (:func:`s3_server`, :func:`s3_blobs_options`), spoken to only through boto3.

Each starts on first use and stops when the session ends; a PostgreSQL that cannot start skips
the calling test with the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

KiB = 1024

@dataclass(frozen=True)
class Backend:
    """Where a test store keeps its catalog (``sqlite``: DATA/catalog.sqlite3; ``postgresql``: a
    fresh database on :func:`postgres_server`) and its blobs (``disk``: DATA/blobs; ``s3``: a prefix
    of its own in the session's moto bucket, :func:`s3_blobs_options`)."""

    catalog: str
    blobs: str = "disk"


#: the backend pairs every server test module runs on (the ``backend`` fixture's params), by name
BACKENDS: dict[str, Backend] = {
    "sqlite+disk": Backend("sqlite"),
    "postgresql+s3": Backend("postgresql", "s3"),
}
#: every pair a test may ask :func:`gptstore.testing.start_store` for by name: :data:`BACKENDS` plus
#: PostgreSQL with blobs on a (shared) disk, which tests/server/test_postgresql.py's replicas use
PAIRS: dict[str, Backend] = {**BACKENDS, "postgresql+disk": Backend("postgresql")}

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
            raise RuntimeError("no PostgreSQL server binaries (initdb, postgres) found; install them to run the PostgreSQL tests: `apt-get install postgresql`")
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
        stop_process(self.proc, timeout=20)  # SIGTERM: smart shutdown; clients are gone by now
        self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)


def stop_process(proc: subprocess.Popen | None, *, timeout: float = 10) -> None:
    """SIGTERM ``proc`` if it still runs, SIGKILL it when it has not exited within ``timeout`` s."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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
        stop_process(self.proc)


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
