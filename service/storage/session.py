"""Engine and sessions from the settings' database URL; schema upgrades through Alembic.

Engines are per process: a process forked from one that already used the database (Celery's prefork pool, uvicorn's
workers) starts with no engine and opens connections of its own; the inherited pool is dropped without closing the
parent's connections (``Engine.dispose(close=False)``, as SQLAlchemy advises for forks).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from service.settings import get_settings

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


_ENGINES: dict[str, Engine] = {}


def engine_for(url: str) -> Engine:
    """One engine per URL and process, made on first use."""
    engine = _ENGINES.get(url)
    if engine is None:
        engine = _ENGINES[url] = _create_engine(url)
    return engine


def _forget_engines_after_fork() -> None:
    """In a forked child: drop the parent's engines (their pooled connections stay the parent's)."""
    for engine in _ENGINES.values():
        engine.dispose(close=False)
    _ENGINES.clear()
    _factory.cache_clear()


def _create_engine(url: str) -> Engine:
    """SQLite gets WAL, a busy timeout and foreign keys; other databases a checked (pre-pinged) pool."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.close()

        return engine
    # Connections are kept, not opened per burst: opening one costs PostgreSQL a process (tens of ms of CPU), and
    # overflow connections are closed on return, so a pool smaller than the API's thread pool (40) churns under load.
    return create_engine(url, pool_pre_ping=True, pool_size=40, max_overflow=10)


os.register_at_fork(after_in_child=_forget_engines_after_fork)


def get_engine() -> Engine:
    return engine_for(get_settings().resolved_database_url)


@lru_cache(maxsize=4)
def _factory(url: str) -> sessionmaker[Session]:  # cleared after a fork, with the engines
    return sessionmaker(bind=engine_for(url), expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = _factory(get_settings().resolved_database_url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def upgrade_database(url: str | None = None) -> None:
    """Bring the schema to the newest Alembic revision (safe to call from several processes on PostgreSQL)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", (url or get_settings().resolved_database_url).replace("%", "%%"))
    command.upgrade(config, "head")
