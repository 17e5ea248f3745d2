"""Alembic environment of the review store: runs on the connection the store hands over
(``config.attributes["connection"]``), all pending migrations in one transaction, so a failed
migration leaves the previous schema (and ``alembic_version``) as it was."""

from __future__ import annotations

from alembic import context

from tigertrap.classify.review.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata,
                  transaction_per_migration=False, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
