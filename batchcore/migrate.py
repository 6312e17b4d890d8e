"""Apply sql/migrations/*.sql in order, each in its own transaction, recording what ran."""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

import psycopg2

# sql/ ships inside the package as batchcore._sql (setup.cfg), so an installed package
# finds its migrations from any working directory.
MIGRATIONS_DIR = files("batchcore._sql") / "migrations"
# Any constant works; it only keeps two runners from applying the same file at once.
LOCK_KEY = 7_204_113_001

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(RuntimeError):
    """A migration failed or an applied one was edited afterwards."""


def discover(directory: Traversable = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files, ordered by their numeric prefix; none at all is an error."""
    paths = directory.iterdir() if directory.is_dir() else []
    found = []
    for path in sorted((p for p in paths if p.name.endswith(".sql")), key=lambda p: p.name):
        version, _, name = path.name.removesuffix(".sql").partition("_")
        if not version.isdigit():
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        found.append(Migration(version, name, path.read_text(encoding="utf-8")))
    if not found:
        # Never report an empty set as "up to date": the package was installed without its SQL.
        raise MigrationError(f"no migrations found in {directory} (looked for NNNN_name.sql)")
    return found


def apply(dsn: str, migrations: list[Migration] | None = None) -> list[str]:
    """Apply what is not yet applied; return the versions applied now."""
    migrations = discover() if migrations is None else migrations
    conn = psycopg2.connect(dsn)
    applied_now: list[str] = []
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur.execute("SELECT version, checksum FROM schema_migrations")
            done = dict(cur.fetchall())
        for m in migrations:
            if m.version in done:
                if done[m.version] != m.checksum:
                    raise MigrationError(
                        f"migration {m.version}_{m.name} was changed after it was applied; "
                        "add a new migration instead"
                    )
                continue
            try:
                with conn, conn.cursor() as cur:
                    cur.execute(m.sql)
                    cur.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s,%s,%s)",
                        (m.version, m.name, m.checksum),
                    )
            except psycopg2.Error as exc:
                raise MigrationError(
                    f"migration {m.version}_{m.name} failed and was rolled back: {exc}"
                ) from exc
            log.info("applied migration %s_%s", m.version, m.name)
            applied_now.append(m.version)
    finally:
        try:
            with conn, conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        finally:
            conn.close()
    return applied_now


def main(argv: list[str] | None = None) -> int:
    from . import settings

    argparse.ArgumentParser(
        prog="python -m batchcore.migrate",
        description="Apply the schema migrations shipped with the package to the database of "
        "DATABASE_URL (or the libpq PG* variables), in order; a no-op when up to date.",
    ).parse_args(argv)
    logging.basicConfig(level="INFO", format="%(levelname)s %(name)s: %(message)s")
    try:
        migrations = discover(MIGRATIONS_DIR)
        cfg = settings.load(require=["DATABASE_URL"])
        applied = apply(cfg.database_url, migrations)
    except (settings.SettingsError, MigrationError, psycopg2.OperationalError) as exc:
        print(f"migrate: {exc}", file=sys.stderr)
        return 1
    print(
        f"migrate: {len(applied)} migration(s) applied"
        + (f": {', '.join(applied)}" if applied else " (up to date)")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
