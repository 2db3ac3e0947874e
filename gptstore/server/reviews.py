"""Ratings and reviews: one per user per model, 1–5 stars and up to 2,000 characters of text.

A review belongs to its author, who may replace or delete it; it is marked ``downloaded`` when
the author downloaded the model from this store (``user_downloads``, written when a signed-in
user fetches the model's counting file). Reviews are rows of the repo, so they are exactly as
visible as the repo (the handlers check that first) and go with it when it is deleted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from . import dialect
from .db import Database
from .timeutil import now

MAX_TEXT = 2000
#: most reviews one page lists
MAX_PAGE = 100


@dataclass(frozen=True)
class Review:
    user: str
    stars: int
    text: str
    created_at: str
    updated_at: str
    downloaded: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_SELECT = ("SELECT v.*, EXISTS (SELECT 1 FROM user_downloads d WHERE d.repo = v.repo AND d.user = v.user) "
           "AS downloaded FROM reviews v")


def _review(row: Any) -> Review:
    return Review(row["user"], row["stars"], row["text"], row["created_at"], row["updated_at"], bool(row["downloaded"]))


def _summary(average: Any, count: int) -> dict[str, Any]:
    return {"average": round(average, 2) if average is not None else None, "count": count}


class Reviews:
    def __init__(self, db: Database) -> None:
        self.db = db

    def list(self, repo: int, *, offset: int = 0, limit: int = MAX_PAGE) -> list[Review]:
        """A page of a repo's reviews, the most recently written first."""
        rows = self.db.all(f"{_SELECT} WHERE v.repo = ? ORDER BY v.updated_at DESC, v.user LIMIT ? OFFSET ?",
                           (repo, limit, offset))
        return [_review(row) for row in rows]

    def get(self, repo: int, user: str) -> Review | None:
        row = self.db.one(f"{_SELECT} WHERE v.repo = ? AND v.user = ?", (repo, user))
        return _review(row) if row else None

    def summary(self, repo: int) -> dict[str, Any]:
        """``{"average": 4.5 | None, "count": n}``."""
        row = self.db.one("SELECT AVG(stars) AS average, COUNT(*) AS count FROM reviews WHERE repo = ?", (repo,))
        return _summary(row["average"] if row else None, row["count"] if row else 0)

    def summaries(self, repos: list[int]) -> dict[int, dict[str, Any]]:
        """:meth:`summary` of each of ``repos`` in one query (a repo without reviews has count 0)."""
        marks = ",".join("?" * len(repos)) or "NULL"
        rows = self.db.all(f"SELECT repo, AVG(stars) AS average, COUNT(*) AS count FROM reviews "
                           f"WHERE repo IN ({marks}) GROUP BY repo", repos)
        found = {row["repo"]: _summary(row["average"], row["count"]) for row in rows}
        return {repo: found.get(repo) or _summary(None, 0) for repo in repos}

    def put(self, repo: int, user: str, stars: int, text: str) -> tuple[Review, bool]:
        """Write ``user``'s review of ``repo`` (replacing theirs); the review and whether it is new.
        ``stars`` and ``text`` are validated by the caller (the table checks the stars again)."""
        stamp = now()
        with self.db.transaction():  # one upsert: two first reviews racing on two replicas cannot both insert
            row = self.db.one(
                "INSERT INTO reviews (repo, user, stars, text, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (repo, user) DO UPDATE SET stars = excluded.stars, text = excluded.text, "
                f"updated_at = excluded.updated_at RETURNING {dialect.upsert_inserted(self.db.dialect)}",
                (repo, user, stars, text, stamp, stamp))
            created = bool(row[0])
        found = self.get(repo, user)
        assert found is not None
        return found, created

    def delete(self, repo: int, user: str) -> bool:
        """Delete ``user``'s review of ``repo``; False when they had none."""
        return self.db.execute("DELETE FROM reviews WHERE repo = ? AND user = ?", (repo, user)).rowcount == 1

    def downloaded(self, repo: int, user: str) -> bool:
        return self.db.one("SELECT 1 FROM user_downloads WHERE repo = ? AND user = ?", (repo, user)) is not None
