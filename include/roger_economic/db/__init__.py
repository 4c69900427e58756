"""Database access: one engine per URL, sessions, and migrations.

SQLite (a file under ``var/``) is the embedded default; any SQLAlchemy URL in
``ROGER_ECONOMIC_DB_URL`` (PostgreSQL in production) takes its place.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

import roger_economic_migrations
from roger_economic.settings import environment

PROJECT_ROOT = Path(__file__).resolve().parents[3]
MIGRATIONS = Path(roger_economic_migrations.__file__).resolve().parent  # the Alembic scripts, beside the domain


def default_url() -> str:
    url = environment().db_url
    if url:
        return url
    var = PROJECT_ROOT / "var"
    var.mkdir(exist_ok=True)
    return f"sqlite:///{var / 'roger_economic.db'}"


def engine(url: str | None = None) -> Engine:
    """The engine for ``url`` (default: ``ROGER_ECONOMIC_DB_URL`` as it is now), one per URL and process.

    Cached by the URL it resolves to, not by ``None``: a caller that names no URL must not keep an engine
    for a database the environment no longer names.
    """
    return _engine(url or default_url())


def dispose_engines() -> None:
    """Close every engine this process made (tests switching databases; a process after a fork)."""
    for eng in _engines.values():
        eng.dispose()
    _engines.clear()


_engines: dict[str, Engine] = {}


def _engine(url: str) -> Engine:
    eng = _engines.get(url)
    if eng is None:
        eng = _engines.setdefault(url, _create(url))
    return eng


def _json_loads(text: str | bytes) -> Any:
    """A JSON column read back: msgspec's decoder, a few times faster than the standard one on the master
    data and payloads every step reads; what it refuses and the standard one takes (a lone surrogate escape
    in a Roger text, ``NaN``, a number beyond a double) is read by the standard one, with the same result."""
    try:
        return msgspec.json.decode(text)
    except msgspec.MsgspecError:
        return json.loads(text)


def _create(url: str) -> Engine:
    if url.startswith("sqlite"):
        eng = create_engine(url, connect_args={"timeout": 60}, json_deserializer=_json_loads)

        @event.listens_for(eng, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:  # concurrent task processes share the file
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return eng
    options: dict[str, Any] = {}
    if url.startswith(("postgresql://", "postgresql+psycopg2://")):
        # UPDATEs of many rows by primary key (a posted batch) in pages, not one round trip per row
        options["executemany_mode"] = "values_plus_batch"
    # connections kept, not opened and closed: a step's threads, the lease keeper and the step itself each hold
    # one at once (with 5 kept, a busy load opened and closed the others: a server process each time); at most
    # 10 as before, more only for more threads (an agreement past its deadline keeps its thread's connection)
    kept = max(10, environment().load_threads + 2)
    eng = create_engine(url, pool_size=kept, max_overflow=0, json_deserializer=_json_loads, **options)
    _ping_when_idle(eng)
    return eng


IDLE_BEFORE_PING = 10.0  # seconds a pooled connection may rest before it is checked on checkout


def _ping_when_idle(eng: Engine) -> None:
    """Check a pooled connection before use only if it rested a while.

    Long-lived processes (the API server's UI page, the benchmark) outlive a database restart, so a
    connection that sat in the pool must be checked. ``pool_pre_ping`` checks on *every* checkout: a
    round trip per unit of work, which the loader's many short transactions cannot afford. A
    connection handed back a moment ago is alive; one that rested ``IDLE_BEFORE_PING`` seconds gets a
    ping, and a dead one is replaced (the pool retries the checkout on ``DisconnectionError``).
    """

    @event.listens_for(eng, "checkin")
    def _rested_from(_dbapi_conn: Any, record: Any) -> None:
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(eng, "checkout")
    def _ping_if_rested(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("checked_in")
        if since is None or time.monotonic() - since < IDLE_BEFORE_PING:
            return  # new, or handed back a moment ago
        try:
            alive = eng.dialect.do_ping(dbapi_conn)  # the dialect's own ping (no transaction left open)
        except Exception as exc:
            raise DisconnectionError(f"pooled connection is gone: {type(exc).__name__}") from None
        if alive is False:
            raise DisconnectionError("pooled connection is gone")


@cache
def _factory(bind: Engine) -> sessionmaker[Session]:
    # one factory per engine: each sessionmaker() makes a new Session class, and SQLAlchemy sets up event
    # dispatch for every new class (too costly to pay per unit of work)
    return sessionmaker(bind, expire_on_commit=False)


@contextmanager
def session(url: str | None = None) -> Iterator[Session]:
    """A unit of work: committed when the block ends, rolled back on error."""
    with _factory(engine(url))() as sess:
        try:
            yield sess
            sess.commit()
        except BaseException:
            sess.rollback()
            raise


def in_chunks(values: list[Any], size: int = 500) -> list[list[Any]]:
    """``values`` in slices short enough for one SQL ``IN (...)`` on every database."""
    return [values[start : start + size] for start in range(0, len(values), size)]


def migrate(url: str | None = None) -> None:
    """Bring the schema to the newest Alembic revision."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", (url or default_url()).replace("%", "%%"))
    command.upgrade(cfg, "head")
