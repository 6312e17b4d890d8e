"""compose.yaml agrees with the code: names, commands, order, secrets.

There is no Docker engine in CI, so these tests read the files instead of running them.
"""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from batchcore import register
from batchcore.queries import Q
from batchcore.settings import known_names

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"
CONDUCTOR_CHECK = ROOT / "deploy" / "conductor" / "healthcheck.sh"

# Services built from this project's image that read batchcore.settings.
OWN_SERVICES = ("gateway", "submit-workers", "poller", "migrate")
WORKER_SERVICES = ("submit-workers", "poller")
SIMULATOR = "workbench-sim"
ONE_SHOT = "migrate"
# Secrets that must be given, never defaulted: ${NAME:?message} wherever they are used.
SECRETS = (
    "POSTGRES_PASSWORD",
    "PIPELINES_DB_PASSWORD",
    "CONDUCTOR_DB_PASSWORD",
    "CONDUCTOR_MONITOR_DB_PASSWORD",
    "GATEWAY_API_TOKENS",
    "WORKBENCH_API_TOKEN",
)
# Where each project service must listen inside its container, and so be health-checked.
HEALTH = {
    "gateway": ("GATEWAY_BIND", "/readyz"),
    "submit-workers": ("WORKER_HEALTH_BIND", "/healthz"),
    "poller": ("WORKER_HEALTH_BIND", "/healthz"),
}
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}")


@pytest.fixture(scope="module")
def compose_text() -> str:
    return COMPOSE_FILE.read_text()


@pytest.fixture(scope="module")
def compose(compose_text: str) -> dict:
    return yaml.safe_load(compose_text)


@pytest.fixture(scope="module")
def services(compose: dict) -> dict[str, dict]:
    return compose["services"]


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _command(service: dict) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def _argv_lists(command: list[str]) -> list[list[str]]:
    """The programs a command runs, looking inside `sh -c "a && b"`."""
    if command[:2] == ["sh", "-c"] or command[:2] == ["/bin/sh", "-c"]:
        parts = re.split(r"&&|\|\||;", command[2])
        argvs = [shlex.split(part) for part in parts if part.strip()]
        return [argv[1:] if argv and argv[0] == "exec" else argv for argv in argvs]
    return [command]


def _module_file(module: str) -> Path:
    """The source file `python -m module` or a `module:attr` import would load."""
    base = ROOT.joinpath(*module.split("."))
    package_main = base / "__main__.py"
    return package_main if package_main.exists() else base.with_suffix(".py")


def _files_run_by(argv: list[str]) -> list[Path]:
    program = Path(argv[0]).name
    if program.startswith("python"):
        if argv[1] == "-m":
            return [_module_file(argv[2])]
        if argv[1] == "-c":
            return []
        return [ROOT / argv[1]]
    if program == "gunicorn":
        files = [ROOT / argv[argv.index("-c") + 1]] if "-c" in argv else []
        app = argv[-1]
        return [*files, _module_file(app.split(":", 1)[0])]
    raise AssertionError(f"unexpected program in a compose command: {argv}")


def _url_port(url: str) -> int:
    return urlsplit(url).port or 80


