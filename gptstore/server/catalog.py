"""Repos, commits, refs and files in the relational catalog.

A commit row holds its full file list (``files``: path → blob sha256, size, git id, lfs flag), so
any revision is one indexed query and a commit never changes after it is written. Commit ids are
40 random hex digits, never derived from content, so a deleted and re-created repo never reuses
one. Branches and tags are rows of ``refs``; ``main`` always exists.

Repo ids are matched as on the Hub: stored with their case, compared without it (``Bob/Poet``
and ``bob/poet`` are one repo). :func:`_same_id` is the one comparison every lookup uses, and the
writers of ids (create, move, duplicate) refuse an id that matches another repo's inside their
write transaction, so no two repos can differ by case only. (A catalog written before this rule
may hold such twins; a lookup then prefers the exact spelling, so each stays reachable.) A moved
repo leaves a row in ``repo_redirects`` under each old id; a lookup of an old id raises
:class:`RepoMoved`, which the app answers with a redirect to the new id.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any, Iterable

from ..errors import ConflictError
from . import dialect
from .db import Database
from .storage import FileRow
from .timeutil import now

MAIN = "main"


def _same_id(table: str = "") -> str:
    """The one repo-id comparison: ``table``'s namespace and name against two parameters, without case."""
    prefix = f"{table}." if table else ""
    return f"{prefix}namespace = ? COLLATE NOCASE AND {prefix}name = ? COLLATE NOCASE"


