"""The listing's sort indexes (migration 0002): ``/api/models`` sorted by downloads, newest or last
modified reads repos in index order and stops after one page, on both catalogs.

(At 100,000 models on PostgreSQL this took search p50 from ~63 ms at 20,000 to ~14 ms:
``bench/scale.py``.) Here: the revision is applied and stamped on a fresh catalog, the listing's
order and pages are those the indexes serve (ties broken by repo id), and SQLite's planner walks
the downloads index instead of sorting every repo.
"""

from __future__ import annotations

from gptstore.server import migrations
from gptstore.server.db import connect


def _catalog(store) -> str:
    return store.catalog or f"sqlite:///{store.data / 'catalog.sqlite3'}"


def test_a_fresh_catalog_has_the_listing_indexes_and_is_stamped_at_head(store):
    db = connect(_catalog(store))
    try:
        if db.dialect == "postgresql":
            names = {row[0] for row in db.all("SELECT indexname FROM pg_indexes WHERE tablename = 'repos'")}
        else:
            names = {row[0] for row in db.all("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"repos_downloads", "repos_created", "repos_modified"} <= names
        assert db.one("SELECT version_num FROM alembic_version")[0] == migrations.HEAD == "0002"
        if db.dialect == "sqlite":  # the default listing walks the index: no sort of every repo
            plan = " ".join(str(row[-1]) for row in db.all(
                "EXPLAIN QUERY PLAN SELECT r.id FROM repos r WHERE r.private = 0 "
                "ORDER BY r.downloads DESC, r.namespace, r.name LIMIT 21"))
            assert "repos_downloads" in plan and "TEMP B-TREE" not in plan, plan
    finally:
        db.close()


def test_pages_sorted_by_downloads_are_in_order_and_tie_broken_by_id(store):
    api = store.api("alice")
    for name in ("rank-b", "rank-a", "rank-c"):
        api.create_repo(f"alice/{name}")
        api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id=f"alice/{name}")
    with store.http("bob") as bob:
        assert bob.get("/alice/rank-c/resolve/main/config.json").status_code == 200  # one download
    found = [m.id for m in api.list_models(author="alice", search="rank", sort="downloads")]
    assert found[:3] == ["alice/rank-c", "alice/rank-a", "alice/rank-b"], found
    with store.http("bob") as bob:
        first = bob.get("/api/models", params={"author": "alice", "search": "rank", "limit": 1})
        assert [m["id"] for m in first.json()] == ["alice/rank-c"]
        following = bob.get(first.links["next"]["url"]).json()
        assert [m["id"] for m in following] == ["alice/rank-a"]
