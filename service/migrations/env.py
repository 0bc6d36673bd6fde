"""Alembic environment: runs migrations on the configured URL; on PostgreSQL under an advisory lock."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from service.storage.models import Base
from service.storage.session import engine_for

LOCK_ID = 74_205_331  # any constant: serialises concurrent upgrades of API and workers


def run_migrations_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    engine = engine_for(url)
    with engine.connect() as connection:
        postgres = connection.dialect.name == "postgresql"
        if postgres:
            connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": LOCK_ID})
            connection.commit()
        try:
            context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=not postgres)
            with context.begin_transaction():
                context.run_migrations()
        finally:
            if postgres:
                connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": LOCK_ID})
                connection.commit()


run_migrations_online()
