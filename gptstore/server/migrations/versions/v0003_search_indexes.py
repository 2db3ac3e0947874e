"""Search indexes: on PostgreSQL, a trigram index (``pg_trgm``) on the repo id, so a search's
substring match of ids (``search.query_models``) reads the index instead of every repo: ~46 ms
for a rare word at 100,000 models without it, under 1 ms with it (``bench/scale.py``).

``pg_trgm`` ships with PostgreSQL (Debian's ``postgresql`` package, the official images, and the
managed services) and is a trusted extension: the database's owner may create it. Where it cannot
be created, the revision logs why and applies without the index: search still answers, more slowly
for words that match few repos. SQLite scans its (smaller, local) table: nothing to do there.
"""

import logging

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

log = logging.getLogger("gptstore.server")
INDEX = "CREATE INDEX IF NOT EXISTS repos_id_trgm ON repos USING GIN ((namespace || '/' || name) gin_trgm_ops)"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    try:
        with bind.begin_nested():  # a savepoint: a refusal must not abort the migration's transaction
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except Exception as exc:  # noqa: BLE001 - any refusal (not installed, no privilege): say it, go on
        log.warning("search: no trigram index on repo ids (CREATE EXTENSION pg_trgm failed: %s), so searches "
                    "for rare words read every repo; to add it, run as the database's owner or a superuser: "
                    "CREATE EXTENSION pg_trgm; %s;", str(exc).splitlines()[0][:200], INDEX)
        return
    bind.exec_driver_sql(INDEX)


def downgrade() -> None:
    op.get_bind().exec_driver_sql("DROP INDEX IF EXISTS repos_id_trgm")
