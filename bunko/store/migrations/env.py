from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool, text

from bunko.store.db import Base

config = context.config
target_metadata = Base.metadata
# Every api, worker and operator pod migrates at start, and a rollout starts several at once: on
# PostgreSQL they take this advisory lock in the migration's transaction, so one migrates and the
# others, once it commits, find the schema at head. (SQLite is one process's file.)
MIGRATION_LOCK_KEY = 0x62756E6B6F  # "bunko"


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = engine_from_config(config.get_section(config.config_ini_section, {}),
                                     prefix="sqlalchemy.", poolclass=pool.NullPool)
    with connectable.connect() as connection:
        # render_as_batch: SQLite cannot ALTER most things; batch mode rebuilds tables there.
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
