"""Listing indexes: the storefront's and ``/api/models``' default sorts (most downloads, newest,
last modified) read in index order, so a page of 20 out of 100,000 repos stops after the first
rows that match instead of sorting every repo (``search.query_models``; ties broken by repo id as
its ORDER BY does). The same statements on SQLite and PostgreSQL, idempotent.
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

INDEXES = {
    "repos_downloads": "repos (downloads DESC, namespace, name)",
    "repos_created": "repos (created_at DESC, namespace, name)",
    "repos_modified": "repos (last_modified DESC, namespace, name)",
}


def upgrade() -> None:
    bind = op.get_bind()
    for name, columns in INDEXES.items():
        bind.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {name} ON {columns}")


def downgrade() -> None:
    bind = op.get_bind()
    for name in INDEXES:
        bind.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
