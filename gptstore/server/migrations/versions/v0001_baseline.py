"""Baseline: the catalog's schema 7 (accounts, repos, commits, refs, files, search indexes, keys,
redirects, catalogue, reviews, downloads, gating, metering) on SQLite or PostgreSQL.

Every statement is idempotent, so running it on a catalog created before Alembic managed the
schema creates only what is missing and stamps it.
"""

from alembic import op

from gptstore.server import dialect

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    engine = dialect.POSTGRESQL if bind.dialect.name == "postgresql" else dialect.SQLITE
    for statement in dialect.statements(dialect.schema(engine)):
        bind.exec_driver_sql(statement)


def downgrade() -> None:
    raise NotImplementedError("the baseline cannot be undone: restore a backup instead")
