"""The psycopg2 pool and the transaction() context: commit on success, roll back otherwise."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import psycopg2.extras
import psycopg2.pool

from .errors import DatabaseUnavailable

log = logging.getLogger(__name__)
psycopg2.extras.register_uuid()

# Errors that mean the connection (or the server) is gone, not that the SQL was wrong.
CONNECTION_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError)


class Database:
    """A bounded, thread-safe pool that reopens connections with backoff after an outage."""

    def __init__(self, dsn: str, maxconn: int = 10, connect_timeout: float = 5.0):
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._pool = psycopg2.pool.ThreadedConnectionPool(0, maxconn, dsn, connect_timeout=3)
        # The pool raises when empty; a semaphore makes callers wait for a free connection.
        self._slots = threading.BoundedSemaphore(maxconn)

    def _checkout(self):
        deadline = time.monotonic() + self._connect_timeout
        attempt = 0
        while True:
            try:
                conn = self._pool.getconn()
                if conn.closed:
                    self._pool.putconn(conn, close=True)
                    continue
                return conn
            except CONNECTION_ERRORS as exc:
                attempt += 1
                delay = min(1.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0)
                if time.monotonic() + delay > deadline:
                    raise DatabaseUnavailable(
                        f"The database cannot be reached: {_first_line(exc)}"
                    ) from exc
                time.sleep(delay)

    @contextmanager
    def transaction(self) -> Iterator[psycopg2.extensions.cursor]:
        """A cursor (rows as dicts) in one transaction; commit on success, roll back otherwise."""
        if not self._slots.acquire(timeout=self._connect_timeout + 30):
            raise DatabaseUnavailable("No database connection became free in time")
        conn = None
        broken = False
        try:
            conn = self._checkout()
            try:
                with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                    yield cur
                conn.commit()
            except CONNECTION_ERRORS as exc:
                broken = True
                raise DatabaseUnavailable(
                    f"The database connection was lost: {_first_line(exc)}"
                ) from exc
            except BaseException:
                if not conn.closed:
                    try:
                        conn.rollback()
                    except CONNECTION_ERRORS:
                        broken = True
                raise
        finally:
            if conn is not None:
                self._pool.putconn(conn, close=broken or bool(conn.closed))
            self._slots.release()

    def ping(self) -> None:
        """Raise DatabaseUnavailable unless a trivial query answers."""
        with self.transaction() as cur:
            cur.execute("SELECT 1")

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.closeall()


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


_process_db: Database | None = None
_process_lock = threading.Lock()


def process_database(dsn: str, maxconn: int = 10, connect_timeout: float = 5.0) -> Database:
    """This process's pool, made on first use (worker processes are spawned, not forked)."""
    global _process_db
    with _process_lock:
        if _process_db is None:
            _process_db = Database(dsn, maxconn, connect_timeout)
        return _process_db
