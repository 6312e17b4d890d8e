"""Count PostgreSQL round trips on the client: every statement, BEGIN, COMMIT and ROLLBACK.

psycopg2 sends BEGIN by itself (one round trip of its own) before the first statement of a
transaction when the connection is not in autocommit mode, and COMMIT/ROLLBACK only when a
transaction is open. A connection subclass sees all of them; `install()` makes every
connection opened afterwards one of them, so the project's Database is measured as is.
"""

from __future__ import annotations

import threading

import psycopg2
import psycopg2.extensions
import psycopg2.extras

_IDLE = psycopg2.extensions.TRANSACTION_STATUS_IDLE


class Counter:
    """Round trips by kind, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts = {"statement": 0, "begin": 0, "commit": 0, "rollback": 0, "connect": 0}

    def add(self, kind: str) -> None:
        with self._lock:
            self.counts[kind] += 1

    @property
    def round_trips(self) -> int:
        """Statements, BEGINs, COMMITs and ROLLBACKs (opening a connection is counted apart)."""
        return sum(v for k, v in self.counts.items() if k != "connect")


COUNTER = Counter()


def _before_statement(conn) -> None:
    if not conn.autocommit and conn.info.transaction_status == _IDLE:
        COUNTER.add("begin")
    COUNTER.add("statement")


class CountingCursor(psycopg2.extensions.cursor):
    def execute(self, query, vars=None):
        _before_statement(self.connection)
        return super().execute(query, vars)

    def executemany(self, query, vars_list):
        for vars in vars_list:
            self.execute(query, vars)


class CountingDictCursor(psycopg2.extras.RealDictCursor):
    def execute(self, query, vars=None):
        _before_statement(self.connection)
        return super().execute(query, vars)


class CountingConnection(psycopg2.extensions.connection):
    """A connection whose cursors, commits and rollbacks are counted."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        COUNTER.add("connect")

    def cursor(self, *args, **kwargs):
        factory = kwargs.get("cursor_factory")
        if factory is psycopg2.extras.RealDictCursor:
            kwargs["cursor_factory"] = CountingDictCursor
        elif factory is None:
            kwargs["cursor_factory"] = CountingCursor
        else:
            raise TypeError(f"no counting cursor for {factory!r}")
        return super().cursor(*args, **kwargs)

    def commit(self):
        if self.info.transaction_status != _IDLE:
            COUNTER.add("commit")
        return super().commit()

    def rollback(self):
        if self.info.transaction_status != _IDLE:
            COUNTER.add("rollback")
        return super().rollback()


_CONNECT = psycopg2.connect


def counting_connect(*args, **kwargs):
    """psycopg2.connect, making a CountingConnection unless told another factory."""
    kwargs.setdefault("connection_factory", CountingConnection)
    return _CONNECT(*args, **kwargs)


def install() -> Counter:
    """Count the round trips of every connection opened from now on in this process.

    psycopg2's pools (batchcore.db.Database's too) open connections with psycopg2.connect,
    looked up at each call, so replacing it reaches them whatever was imported first.
    """
    psycopg2.connect = counting_connect
    return COUNTER
