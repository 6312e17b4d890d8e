"""The package installs like one: a wheel in a fresh virtualenv migrates an empty database,
and an editable install warns of nothing and reads the checkout's sql/.

Run from a directory outside the checkout, so that only the installed package can answer. The
runtime dependencies come from the project's own virtualenv (a path entry, not an install of
this project) to keep the test fast and offline apart from the build backend itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import psycopg2
import pytest

from tests.conftest import scratch_database

ROOT = Path(__file__).resolve().parents[2]
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", ".stack", ".stack-*", "build", "*.egg-info", "__pycache__", ".*_cache",
    ".hypothesis", "tests", "bench",
)  # fmt: skip


def _run(argv: list, cwd: Path, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{argv} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """A wheel of the working tree, installed without its dependencies into a fresh venv."""
    work = tmp_path_factory.mktemp("wheel")
    source, wheels, venv, cwd = (work / n for n in ("source", "wheels", "venv", "elsewhere"))
    shutil.copytree(ROOT, source, symlinks=True, ignore=NOT_SOURCES)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    pip = [sys.executable, "-m", "pip"]
    _run([*pip, "wheel", "--no-deps", "--quiet", "--wheel-dir", wheels, source], work, env)
    (wheel,) = wheels.glob("batch_pipeline_runs-*.whl")
    _run([sys.executable, "-m", "venv", "--without-pip", venv], work, env)
    python = venv / "bin" / "python"
    _run(
        [*pip, "--python", python, "install", "--no-deps", "--no-index", "--quiet", wheel],
        work,
        env,
    )
    site = _run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], work, env
    )
    # The dependencies: this virtualenv's site-packages as a plain path entry (its own .pth
    # files, among them the editable install of the checkout, are not processed from there).
    deps = sysconfig.get_paths()["purelib"]
    (Path(site.stdout.strip()) / "runtime_dependencies.pth").write_text(deps + "\n")
    cwd.mkdir()
    return {"venv": venv, "python": python, "cwd": cwd, "env": env}


def test_the_installed_package_is_what_runs(installed):
    where = _run(
        [
            installed["python"],
            "-c",
            "import batchcore.migrate as m, batchcore.registration as r; "
            "print(m.__file__); print(m.MIGRATIONS_DIR); print(r.DEFINITIONS_DIR)",
        ],
        installed["cwd"],
        installed["env"],
    ).stdout.splitlines()
    for path in where:
        assert Path(path).is_relative_to(installed["venv"]), path
        assert not Path(path).is_relative_to(ROOT), path


def test_a_wheel_migrates_an_empty_database_from_any_directory(installed, stack_env):
    with scratch_database(stack_env, "wheel") as url:
        env = {**installed["env"], "DATABASE_URL": url}
        first = _run([installed["python"], "-m", "batchcore.migrate"], installed["cwd"], env)
        applied = sorted(p.name[:4] for p in (ROOT / "sql" / "migrations").glob("*.sql"))
        assert f"{len(applied)} migration(s) applied: {', '.join(applied)}" in first.stdout
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            tables = {row[0] for row in cur.fetchall()}
            cur.execute("SELECT version FROM schema_migrations ORDER BY version")
            assert [row[0] for row in cur.fetchall()] == applied
        conn.close()
        assert {"pipelines", "pipeline_runs", "pipeline_run_events", "schema_migrations"} <= tables
        again = _run([installed["venv"] / "bin" / "batchcore-migrate"], installed["cwd"], env)
        assert "0 migration(s) applied (up to date)" in again.stdout


def test_the_installed_register_command_reads_the_shipped_definitions(installed, conductor_url):
    cwd, env = installed["cwd"], installed["env"]
    argv = ["--server", conductor_url, "--dry-run"]
    console = _run([installed["venv"] / "bin" / "batchcore-register", *argv], cwd, env)
    assert "register: task poll_status:" in console.stdout
    assert "register: workflow batch_status_poller v1:" in console.stdout
    # The Docker image's layout: the script beside the installed package, not the checkout.
    (cwd / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "register_workflows.py", cwd / "scripts")
    script = _run([installed["python"], "scripts/register_workflows.py", *argv], cwd, env)
    assert script.stdout == console.stdout


def test_an_editable_install_warns_of_nothing_and_reads_the_checkout(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path, env)
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-e", ROOT]
    install = _run(pip, tmp_path, env)
    output = install.stdout + install.stderr
    assert "warning" not in output.lower(), output
    where = _run(
        [python, "-c", "from batchcore import migrate; print(migrate.MIGRATIONS_DIR.resolve())"],
        tmp_path,
        {**env, "PYTHONPATH": sysconfig.get_paths()["purelib"]},  # the dependencies
    )
    assert where.stdout.strip() == str(ROOT / "sql" / "migrations")
