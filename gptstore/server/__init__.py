"""``gptstore server``: a private, Hub-compatible GPT store (ASGI app under uvicorn).

Modules, one concept each:

    settings      ServerSettings and the data directory layout
    db            opens the relational catalog (SQLite or PostgreSQL, by URL, through SQLAlchemy)
    dialect       what differs between the two engines: SQL spelling, full-text search, JSON, schema
    migrations    the schema as Alembic revisions, applied when the catalog is opened
    accounts      users, orgs, members, tokens (also the admin CLI's SDK)
    keys          publishers' public keys per namespace; the --require-signed commit check
    catalog       repos, commits, refs, files
    search        list_models: full-text + filters + sort + pages
    catalogue     the storefront's facets of each model (category, use cases, price, verified
                  publisher, …), refreshed from main's manifest and signature; rating and trending
    reviews       ratings and reviews, one per user per model; per-user downloads mark them
    gating        gated and paid access: each repo's `gated` setting, access requests, who may
                  read files (the Hub's GatedRepo answer); the decide_access plugin hook
    metering      usage reports consumers send (taken once per id), per model, consumer and day;
                  usage and revenue for the namespace's members and the provider dashboard
    metadata      README card and manifest summary of a repo
    gitpatterns   .gitattributes (which paths go LFS) and .gitignore patterns, as git reads them
    migrate_store moving a store (``server migrate --from``): catalog and blobs copied to another
                  catalog and blob store, re-runnable to catch up, every digest verified
    storage       blobs (the library's engine, or a bucket), git ids, multipart staging
    objectstore   S3-compatible blobs (--blobs s3://…): presigned uploads, verified staging, redirects
    commits       the NDJSON commit, applied in one transaction
    auth          tokens on requests, visibility and write rules, signed upload URLs
    http          errors with X-Error-Code (and their status table), bodies with limits, ranges,
                  file streaming
    limits        slow or oversized requests and stalled downloads (timeouts, header size)
    api_*         the handlers (api_manage: move, duplicate, repo lists, access checks and the
                  redirect from a moved repo's old id; it reuses api_repos' repo-id check;
                  api_store: the storefront's reviews API; api_access: access requests;
                  api_metering: usage reports in, usage and revenue out)
    routing       routes on the raw (percent-encoded) path; plain handlers in the threadpool
    app           the Starlette app: routes, exception handlers, lifespan, middleware; serve()
    timeutil      timestamps in the one format the Hub client parses

Layers, top to bottom: a module imports only from the rows below its own, and the modules of
one row do not import each other (an import-linter contract in pyproject.toml; ``make test``
runs ``lint-imports``)::

    app
    routing | limits
    api_manage
    api_access | api_files | api_metering | api_repos | api_revisions | api_store | api_uploads
    context
    commits
    auth | search
    catalogue | reviews | gating | metering
    accounts | keys | catalog | migrate_store
    db | http | storage | settings | metadata | gitpatterns | timeutil
    objectstore | migrations
    dialect

Importing this package imports neither starlette nor uvicorn; ``gptstore.server.app`` does.
"""

from __future__ import annotations

from .settings import ServerSettings

__all__ = ["ServerSettings"]