def _healthcheck_text(service: dict) -> str:
    test = service["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else test


def _strings_in_package(package: str) -> set[str]:
    """Every upper-case string constant in a package's sources (the env names it can read)."""
    names: set[str] = set()
    for path in (ROOT / package).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            value = node.value if isinstance(node, ast.Constant) else None
            if isinstance(value, str) and re.fullmatch(r"[A-Z][A-Z0-9_]+", value):
                names.add(value)
    return names


def test_compose_spec_without_version_key(compose: dict) -> None:
    assert "version" not in compose, "the Compose spec has no top-level version key"
    assert set(compose["services"]) >= {
        "postgres",
        "conductor",
        "migrate",
        "gateway",
        "submit-workers",
        "poller",
        "workbench-sim",
        "proxy",
    }


def test_every_long_running_service_has_a_healthcheck_and_restarts(services: dict) -> None:
    for name, service in services.items():
        if name == ONE_SHOT:
            continue
        check = service.get("healthcheck")
        assert check, f"service {name} has no healthcheck"
        assert not check.get("disable"), f"service {name} disables its healthcheck"
        assert check.get("test"), f"service {name} has a healthcheck without a test"
        assert service.get("restart") == "unless-stopped", f"service {name} must restart"


def test_migrate_is_a_one_shot(services: dict) -> None:
    migrate = services[ONE_SHOT]
    # Quoted in YAML: a bare `no` would load as False and Compose would reject it.
    assert migrate.get("restart") == "no"
    assert "healthcheck" not in migrate
    migrate_argv, register_argv = _argv_lists(_command(migrate))
    assert (migrate_argv, register_argv[:2]) == (
        ["python", "-m", "batchcore.migrate"],
        ["python", "scripts/register_workflows.py"],
    ), "migrate must apply the migrations, then (only if they succeed) register the workflows"
    assert "&&" in _command(migrate)[-1]
    # A loop left from an earlier deployment must not go on with outdated definitions.
    options = register.parser().parse_args(register_argv[2:])
    assert options.replace_poller_loop == "if-changed"
    assert not options.dry_run and options.server is None


def test_project_services_only_set_variables_the_settings_module_reads(services: dict) -> None:
    known = known_names()
    for name in OWN_SERVICES:
        unknown = set(_environment(services[name])) - known
        assert not unknown, f"{name} sets variables batchcore.settings never reads: {unknown}"


def test_simulator_only_sets_variables_it_reads(services: dict) -> None:
    env = _environment(services[SIMULATOR])
    read = _strings_in_package("workbench_sim")
    assert {"WORKBENCH_API_TOKEN", "SIM_PORT", "SIM_HOST"} <= read  # the scan itself works
    unknown = set(env) - read
    assert not unknown, f"{SIMULATOR} sets variables workbench_sim never reads: {unknown}"
    assert env.get("SIM_HOST") == "0.0.0.0", "the simulator must listen beyond loopback"


def test_required_variables_are_set(services: dict) -> None:
    for name in OWN_SERVICES:
        env = _environment(services[name])
        assert {"DATABASE_URL", "CONDUCTOR_SERVER_URL", "LOG_LEVEL"} <= set(env), name
    assert "GATEWAY_API_TOKENS" in _environment(services["gateway"])
    for name in WORKER_SERVICES:
        env = _environment(services[name])
        assert {"WORKBENCH_API_URL", "WORKBENCH_API_TOKEN", "POLL_INTERVAL_SECONDS"} <= set(env)
    assert "WORKBENCH_API_TOKEN" in _environment(services[SIMULATOR])


def test_urls_point_at_the_right_services(services: dict) -> None:
    sim_port = int(_environment(services[SIMULATOR])["SIM_PORT"])
    for name in OWN_SERVICES:
        env = _environment(services[name])
        conductor_url = env["CONDUCTOR_SERVER_URL"]
        assert conductor_url.endswith("/api"), f"{name}: CONDUCTOR_SERVER_URL must end in /api"
        assert urlsplit(conductor_url).hostname == "conductor"
        database = urlsplit(INTERPOLATION.sub("value", env["DATABASE_URL"]))
        assert database.scheme == "postgresql"
        assert database.path == "/pipelines", f"{name} must use the pipelines database"
        assert (database.username, database.hostname, database.port) == (
            "pipelines",
            "postgres",
            5432,
        ), f"{name}: DATABASE_URL must log in as pipelines on the postgres service"
        if "WORKBENCH_API_URL" in env:
            url = env["WORKBENCH_API_URL"]
            assert urlsplit(url).hostname == SIMULATOR
            assert _url_port(url) == sim_port


def test_every_conductor_server_url_ends_with_api(compose: dict) -> None:
    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "CONDUCTOR_SERVER_URL":
                    yield str(value)
                yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    values = list(walk(compose))
    assert values
    assert all(v.endswith("/api") for v in values), values


def test_health_checks_probe_the_port_each_service_binds(services: dict) -> None:
    for name, (bind_var, path) in HEALTH.items():
        bind = _environment(services[name])[bind_var]
        host, _, port = bind.rpartition(":")
        assert host == "0.0.0.0", f"{name}: {bind_var} must listen beyond loopback"
        check = _healthcheck_text(services[name])
        assert f"127.0.0.1:{port}{path}" in check, f"{name} must probe {path} on port {port}"
        # The slim Python image has no curl: the probe is Python's urllib.
        assert "urllib" in check and "curl" not in check
    sim_port = _environment(services[SIMULATOR])["SIM_PORT"]
    assert f"127.0.0.1:{sim_port}/healthz" in _healthcheck_text(services[SIMULATOR])
    assert _healthcheck_text(services["conductor"]) == "CMD /app/healthcheck.sh"
    assert "http://localhost:8080/health" in CONDUCTOR_CHECK.read_text()
    assert "pg_isready" in _healthcheck_text(services["postgres"])


def _conditions(service: dict) -> dict[str, str]:
    depends = service.get("depends_on") or {}
    assert isinstance(depends, dict), "depends_on must name a condition for each dependency"
    return {dep: spec.get("condition") for dep, spec in depends.items()}


def test_start_order(services: dict) -> None:
    assert _conditions(services[ONE_SHOT]) == {
        "postgres": "service_healthy",
        "conductor": "service_healthy",
    }
    assert _conditions(services["conductor"]).get("postgres") == "service_healthy"
    for name in ("gateway", *WORKER_SERVICES):
        conditions = _conditions(services[name])
        assert conditions.get(ONE_SHOT) == "service_completed_successfully", name
    for name in WORKER_SERVICES:
        assert _conditions(services[name]).get(SIMULATOR) == "service_healthy", name


def test_secrets_are_required_wherever_they_are_used(compose_text: str, services: dict) -> None:
    used = {secret: 0 for secret in SECRETS}
    for match in INTERPOLATION.finditer(compose_text):
        name, modifier = match.groups()
        if name in used:
            used[name] += 1
            assert re.fullmatch(r":\?.+", modifier), (
                f"${{{name}{modifier}}}: secrets must be ${{{name}:?message}} so that a "
                "missing one stops compose"
            )
    assert all(used.values()), f"secrets never used: {[k for k, v in used.items() if not v]}"
    # No secret is written into the file as a literal value either.
    for name, service in services.items():
        for key, value in _environment(service).items():
            if key in SECRETS:
                assert value.startswith("${") and ":?" in value, f"{name}.{key} is hard-coded"


def test_poller_is_its_own_service(services: dict) -> None:
    assert _command(services["poller"]) == ["python", "-m", "conductor_workers", "poller"]
    assert _command(services["submit-workers"]) == ["python", "-m", "conductor_workers", "submit"]
    assert _command(services[SIMULATOR]) == ["python", "-m", "workbench_sim"]
    assert _command(services["gateway"])[0] == "gunicorn"


def test_project_services_share_the_project_image(services: dict) -> None:
    images = {services[name].get("image") for name in (*OWN_SERVICES, SIMULATOR)}
    assert len(images) == 1, f"one image for every project service, got {images}"
    for name in (*OWN_SERVICES, SIMULATOR):
        build = services[name].get("build")
        assert build, f"{name} must build from the Dockerfile"
        assert (ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile")).exists()


def test_files_named_in_commands_exist(services: dict) -> None:
    for name in (*OWN_SERVICES, SIMULATOR):
        for argv in _argv_lists(_command(services[name])):
            for path in _files_run_by(argv):
                assert path.is_file(), f"{name} runs {path.relative_to(ROOT)}, which is missing"


def test_bind_mounted_files_exist(services: dict) -> None:
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume["source"]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_postgres_creates_both_databases(services: dict) -> None:
    postgres = services["postgres"]
    assert str(postgres["image"]).startswith("postgres:15")
    init_dir = ROOT / "deploy" / "postgres" / "initdb"
    mounts = [v for v in postgres["volumes"] if "/docker-entrypoint-initdb.d" in v]
    assert mounts and mounts[0].split(":")[0] == "./deploy/postgres/initdb"
    script = "\n".join(p.read_text() for p in sorted(init_dir.glob("*.sh")))
    for database, password in (
        ("pipelines", "PIPELINES_DB_PASSWORD"),
        ("conductor", "CONDUCTOR_DB_PASSWORD"),
    ):
        assert re.search(rf'create_database {database} "\${password}"', script), database
        assert password in _environment(postgres)
    assert "CREATE ROLE" in script and "CREATE DATABASE" in script
    # The workers' read-only role on Conductor's tables (conductor-oss/conductor#326).
    assert "CREATE ROLE conductor_monitor LOGIN PASSWORD :'password'" in script
    assert "default_transaction_read_only = on" in script
    assert "GRANT SELECT ON TABLES TO conductor_monitor" in script
    assert "CONDUCTOR_MONITOR_DB_PASSWORD" in _environment(postgres)


def test_conductor_runs_the_local_stacks_release_on_postgres(services: dict) -> None:
    conductor = services["conductor"]
    pinned = re.search(
        r'CONDUCTOR_VERSION = os\.environ\.get\("CONDUCTOR_VERSION", "([^"]+)"\)',
        (ROOT / "stack" / "config.py").read_text(),
    )
    assert pinned, "stack/config.py no longer pins CONDUCTOR_VERSION the way this test reads it"
    # The image is Conductor's own release plus psql (for the health check), built here.
    context = ROOT / conductor["build"]["context"]
    base = re.search(r"^FROM (\S+)$", (context / "Dockerfile").read_text(), re.MULTILINE)
    assert base and base.group(1) == f"conductoross/conductor:{pinned.group(1)}"
    assert conductor["image"].endswith(f":{pinned.group(1)}")
    env = _environment(conductor)
    properties_name = env["CONFIG_PROP"]
    mount = next(v for v in conductor["volumes"] if v.split(":")[1].startswith("/app/config/"))
    source, target = mount.split(":")[:2]
    assert target == f"/app/config/{properties_name}"
    properties = dict(
        line.split("=", 1)
        for line in (ROOT / source).read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    expected = {
        "conductor.db.type": "postgres",
        "conductor.queue.type": "postgres",
        "conductor.indexing.enabled": "true",
        "conductor.indexing.type": "postgres",
        "conductor.elasticsearch.version": "0",
        "conductor.app.ownerEmailMandatory": "false",
        "loadSample": "false",
        "spring.datasource.url": "jdbc:postgresql://postgres:5432/conductor",
        "spring.datasource.username": "conductor",
        # One decider pass or task update per workflow at a time, within this one server.
        "conductor.app.workflowExecutionLockEnabled": "true",
        "conductor.workflow-execution-lock.type": "local_only",
    }
    assert {k: properties.get(k) for k in expected} == expected
    # The password is not in the file: Spring resolves it from the container's environment.
    assert properties["spring.datasource.password"] == "${CONDUCTOR_DB_PASSWORD}"
    assert "CONDUCTOR_DB_PASSWORD" in env
    assert any(str(p).endswith(":5000") for p in conductor.get("ports", [])), "UI port"


@pytest.mark.parametrize(
    "relative",
    [
        "gateway/gunicorn.conf.py",
        "conductor_workers/__main__.py",
        "workbench_sim/__main__.py",
        "batchcore/migrate.py",
        "scripts/register_workflows.py",
    ],
)
def test_entry_points_exist(relative: str) -> None:
    assert (ROOT / relative).is_file()


def test_conductors_health_check_fails_on_a_stuck_queue_as_the_workers_see_it(services):
    """conductor-oss/conductor#326: the check script's query is the named query's, and the
    workers read Conductor's database as the read-only role, with the same threshold."""
    conductor = services["conductor"]
    dockerfile = (ROOT / conductor["build"]["context"] / "Dockerfile").read_text()
    assert "postgresql-client" in dockerfile, "the check needs psql in Conductor's image"
    assert "COPY healthcheck.sh /app/healthcheck.sh" in dockerfile
    script = CONDUCTOR_CHECK.read_text()
    checked = re.search(r"<<'SQL'\n(.*?)\nSQL\n", script, re.DOTALL).group(1)
    named = Q["conductor_stuck_messages"]
    condition = " ".join(named[named.index("FROM queue_message") :].split())
    assert " ".join(checked.split()).endswith(
        condition.replace("%(stuck_after_seconds)s", ":stuck_after")
    )
    assert "default_transaction_read_only=on" in script and "TimeZone=UTC" in script
    assert "conductor-oss/conductor#326" in script and "exit 1" in script
    assert "-Duser.timezone=UTC" in _environment(conductor)["JAVA_OPTS"]
    threshold = _environment(conductor)["CONDUCTOR_STUCK_MESSAGE_SECONDS"]
    for name in WORKER_SERVICES:
        env = _environment(services[name])
        assert env["CONDUCTOR_STUCK_MESSAGE_SECONDS"] == threshold, name
        url = urlsplit(INTERPOLATION.sub("value", env["CONDUCTOR_DATABASE_URL"]))
        assert (url.username, url.hostname, url.port, url.path) == (
            "conductor_monitor",
            "postgres",
            5432,
            "/conductor",
        ), name
