"""setup.cfg ships every package and its data; the Docker image installs what setup.cfg says.

No Docker engine runs here: the Dockerfile's own dependency extraction is run against
setup.cfg instead. tests/integration/test_wheel.py installs a built wheel for real.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest
import yaml
from setuptools.config.setupcfg import read_configuration

from tests.unit.test_compose import OWN_SERVICES, SIMULATOR, _argv_lists, _command, _files_run_by

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
# The top-level packages the wheel ships, and the data packages linked into batchcore.
ROOTS = ("batchcore", "conductor_workers", "gateway", "workbench_sim")
DATA_PACKAGES = {"batchcore._sql": "sql", "batchcore._workflow_defs": "workflow_defs"}


@pytest.fixture(scope="module")
def services() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]


@pytest.fixture(scope="module")
def options() -> dict:
    """setup.cfg's [options], read the way setuptools reads them for a build."""
    return read_configuration(str(ROOT / "setup.cfg"))["options"]


def _instructions(text: str) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    joined = text.replace("\\\n", " ")
    return [
        " ".join(line.split())
        for line in joined.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def _runtime_stage(instructions: list[str]) -> list[str]:
    last_from = max(i for i, line in enumerate(instructions) if line.upper().startswith("FROM "))
    return instructions[last_from:]


def test_pyproject_keeps_only_the_build_system_and_the_tools_settings():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "project" not in data, "metadata and dependencies live in setup.cfg, the one place"
    assert set(data) == {"build-system", "tool"}
    assert data["build-system"]["build-backend"] == "setuptools.build_meta"


def test_the_top_level_data_folders_are_linked_into_the_package():
    for package, folder in DATA_PACKAGES.items():
        link = ROOT.joinpath(*package.split("."))
        assert link.is_symlink(), f"{link.relative_to(ROOT)} must link to {folder}/"
        assert link.resolve() == ROOT / folder
        assert (ROOT / folder / "__init__.py").is_file(), "a regular package, found everywhere"


def test_every_package_of_the_service_ships_with_its_data(options):
    packages = set(options["packages"])
    assert {*ROOTS, *DATA_PACKAGES} <= packages
    for root in ROOTS:
        below = {
            str(p.parent.relative_to(ROOT)).replace("/", ".")
            for p in (ROOT / root).rglob("__init__.py")
        }
        assert below <= packages, f"left out of the wheel: {below - packages}"
    assert not {"tests", "scripts", "stack", "chaos", "bench"} & packages, "checkout tooling"


def test_sql_and_workflow_definitions_ship_as_package_data(options):
    for package, folder in DATA_PACKAGES.items():
        files = {
            p.relative_to(ROOT / folder).as_posix()
            for p in (ROOT / folder).rglob("*")
            if p.is_file() and p.suffix in (".sql", ".json")
        }
        globs = options["package_data"][package]
        shipped = {f for f in files if any(fnmatch(f, glob) for glob in globs)}
        assert files, f"nothing found under {folder}/"
        assert shipped == files, f"{folder}/ files left out of the package: {files - shipped}"


def test_the_editable_install_reads_the_top_level_folders():
    """Editing sql/ or workflow_defs/ in a checkout takes effect without reinstalling."""
    from batchcore import migrate, queries, registration

    assert Path(str(migrate.MIGRATIONS_DIR)).resolve() == ROOT / "sql" / "migrations"
    assert Path(str(queries.QUERIES_DIR)).resolve() == ROOT / "sql" / "queries"
    assert Path(str(registration.DEFINITIONS_DIR)).resolve() == ROOT / "workflow_defs"


def test_the_image_installs_the_runtime_dependencies_of_setup_cfg(options, tmp_path):
    runtime = _runtime_stage(_instructions(DOCKERFILE.read_text()))
    copy_at = runtime.index("COPY setup.cfg ./")
    run = next(line for line in runtime[copy_at:] if line.startswith("RUN python -c"))
    argv = shlex.split(run.removeprefix("RUN "))
    code = argv[argv.index("-c") + 1]
    assert argv[argv.index("-c") + 2 : argv.index("-c") + 4] == [">", "/tmp/requirements.txt"]
    assert "pip install -r /tmp/requirements.txt" in run
    # Run the Dockerfile's own extraction where the image would: beside a copy of setup.cfg.
    shutil.copy(ROOT / "setup.cfg", tmp_path / "setup.cfg")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == options["install_requires"]
    assert not any("pytest" in req for req in result.stdout.split()), "no test deps in the image"


def test_the_image_installs_the_project_from_its_wheel_not_editable():
    instructions = _instructions(DOCKERFILE.read_text())
    commands = "\n".join(line for line in instructions if line.startswith("RUN "))
    assert "--editable" not in commands and not any(
        " -e " in f" {line} " for line in commands.splitlines()
    )
    assert "pip wheel --no-deps --wheel-dir /wheels ." in commands
    runtime = _runtime_stage(instructions)
    assert "COPY --from=wheel /wheels /tmp/wheels" in runtime
    assert any("pip install --no-deps /tmp/wheels/*.whl" in line for line in runtime)
    # The runtime stage has no copy of the source tree: the installed package is what runs.
    copies = [line.split()[1:] for line in runtime if line.startswith("COPY ")]
    assert all(args[0] != "." for args in copies), copies


def test_dockerfile(services: dict) -> None:
    text = DOCKERFILE.read_text()
    instructions = [
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    ]
    froms = [line for line in instructions if line.upper().startswith("FROM ")]
    assert froms and froms[-1].split()[1].startswith("python:3.11-slim")
    users = [line.split()[1] for line in instructions if line.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must not run as root"
    commands = "\n".join(instructions)
    assert "[test]" not in commands and "pytest" not in commands, "no dev deps in the image"
    assert "COPY setup.cfg ./" in instructions, "runtime dependencies come from setup.cfg"
    cmd = next(line for line in reversed(instructions) if line.upper().startswith("CMD "))
    argv = yaml.safe_load(cmd[4:])  # the exec form is a JSON array
    assert argv == _command(services["gateway"]), "the default command is the gateway's"
    for path in _files_run_by(argv):
        assert path.is_file(), f"the Dockerfile's CMD needs {path.relative_to(ROOT)}"


def test_files_the_commands_name_by_path_are_in_the_image(services: dict) -> None:
    """The image holds the installed package, and beside it only the files named by path."""
    instructions = [
        " ".join(line.split()) for line in DOCKERFILE.read_text().splitlines() if line.strip()
    ]
    runtime = instructions[max(i for i, s in enumerate(instructions) if s.startswith("FROM ")) :]
    copied = {
        args[0]: args[1]
        for args in (line.split()[1:] for line in runtime if line.startswith("COPY "))
        if not args[0].startswith("--")
    }
    named = set()
    for name in (*OWN_SERVICES, SIMULATOR):
        for argv in _argv_lists(_command(services[name])):
            if argv[0].startswith("python") and argv[1] not in ("-m", "-c"):
                named.add(argv[1])
            if argv[0] == "gunicorn" and "-c" in argv:
                named.add(argv[argv.index("-c") + 1])
    assert named == {"scripts/register_workflows.py", "gateway/gunicorn.conf.py"}
    for path in named:
        assert copied.get(path) == f"{Path(path).parent}/", f"the image lacks {path}"


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".stack", ".env"} <= ignored
