"""The catalog's schema as Alembic revisions (``versions/``), applied when the catalog is opened.

Revision ``0001`` is the baseline: schema 7 as ``dialect.py`` writes it for each engine (every
statement idempotent). A SQLite catalog of an older ``user_version`` is first brought to schema 7
by ``db.py`` (its idempotent script plus ``ADDED_COLUMNS``), then stamped by running the baseline,
which then creates nothing. Revision ``0002`` adds the listing's sort indexes (both engines),
``0003`` the trigram index on repo ids that search reads on PostgreSQL. A later schema change is a
new revision here (``op.add_column`` …, valid on both engines), and :data:`HEAD` moves to it.

:func:`upgrade` runs without an ``env.py`` or ``alembic.ini``: the server and ``gptstore server
migrate`` call it directly with the engine's connection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: the newest revision; a catalog stamped with it is opened without loading Alembic at all
HEAD = "0003"

_HERE = Path(__file__).parent


def current(connection: Any) -> str | None:
    """The revision the catalog on ``connection`` (a SQLAlchemy Connection) is stamped with, or None."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: Any) -> None:
    """Apply, in order and in the connection's transaction, every revision the catalog lacks.
    A catalog stamped with a revision unknown here (a newer gptstore's) raises ``LookupError``."""
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    script = ScriptDirectory(str(_HERE), version_locations=[str(_HERE / "versions")])

    def revisions(revision: Any, context: Any) -> Any:
        return script._upgrade_revs("head", revision)  # what ``alembic upgrade head`` runs

    context = MigrationContext.configure(connection, opts={"script": script, "fn": revisions})
    try:
        with Operations.context(context):
            context.run_migrations()
    except CommandError as exc:
        raise LookupError(str(exc)) from None
