"""A project-local PostgreSQL cluster under .stack/pg, and its two databases."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
from pathlib import Path

from .config import PORTS, STACK_DIR

PG_VERSION = "15"
PG_BIN = Path(f"/usr/lib/postgresql/{PG_VERSION}/bin")
PG_DIR = STACK_DIR / "pg"
DATA_DIR = PG_DIR / "data"
SOCKET_DIR = PG_DIR / "run"
OS_USER = "postgres" if os.geteuid() == 0 else getpass.getuser()


def ensure_installed() -> None:
    """Install Debian's PostgreSQL 15 server when its binaries are missing."""
    if (PG_BIN / "postgres").exists():
        return
    if os.geteuid() != 0:
        raise SystemExit(
            f"PostgreSQL {PG_VERSION} is not installed; run: sudo apt-get install "
            f"postgresql-{PG_VERSION}"
        )
    print(f"installing postgresql-{PG_VERSION} with apt-get (no system cluster is created)")
    # Debian would otherwise create and start a 'main' cluster that this project must not own.
    conf = Path("/etc/postgresql-common/createcluster.conf")
    conf.parent.mkdir(parents=True, exist_ok=True)
    text = conf.read_text() if conf.exists() else ""
    if "create_main_cluster = false" not in text:
        conf.write_text(text + "\ncreate_main_cluster = false\n")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", f"postgresql-{PG_VERSION}"], check=True, env=env
    )


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", OS_USER, "--", *cmd] if os.geteuid() == 0 else cmd


def _make_reachable(path: Path) -> None:
    """Let the postgres OS user reach the data directory (a root-owned 0700 parent stops it)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def ensure_cluster(admin_password: str) -> None:
    """initdb once; later calls only refresh the settings file."""
    ensure_installed()
    PG_DIR.mkdir(parents=True, exist_ok=True)
    SOCKET_DIR.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        _make_reachable(PG_DIR)
        shutil.chown(PG_DIR, OS_USER, OS_USER)
        shutil.chown(SOCKET_DIR, OS_USER, OS_USER)
    if not (DATA_DIR / "PG_VERSION").exists():
        pwfile = PG_DIR / ".pwfile"
        pwfile.write_text(admin_password + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, OS_USER, OS_USER)
        pwfile.chmod(0o600)
        try:
            subprocess.run(
                _as_owner(
                    [
                        str(PG_BIN / "initdb"),
                        "-D",
                        str(DATA_DIR),
                        "-U",
                        "stack_admin",
                        "--auth-local=scram-sha-256",
                        "--auth-host=scram-sha-256",
                        f"--pwfile={pwfile}",
                        "--encoding=UTF8",
                        "--locale=C.UTF-8",
                    ]
                ),
                check=True,
                stdout=subprocess.DEVNULL,
            )
        finally:
            pwfile.unlink(missing_ok=True)
    settings = DATA_DIR / "stack.conf"
    settings.write_text(
        f"port = {PORTS.postgres}\n"
        "listen_addresses = '127.0.0.1'\n"
        f"unix_socket_directories = '{SOCKET_DIR}'\n"
        "max_connections = 300\n"
        "shared_buffers = 256MB\n"
        "log_destination = 'stderr'\n"
        "logging_collector = off\n"
        "log_min_messages = warning\n"
    )
    conf = DATA_DIR / "postgresql.conf"
    if "include_if_exists = 'stack.conf'" not in conf.read_text():
        with conf.open("a") as f:
            f.write("\ninclude_if_exists = 'stack.conf'\n")


def server_command() -> list[str]:
    """The foreground server command the process manager runs."""
    return [str(PG_BIN / "postgres"), "-D", str(DATA_DIR)]


def bootstrap(admin_url: str, roles: dict[str, str]) -> None:
    """Create (or re-password) each role and its own database; safe to repeat."""
    import psycopg2
    from psycopg2 import sql

    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for name, password in roles.items():
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
                verb = "ALTER" if cur.fetchone() else "CREATE"
                cur.execute(
                    sql.SQL(verb + " ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(name)),
                    (password,),
                )
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if not cur.fetchone():
                    cur.execute(
                        sql.SQL("CREATE DATABASE {} OWNER {}").format(
                            sql.Identifier(name), sql.Identifier(name)
                        )
                    )
            # Tests clone a fresh database per test from a template owned by the service role.
            cur.execute("ALTER ROLE pipelines CREATEDB")
    finally:
        conn.close()


MONITOR_ROLE = "conductor_monitor"


def create_queue_monitor(admin_url: str, password: str) -> None:
    """A login role that can only read Conductor's queue_message (CONDUCTOR_DATABASE_URL).

    Run once Conductor's Flyway has created the table; safe to repeat. Its sessions are
    read-only and in UTC, the zone the stack's Conductor JVM writes deliver_on in.
    """
    import psycopg2
    from psycopg2 import sql

    role = sql.Identifier(MONITOR_ROLE)
    conn = psycopg2.connect(admin_url.rsplit("/", 1)[0] + "/conductor")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (MONITOR_ROLE,))
            verb = "ALTER" if cur.fetchone() else "CREATE"
            cur.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD %s").format(role), (password,))
            for statement in (
                "ALTER ROLE {} SET default_transaction_read_only = on",
                "ALTER ROLE {} SET TimeZone = 'UTC'",
                "GRANT CONNECT ON DATABASE conductor TO {}",
                "GRANT USAGE ON SCHEMA public TO {}",
                "GRANT SELECT ON TABLE queue_message TO {}",
            ):
                cur.execute(sql.SQL(statement).format(role))
    finally:
        conn.close()
