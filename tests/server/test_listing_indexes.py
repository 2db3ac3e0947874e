"""The listing's sort indexes (migration 0002): ``/api/models`` sorted by downloads, newest or last
modified reads repos in index order and stops after one page, on both catalogs; and a search's two
plans (the first repos of that order, or the set of matches; migration 0003's trigram index on
PostgreSQL) give the same pages.

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
        if db.dialect == "postgresql":  # migration 0003: the id substring search reads a trigram index
            assert "repos_id_trgm" in names
        assert db.one("SELECT version_num FROM alembic_version")[0] == migrations.HEAD == "0003"
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


def test_a_search_page_is_the_same_from_the_window_as_from_the_set_of_matches(store, tmp_path, monkeypatch):
    """``query_models`` first looks for a search's page among the first repos of the listing's order
    (the window) and collects the set of matches only when the window does not hold the page: both
    plans give the same pages, whether the words match the id, the manifest's text or nothing, for
    public and visible private repos, in every walkable order."""
    from gptstore.server import search
    from gptstore.server.search import ModelQuery, query_models
    from gptstore.testing import publish_package

    api = store.api("alice")
    for i in range(9):
        api.create_repo(f"alice/qwin-{i}", private=i == 4)
        api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id=f"alice/qwin-{i}")
    with store.http("bob") as bob:  # downloads, so the default order is not the id order
        for i, times in ((7, 3), (2, 2), (5, 1)):
            for _ in range(times):
                assert bob.get(f"/alice/qwin-{i}/resolve/main/config.json").status_code == 200
    publish_package(store, tmp_path, "alice/qwinsonnet", user="alice", description="Writes qwinverse sonnets")
    plans: list[str] = []
    real_page = search._page
    monkeypatch.setattr(search, "_page", lambda db, sql, params: plans.append(
        "window" if "window" in params and ":window" in sql else "set") or real_page(db, sql, params))
    db = connect(_catalog(store))
    try:
        for words in ("qwin", "QWIN-7", "qwinverse", "qwinverse sonnets", "zzqwin", "alice/qwin"):
            for sort in ("downloads", "newest", "id"):
                for visible in ((), ("alice",)):
                    for limit, offset in ((1, 0), (2, 0), (2, 2), (3, 3), (4, 8)):
                        query = ModelQuery(search=words, sort=sort, limit=limit, offset=offset)
                        expected = query_models(db, query, visible=visible, window=0)
                        for window in (3, 6, 1000):
                            assert query_models(db, query, visible=visible, window=window) == expected, \
                                (words, sort, visible, limit, offset, window)
        assert [r.repo_id for r, _ in query_models(db, ModelQuery(search="qwin", limit=3), visible=())] == \
            ["alice/qwin-7", "alice/qwin-2", "alice/qwin-5"]
        assert [r.repo_id for r, _ in query_models(db, ModelQuery(search="qwinverse"), visible=())] == ["alice/qwinsonnet"]
        assert "alice/qwin-4" in [r.repo_id for r, _ in query_models(db, ModelQuery(search="qwin"), visible=("alice",))]
        assert "alice/qwin-4" not in [r.repo_id for r, _ in query_models(db, ModelQuery(search="qwin"), visible=())]
    finally:
        db.close()
    assert "window" in plans and plans.count("set") > plans.count("window") // 2, plans  # both plans ran
