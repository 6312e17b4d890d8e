"""The psycopg2 pool and the transaction() context: commit on success, roll back otherwise."""

from __future__ import annotations

import logging
import random
import select
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


class _KeepingPool(psycopg2.pool.ThreadedConnectionPool):
    """psycopg2's threaded pool, opening connections on demand and keeping them for reuse.

    psycopg2 opens `minconn` connections up front and closes every connection given back
    while `minconn` are already idle. With minconn=0 (nothing opened at start, so importing
    the app never connects) that closed *every* connection given back: each transaction
    opened a new one (TCP, SCRAM authentication, a new server backend), under the pool's
    lock. Raising minconn once the pool exists keeps up to `maxconn` idle connections.
    """

    def __init__(self, maxconn: int, *args, **kwargs):
        super().__init__(0, maxconn, *args, **kwargs)
        self.minconn = maxconn


def _server_hung_up(conn) -> bool:
    """True when an idle connection has something to read: a server that ended the session
    (a restart, pg_terminate_backend, an idle timeout) left its last message and EOF there."""
    try:
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError, psycopg2.Error):
        return True


class Database:
    """A bounded, thread-safe pool that reopens connections with backoff after an outage."""

    def __init__(self, dsn: str, maxconn: int = 10, connect_timeout: float = 5.0):
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._pool = _KeepingPool(maxconn, dsn, connect_timeout=3)
        # The pool raises when empty; a semaphore makes callers wait for a free connection.
        self._slots = threading.BoundedSemaphore(maxconn)

    def _checkout(self):
        deadline = time.monotonic() + self._connect_timeout
        attempt = 0
        while True:
            try:
                conn = self._pool.getconn()
                if conn.closed or _server_hung_up(conn):
                    # A kept connection the server has closed since: open another.
                    self._pool.putconn(conn, close=True)
                    if time.monotonic() > deadline:
                        raise DatabaseUnavailable("The database keeps closing new connections")
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
        with self._cursor(autocommit=False) as cur:
            yield cur

    @contextmanager
    def autocommit(self) -> Iterator[psycopg2.extensions.cursor]:
        """A cursor (rows as dicts) whose every statement commits by itself.

        For work that is one statement, atomic on its own: one round trip to the server,
        where transaction() takes three (psycopg2 sends BEGIN and COMMIT apart).
        """
        with self._cursor(autocommit=True) as cur:
            yield cur

    @contextmanager
    def _cursor(self, autocommit: bool) -> Iterator[psycopg2.extensions.cursor]:
        if not self._slots.acquire(timeout=self._connect_timeout + 30):
            raise DatabaseUnavailable("No database connection became free in time")
        conn = None
        broken = False
        try:
            conn = self._checkout()
            try:
                conn.autocommit = autocommit
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
        with self.autocommit() as cur:
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