@dataclass(frozen=True)
class Repo:
    id: int
    namespace: str
    name: str
    private: bool
    created_at: str
    last_modified: str
    downloads: int
    card: dict[str, Any]
    summary: dict[str, Any] | None
    library_name: str | None
    pipeline_tag: str | None

    @property
    def repo_id(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Commit:
    id: str
    parent: str | None
    author: str
    title: str
    message: str
    created_at: str


@dataclass(frozen=True)
class Ref:
    kind: str  # "branch" | "tag"
    name: str
    target: str


class RepoMoved(Exception):
    """A lookup named an id the repo had before a move; ``repo`` is the repo under its id now."""

    def __init__(self, repo: Repo) -> None:
        super().__init__(repo.repo_id)
        self.repo = repo


def new_commit_id() -> str:
    return secrets.token_hex(20)


def repo_from_row(row: Any) -> Repo:
    return Repo(row["id"], row["namespace"], row["name"], bool(row["private"]), row["created_at"],
                row["last_modified"], row["downloads"], json.loads(row["card"] or "{}"),
                json.loads(row["summary"]) if row["summary"] else None, row["library_name"], row["pipeline_tag"])


def _commit(row: Any) -> Commit:
    return Commit(row["id"], row["parent"], row["author"], row["title"], row["message"], row["created_at"])


def _file(row: Any) -> FileRow:
    return FileRow(row["path"], row["sha256"], row["size"], row["git_oid"], bool(row["lfs"]))


class Catalog:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- repos -----------------------------------------------------------------------------
    def repo(self, namespace: str, name: str, *, follow_moves: bool = True) -> Repo | None:
        """The repo ``namespace/name`` names, in any case; None when there is none.

        An id the repo had before a move raises :class:`RepoMoved` (unless ``follow_moves`` is
        off: creating or deleting a repo never acts through an old id).
        """
        row = self.db.one(f"SELECT * FROM repos WHERE {_same_id()} ORDER BY (namespace = ? AND name = ?) DESC LIMIT 1",
                          (namespace, name, namespace, name))
        if row is not None:
            return repo_from_row(row)
        if follow_moves:
            moved = self.db.one(f"SELECT r.* FROM repo_redirects m JOIN repos r ON r.id = m.repo "
                                f"WHERE {_same_id('m')}", (namespace, name))
            if moved is not None:
                raise RepoMoved(repo_from_row(moved))
        return None

    def namespace(self, name: str) -> str | None:
        """The user or org ``name`` names, spelt as it was created (namespaces match without case)."""
        row = self.db.one("SELECT name FROM namespaces WHERE name = ? COLLATE NOCASE ORDER BY (name = ?) DESC LIMIT 1",
                          (name, name))
        return row["name"] if row else None

    def repos_of(self, namespace: str, *, limit: int | None = None) -> list[Repo]:
        """The repos of ``namespace`` by name, the first ``limit`` of them when given
        (:meth:`repos_in` without the storage it sums)."""
        cut = "" if limit is None else " LIMIT ?"
        rows = self.db.all(f"SELECT * FROM repos WHERE namespace = ? ORDER BY name{cut}",
                           (namespace,) if limit is None else (namespace, limit))
        return [repo_from_row(row) for row in rows]

    def repos_in(self, namespace: str) -> list[tuple[Repo, int]]:
        """Every repo of ``namespace`` with its storage: the bytes of the distinct blobs its commits hold."""
        rows = self.db.all(
            "SELECT r.*, (SELECT COALESCE(SUM(size), 0) FROM (SELECT DISTINCT f.sha256, f.size FROM files f "
            "JOIN commits c ON c.id = f.commit_id WHERE c.repo = r.id) AS blobs) AS storage "
            "FROM repos r WHERE r.namespace = ? ORDER BY r.name", (namespace,))
        return [(repo_from_row(row), row["storage"]) for row in rows]

    def _claim(self, namespace: str, name: str, *, owner: int | None = None) -> None:
        """Inside a write transaction: refuse an id another repo holds (in any case), and drop
        any redirect under it (the id now names a repo of its own again)."""
        row = self.db.one(f"SELECT id FROM repos WHERE {_same_id()} AND id IS NOT ?", (namespace, name, owner))
        if row is not None:
            raise ConflictError(f"{namespace}/{name} already exists (repo ids do not differ by case only)",
                                hint="pick another name")
        self.db.execute(f"DELETE FROM repo_redirects WHERE {_same_id()}", (namespace, name))

    def create_repo(self, namespace: str, name: str, *, private: bool, author: str,
                    initial: Iterable[FileRow]) -> Repo:
        """A new repo with an initial commit on ``main`` holding ``initial``; ConflictError when
        the id is taken (in any case)."""
        created = now()
        with self.db.transaction():
            self._claim(namespace, name)
            cursor = self.db.execute(
                "INSERT INTO repos (namespace, name, private, created_at, last_modified) VALUES (?, ?, ?, ?, ?) "
                "RETURNING id", (namespace, name, int(private), created, created))
            repo_id = cursor.fetchone()[0]
            commit = self._insert_commit(repo_id, None, author, "initial commit", "", {f.path: f for f in initial})
            self.db.execute("INSERT INTO refs (repo, kind, name, target) VALUES (?, 'branch', ?, ?)",
                            (repo_id, MAIN, commit))
        found = self.repo(namespace, name, follow_moves=False)
        assert found is not None
        return found

    def move_repo(self, repo: Repo, namespace: str, name: str) -> Repo:
        """Rename ``repo`` to ``namespace/name`` (ConflictError when another repo has that id);
        its old id keeps naming it (:class:`RepoMoved`) until another repo takes that id."""
        with self.db.transaction():
            self._claim(namespace, name, owner=repo.id)
            self.db.execute("UPDATE repos SET namespace = ?, name = ? WHERE id = ?", (namespace, name, repo.id))
            if repo.repo_id.lower() != f"{namespace}/{name}".lower():
                self.db.execute(f"DELETE FROM repo_redirects WHERE {_same_id()}", (repo.namespace, repo.name))
                self.db.execute("INSERT INTO repo_redirects (namespace, name, repo) VALUES (?, ?, ?)",
                                (repo.namespace, repo.name, repo.id))
        found = self.repo(namespace, name, follow_moves=False)
        assert found is not None
        return found

    def duplicate_repo(self, source: Repo, namespace: str, name: str, *, private: bool) -> Repo:
        """A copy of ``source`` as ``namespace/name``: every commit (under new ids, which are never
        reused), branch and tag, the metadata and search entry; ConflictError when the id is taken."""
        created = now()
        with self.db.transaction():
            self._claim(namespace, name)
            cursor = self.db.execute(
                "INSERT INTO repos (namespace, name, private, created_at, last_modified, card, summary, "
                "library_name, pipeline_tag) SELECT ?, ?, ?, ?, ?, card, summary, library_name, pipeline_tag "
                "FROM repos WHERE id = ? RETURNING id", (namespace, name, int(private), created, created, source.id))
            copy = cursor.fetchone()[0]
            commits = self.db.all("SELECT * FROM commits WHERE repo = ?", (source.id,))
            ids = {row["id"]: new_commit_id() for row in commits}
            self.db.executemany(
                "INSERT INTO commits (id, repo, parent, author, title, message, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(ids[r["id"]], copy, ids.get(r["parent"], r["parent"]), r["author"], r["title"], r["message"],
                  r["created_at"]) for r in commits])
            for old, new in ids.items():
                self.db.execute("INSERT INTO files (commit_id, path, sha256, size, git_oid, lfs) "
                                "SELECT ?, path, sha256, size, git_oid, lfs FROM files WHERE commit_id = ?", (new, old))
            self.db.executemany("INSERT INTO refs (repo, kind, name, target) VALUES (?, ?, ?, ?)",
                                [(copy, ref.kind, ref.name, ids[ref.target]) for ref in self.refs(source)])
            for table, column in (("repo_tags", "tag"), ("lfs_objects", "oid")):
                self.db.execute(f"INSERT INTO {table} (repo, {column}) SELECT ?, {column} FROM {table} WHERE repo = ?",
                                (copy, source.id))
            self.db.execute("INSERT INTO manifest_fts (rowid, name, description, tags, provider, license, pricing) "
                            "SELECT ?, name, description, tags, provider, license, pricing FROM manifest_fts "
                            "WHERE rowid = ?", (copy, source.id))
        found = self.repo(namespace, name, follow_moves=False)
        assert found is not None
        return found

    def delete_repo(self, repo: Repo) -> None:
        with self.db.transaction():
            self.db.execute("DELETE FROM manifest_fts WHERE rowid = ?", (repo.id,))
            self.db.execute("DELETE FROM refs WHERE repo = ?", (repo.id,))
            self.db.execute("DELETE FROM repos WHERE id = ?", (repo.id,))

    def set_private(self, repo: Repo, private: bool) -> None:
        self.db.execute("UPDATE repos SET private = ? WHERE id = ?", (int(private), repo.id))

    def count_download(self, repo: Repo, user: str | None = None) -> None:
        """One download of ``repo``: the total, today's count (UTC; trending sums the last 7 days)
        and, for a signed-in ``user``, that they downloaded it (reviews show it)."""
        stamp = now()
        with self.db.transaction():
            self.db.execute("UPDATE repos SET downloads = downloads + 1 WHERE id = ?", (repo.id,))
            self.db.execute("INSERT INTO daily_downloads (repo, day, count) VALUES (?, ?, 1) "
                            "ON CONFLICT (repo, day) DO UPDATE SET count = daily_downloads.count + 1", (repo.id, stamp[:10]))
            if user is not None:
                self.db.execute("INSERT INTO user_downloads (repo, user, first_at) VALUES (?, ?, ?) "
                                "ON CONFLICT DO NOTHING",
                                (repo.id, user, stamp))

    # -- revisions -------------------------------------------------------------------------
    def resolve(self, repo: Repo, revision: str) -> str | None:
        """The commit a branch, tag, full commit id or (≥ 7 hex) commit prefix names."""
        rows = self.db.all("SELECT kind, target FROM refs WHERE repo = ? AND name = ?", (repo.id, revision))
        for kind in ("branch", "tag"):
            for row in rows:
                if row["kind"] == kind:
                    return row["target"]
        if 7 <= len(revision) <= 40 and all(c in "0123456789abcdef" for c in revision):
            found = self.db.all("SELECT id FROM commits WHERE repo = ? AND id >= ? AND id < ? LIMIT 2",
                                (repo.id, revision, revision + "g"))
            if len(found) == 1:
                return found[0]["id"]
        return None

    def branch_head(self, repo: Repo, branch: str, *, lock: bool = False) -> str | None:
        """The branch's head. With ``lock`` (the commit path), inside a transaction on PostgreSQL
        the ref row stays locked until it ends, so concurrent commits to one branch (from any
        replica) take turns and the later one sees the earlier one's head (SQLite's BEGIN
        IMMEDIATE already admits one writer). Readers leave it unlocked: a page view must not
        wait behind a commit in progress."""
        suffix = " FOR UPDATE" if lock and self.db.dialect == dialect.POSTGRESQL else ""
        row = self.db.one(f"SELECT target FROM refs WHERE repo = ? AND kind = 'branch' AND name = ?{suffix}",
                          (repo.id, branch))
        return row["target"] if row else None

    def commit(self, commit_id: str) -> Commit:
        row = self.db.one("SELECT * FROM commits WHERE id = ?", (commit_id,))
        assert row is not None, commit_id
        return _commit(row)

    def history(self, head: str, *, offset: int, limit: int) -> list[Commit]:
        """Commits reachable from ``head`` by parent links, newest first."""
        rows = self.db.all(
            "WITH RECURSIVE chain(id, depth) AS (SELECT ?, 0 UNION ALL "
            "SELECT c.parent, chain.depth + 1 FROM commits c JOIN chain ON c.id = chain.id "
            "WHERE c.parent IS NOT NULL) "
            "SELECT c.* FROM chain JOIN commits c ON c.id = chain.id ORDER BY chain.depth LIMIT ? OFFSET ?",
            (head, limit, offset))
        return [_commit(r) for r in rows]

    def files(self, commit_id: str) -> list[FileRow]:
        rows = self.db.all("SELECT * FROM files WHERE commit_id = ? ORDER BY path", (commit_id,))
        return [_file(r) for r in rows]

    def file(self, commit_id: str, path: str) -> FileRow | None:
        row = self.db.one("SELECT * FROM files WHERE commit_id = ? AND path = ?", (commit_id, path))
        return _file(row) if row else None

    # -- refs ------------------------------------------------------------------------------
    def refs(self, repo: Repo) -> list[Ref]:
        rows = self.db.all("SELECT kind, name, target FROM refs WHERE repo = ? ORDER BY kind, name", (repo.id,))
        return [Ref(r["kind"], r["name"], r["target"]) for r in rows]

    def ref(self, repo: Repo, kind: str, name: str) -> Ref | None:
        row = self.db.one("SELECT target FROM refs WHERE repo = ? AND kind = ? AND name = ?", (repo.id, kind, name))
        return Ref(kind, name, row["target"]) if row else None

    def add_ref(self, repo: Repo, kind: str, name: str, target: str) -> bool:
        """Create a branch or tag; False when one of that name exists."""
        cursor = self.db.execute("INSERT INTO refs (repo, kind, name, target) VALUES (?, ?, ?, ?) "
                                 "ON CONFLICT DO NOTHING",
                                 (repo.id, kind, name, target))
        return cursor.rowcount == 1

    def delete_ref(self, repo: Repo, kind: str, name: str) -> bool:
        cursor = self.db.execute("DELETE FROM refs WHERE repo = ? AND kind = ? AND name = ?", (repo.id, kind, name))
        return cursor.rowcount == 1

    # -- LFS objects -----------------------------------------------------------------------
    def grant_object(self, repo: Repo, oid: str) -> None:
        """Record that ``oid`` was uploaded through an upload URL issued for ``repo``."""
        self.db.execute("INSERT INTO lfs_objects (repo, oid) VALUES (?, ?) ON CONFLICT DO NOTHING", (repo.id, oid))

    def object_available(self, repo: Repo, oid: str, namespaces: tuple[str, ...]) -> bool:
        """May a commit to ``repo`` reference the stored object ``oid`` without uploading it?

        Yes when it was uploaded for this repo, or is a file of a repo the committer can read
        (public, or in one of ``namespaces``); knowing a digest alone never grants the bytes.
        """
        marks = ",".join("?" * len(namespaces)) or "NULL"
        row = self.db.one(
            "SELECT 1 FROM lfs_objects WHERE repo = ? AND oid = ? UNION ALL "
            "SELECT 1 FROM files f JOIN commits c ON c.id = f.commit_id JOIN repos r ON r.id = c.repo "
            f"WHERE f.sha256 = ? AND (r.private = 0 OR r.namespace IN ({marks})) LIMIT 1",
            (repo.id, oid, oid, *namespaces))
        return row is not None

    # -- writing commits (call inside db.transaction()) ------------------------------------
    def write_commit(self, repo: Repo, branch: str, parent: str, files: dict[str, FileRow], *,
                     author: str, title: str, message: str) -> str:
        """Insert a commit with the full file list and move ``branch`` to it."""
        commit = self._insert_commit(repo.id, parent, author, title, message, files)
        cursor = self.db.execute(
            "UPDATE refs SET target = ? WHERE repo = ? AND kind = 'branch' AND name = ? AND target = ?",
            (commit, repo.id, branch, parent))
        if cursor.rowcount != 1:  # the caller checked the head inside this transaction
            raise RuntimeError(f"branch {branch} of {repo.repo_id} moved during a commit")
        self.db.execute("UPDATE repos SET last_modified = ? WHERE id = ?", (now(), repo.id))
        return commit

    def _insert_commit(self, repo_id: int, parent: str | None, author: str, title: str, message: str,
                       files: dict[str, FileRow]) -> str:
        commit = new_commit_id()
        self.db.execute("INSERT INTO commits (id, repo, parent, author, title, message, created_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)", (commit, repo_id, parent, author, title, message, now()))
        self.db.executemany("INSERT INTO files (commit_id, path, sha256, size, git_oid, lfs) "
                            "VALUES (?, ?, ?, ?, ?, ?)",
                            [(commit, f.path, f.sha256, f.size, f.git_oid, int(f.lfs)) for f in files.values()])
        return commit

    def set_metadata(self, repo: Repo, *, card: dict[str, Any], summary: dict[str, Any] | None,
                     tags: list[str], library_name: str | None, pipeline_tag: str | None) -> None:
        """What main's README and manifest say, denormalised for listing and filtering."""
        self.db.execute("UPDATE repos SET card = ?, summary = ?, library_name = ?, pipeline_tag = ? WHERE id = ?",
                        (json.dumps(card, default=str), json.dumps(summary) if summary else None,
                         library_name, pipeline_tag, repo.id))
        self.db.execute("DELETE FROM repo_tags WHERE repo = ?", (repo.id,))
        self.db.executemany("INSERT INTO repo_tags (repo, tag) VALUES (?, ?) ON CONFLICT DO NOTHING",
                            [(repo.id, tag) for tag in tags])
