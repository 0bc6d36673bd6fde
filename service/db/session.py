"""Engine and sessions from the settings' database URL; schema upgrades through Alembic."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from service.settings import get_settings

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


@lru_cache(maxsize=4)
def engine_for(url: str) -> Engine:
    """One engine per URL and process; SQLite gets WAL, a busy timeout and foreign keys."""
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


def get_engine() -> Engine:
    return engine_for(get_settings().resolved_database_url)


@lru_cache(maxsize=4)
def _factory(url: str) -> sessionmaker[Session]:
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
