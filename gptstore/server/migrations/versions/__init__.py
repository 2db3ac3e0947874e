"""Alembic revisions of the catalog's schema, oldest first (see ``gptstore.server.migrations``)."""
