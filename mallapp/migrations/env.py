"""Alembic environment: runs migrations online against the configured URL."""

from alembic import context
from sqlalchemy import pool

from mallapp.db import make_engine
from mallapp.domain.models import metadata

config = context.config


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    engine = make_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata,
                          render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("mallapp migrations run online only")
run_migrations_online()
