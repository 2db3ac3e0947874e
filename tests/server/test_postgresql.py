"""The catalog on PostgreSQL: replicas sharing one database, explicit migration, full-text search.

(Every other server test module already runs on both catalogs through the ``backend`` fixture.)
Two ``gptstore server`` processes on one PostgreSQL database stand for two replicas behind a load
balancer: commits to one branch through both serialise on the ref's row lock (one wins whole,
the other gets 412), downloads through both are counted without losing any, and first reviews
racing through both make one review. Plus: ``gptstore server migrate`` on an empty database, search
through the ``tsvector`` index, and the Alembic stamp of an old SQLite catalog.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd

from gptstore.testing import StoreServer, postgres_server, publish_package, start_store

from .racing import race_commits


@pytest.fixture(scope="module")
def backend() -> str:
    """This module is about PostgreSQL only (not run once per backend pair)."""
    return "postgresql+disk"


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory):
    """Two servers on one PostgreSQL catalog with one secret (and, the blobs being on disk here,
    one blob directory, as a shared volume would be; the S3 pair shares a bucket instead)."""
    first = start_store(tmp_path_factory.mktemp("replica-a"), backend="postgresql+disk")
    root = tmp_path_factory.mktemp("replica-b")
    second = StoreServer(first.data, root / "server.log", list(first.args), catalog=first.catalog,
                         tokens=dict(first.tokens))
    try:
        second.start()
        yield first, second
    finally:
        second.stop()
        first.stop()


def test_racing_commits_through_two_replicas_one_wins_whole(replicas):
    first, second = replicas
    first.api("alice").create_repo("alice/raced")
    for round_ in range(4):
        head = first.api("alice").model_info("alice/raced").sha
        outcomes = race_commits(
            first, second, "alice/raced", head, str(round_),
            lambda name: [CommitOperationAdd(f"{name}/{i}.txt", f"{name} {round_} {i}".encode()) for i in range(30)])
        winners = [name for name, outcome in outcomes.items() if isinstance(outcome, str)]
        assert len(winners) == 1, outcomes
        loser = "b" if winners == ["a"] else "a"
        assert outcomes[loser] == 412, outcomes
        for server in (first, second):  # both replicas see the winner's commit, whole, and nothing of the loser's
            info = server.api("alice").model_info("alice/raced", files_metadata=False)
            assert info.sha == outcomes[winners[0]]
            files = set(server.api("alice").list_repo_files("alice/raced"))
            assert {f"{winners[0]}/{i}.txt" for i in range(30)} <= files
            assert not any(f.startswith(f"{loser}/") and f"{loser} {round_}" in f for f in files)
        for i in range(30):
            assert server.http("alice").get(f"/alice/raced/resolve/main/{winners[0]}/{i}.txt").text == \
                f"{winners[0]} {round_} {i}"


def test_downloads_through_two_replicas_lose_no_count(replicas):
    first, second = replicas
    first.api("alice").create_repo("alice/counted")
    first.api("alice").upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id="alice/counted")
    per_thread, threads = 10, 8

    def pull(server: StoreServer) -> None:
        with server.http() as http:
            for _ in range(per_thread):
                assert http.get("/alice/counted/resolve/main/config.json").status_code == 200

    workers = [threading.Thread(target=pull, args=(first if i % 2 else second,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for server in (first, second):
        assert server.api("alice").model_info("alice/counted").downloads == per_thread * threads


def test_search_uses_postgresql_full_text(replicas, tmp_path):
    first, second = replicas
    publish_package(first, tmp_path, "alice/versifier", user="alice", description="Writes sonnets in iambic meter",
                    tags=["poetry"])
    for server in (first, second):
        api = server.api("alice")
        assert [m.id for m in api.list_models(search="iamb")] == ["alice/versifier"]  # a prefix of a description word
        assert [m.id for m in api.list_models(search="SONNETS meter")] == ["alice/versifier"]
        assert list(api.list_models(search="sonnets haiku")) == []  # every word must match
    import psycopg

    with psycopg.connect(first.catalog) as conn:
        kinds = dict(conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'manifest_fts'"))
    assert any("gin (doc)" in definition for definition in kinds.values()), kinds


def test_migrate_prepares_an_empty_database_and_can_be_rerun(tmp_path):
    url = postgres_server().create_database()
    from click.testing import CliRunner

    from gptstore.cli.main import cli
    from gptstore.server import migrations
    from gptstore.server.db import SCHEMA_VERSION

    for _ in range(2):
        result = CliRunner().invoke(cli, ["server", "migrate", "--catalog", url])
        assert result.exit_code == 0, result.output
        assert f"at schema {SCHEMA_VERSION}" in result.output
        assert "postgresql" in result.output
    import psycopg

    with psycopg.connect(url) as conn:
        tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        stamp = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    assert {"repos", "commits", "refs", "files", "tokens", "manifest_fts", "catalogue_fts", "usage_daily"} <= tables
    assert stamp == [(migrations.HEAD,)]
    # the migrated database serves: a server started on it needs no further setup
    store = StoreServer(tmp_path / "data", tmp_path / "server.log", [], catalog=url)
    store.admin("user", "add", "dora")
    store.tokens["dora:write"] = store.admin("token", "create", "dora", "--scope", "write")
    store.start()
    try:
        store.api("dora").create_repo("dora/first")
        assert store.api("dora").model_info("dora/first").id == "dora/first"
    finally:
        store.stop()


def test_an_unreachable_catalog_is_one_line_saying_what_to_check(tmp_path):
    from click.testing import CliRunner

    from gptstore.cli.main import cli
    from gptstore.testing import free_port

    url = f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/nowhere"
    result = CliRunner().invoke(cli, ["server", "migrate", "--catalog", url])
    assert result.exit_code != 0
    assert "cannot connect to the catalog" in result.output and "hunter2" not in result.output, result.output


def test_a_sqlite_catalog_from_before_alembic_is_stamped_and_a_newer_one_refused(tmp_path):
    """SQLite catalogs written before the schema moved to Alembic open as before and get stamped
    with the baseline; a catalog stamped by a newer gptstore is refused with what to do."""
    import sqlite3

    from gptstore.errors import StoreError
    from gptstore.server import migrations
    from gptstore.server.accounts import Accounts
    from gptstore.server.db import connect

    path = tmp_path / "catalog.sqlite3"
    Accounts(connect(path)).add_user("old")
    conn = sqlite3.connect(path)
    conn.executescript("DROP TABLE alembic_version; DROP TABLE usage_daily; DROP TABLE usage_reports; "
                       "PRAGMA user_version = 6;")  # as gptstore with schema 6 left it
    conn.close()
    db = connect(path)
    assert db.one("SELECT version_num FROM alembic_version")[0] == migrations.HEAD
    assert db.all("SELECT * FROM usage_daily") == []
    assert Accounts(db).users() == ["old"]
    db.execute("UPDATE alembic_version SET version_num = 'ffff'")
    db.close()
    with pytest.raises(StoreError, match="newer than this gptstore"):
        connect(path)


def test_racing_first_reviews_through_two_replicas_make_one_review(replicas):
    first, second = replicas
    first.api("alice").create_repo("alice/reviewed")
    url = "/api/gptstore/models/alice/reviewed/reviews"
    statuses: list[int] = []
    count = 16
    start = threading.Barrier(count)

    def review(server: StoreServer, stars: int) -> None:
        with server.http("bob") as http:
            http.get("/api/whoami-v2")  # connected and warm, so the PUTs leave together
            start.wait()
            statuses.append(http.put(url, json={"stars": stars, "text": f"{stars} stars"}).status_code)

    workers = [threading.Thread(target=review, args=(first if i % 2 else second, 1 + i % 5)) for i in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(statuses) == [200] * (count - 1) + [201], statuses  # one created it, the others replaced it
    listed = first.http().get(url).json()
    assert [r["user"] for r in listed["reviews"]] == ["bob"]


def test_a_database_refusing_the_trigram_extension_still_migrates_and_searches(tmp_path, caplog):
    """Migration 0003 creates ``pg_trgm`` for the id search's index; a role that may not create
    extensions gets a catalog without that index, told why, and search still answers (by scanning)."""
    import psycopg
    from click.testing import CliRunner

    from gptstore.cli.main import cli
    from gptstore.server import migrations

    server = postgres_server()
    owner_url = server.create_database()
    with psycopg.connect(server.url(), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'gptstore_plain'").fetchone():
            conn.execute("CREATE ROLE gptstore_plain LOGIN")
    with psycopg.connect(owner_url, autocommit=True) as conn:  # may create tables, not extensions
        conn.execute("GRANT CREATE ON SCHEMA public TO gptstore_plain")
    url = owner_url.replace("postgresql://postgres@", "postgresql://gptstore_plain@")
    result = CliRunner().invoke(cli, ["server", "migrate", "--catalog", url])
    assert result.exit_code == 0, result.output
    assert "CREATE EXTENSION pg_trgm failed" in caplog.text and "permission denied" in caplog.text
    with psycopg.connect(owner_url) as conn:
        indexes = {row[0] for row in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'repos'")}
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(migrations.HEAD,)]
    assert "repos_downloads" in indexes and "repos_id_trgm" not in indexes
    store = StoreServer(tmp_path / "data", tmp_path / "server.log", [], catalog=url)
    store.admin("user", "add", "dora")
    store.tokens["dora:write"] = store.admin("token", "create", "dora", "--scope", "write")
    store.start()
    try:
        api = store.api("dora")
        api.create_repo("dora/first-words")
        assert [m.id for m in api.list_models(search="st-wor")] == ["dora/first-words"]
        assert list(api.list_models(search="zzq")) == []  # no page in the window: the set of matches
    finally:
        store.stop()


def test_a_model_page_does_not_wait_behind_a_commit_in_progress(replicas):
    """Only the commit path locks its branch's ref row: while a commit holds it (here a transaction
    of our own holding ``FOR UPDATE`` on main), the model page and the API still answer at once."""
    import time

    import psycopg

    first, _ = replicas
    first.api("alice").create_repo("alice/locked-page")
    first.api("alice").upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id="alice/locked-page")
    with psycopg.connect(first.catalog) as conn:  # a transaction: the lock holds until the block ends
        conn.execute("SELECT target FROM refs r JOIN repos p ON p.id = r.repo WHERE p.namespace = 'alice' "
                     "AND p.name = 'locked-page' AND r.kind = 'branch' AND r.name = 'main' FOR UPDATE")
        started = time.monotonic()
        with first.http() as http:
            assert http.get("/alice/locked-page", timeout=10).status_code == 200
            assert http.get("/api/models/alice/locked-page", timeout=10).status_code == 200
        assert time.monotonic() - started < 5
        conn.rollback()
