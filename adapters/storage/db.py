"""The project's own database: engines and schema migrations.

SQLite file by default, PostgreSQL (through psycopg 3) when a `postgresql://` URL is
given. The schema only ever changes through the Alembic migrations in
`adapters/storage/migrations`, applied with `upgrade(url)`; nothing calls `create_all` on a live
database.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_upgrade_lock = threading.Lock()

T = TypeVar("T")


def transient(error: BaseException) -> bool:
    """Worth trying again: the database is busy or the connection dropped, not a wrong statement."""
    if isinstance(error, sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.TimeoutError):
        return True
    return isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated


class Retried:
    """A store's unit of work run again, bounded and jittered, while the database fails it
    transiently (or with one of the store's own `also` errors); past the attempts it raises
    `unavailable(reason)`, with nothing of it written."""

    def __init__(
        self,
        *,
        attempts: int,
        max_wait_seconds: float,
        unavailable: Callable[[str], Exception],
        also: tuple[type[BaseException], ...] = (),
    ):
        self._also = also
        self._unavailable = unavailable
        self._retrying = Retrying(
            stop=stop_after_attempt(attempts),
            wait=wait_random_exponential(multiplier=0.02, max=max_wait_seconds),
            retry=retry_if_exception(self._worth_again),
            reraise=True,
        )

    def _worth_again(self, error: BaseException) -> bool:
        return isinstance(error, self._also) or transient(error)

    def __call__(self, work: Callable[[], T], what: str) -> T:
        try:
            return self._retrying(work)
        except Exception as error:
            if self._worth_again(error):
                raise self._unavailable(f"{what}: the database did not answer ({type(error).__name__})") from error
            raise


def normalize_url(url: str) -> str:
    """Use the psycopg 3 driver for plain PostgreSQL URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def engine_for(url: str, **kwargs: Any) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:  # pragma: no cover - driver glue
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def dialect_insert(engine: Engine) -> Callable[[Table], postgresql.Insert] | Callable[[Table], sqlite.Insert]:
    """The dialect's INSERT, which knows ON CONFLICT (upserts) on SQLite and PostgreSQL alike."""
    if engine.dialect.name == "postgresql":
        return postgresql.insert
    if engine.dialect.name == "sqlite":
        return sqlite.insert
    raise RuntimeError(  # pragma: no cover - o2c runs on SQLite or PostgreSQL
        f"o2c's database runs on SQLite or PostgreSQL, not {engine.dialect.name}"
    )


def alembic_config(url: str | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        # '%' is an interpolation character in Alembic's config parser.
        config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision` (all migrations by default)."""
    from alembic import command

    with _upgrade_lock:
        engine = engine_for(url)
        try:
            with engine.begin() as connection:
                config = alembic_config(url)
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
        finally:
            engine.dispose()
