"""Static checks of the Docker deployment (no Docker engine needed).

docker-compose.yaml is parsed with PyYAML (which resolves the ``<<`` merge keys the way
Compose does) and the Dockerfile / requirements.txt are read as text. Each test guards a
property whose violation would break `docker compose up` or the running pipeline.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from roger_economic_airflow import ECONOMIC_POOL

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
REQUIREMENTS = ROOT / "requirements.txt"

AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "airflow-init",
    "flower",
)
LONG_RUNNING_AIRFLOW_SERVICES = tuple(s for s in AIRFLOW_SERVICES if s != "airflow-init")
SANDBOXES = {"roger-sandbox": ("sandboxes.roger", 8081), "economic-sandbox": ("sandboxes.economic", 8082)}
REQUIRED_SERVICES = {"postgres", "redis", *AIRFLOW_SERVICES, *SANDBOXES}

# Environment a service may add on top of the shared Airflow environment.
EXTRA_ENV_ALLOWED = {
    "airflow-worker": {"DUMB_INIT_SETSID"},
    "airflow-init": {"AIRFLOW_ADMIN_PASSWORD", "ECONOMIC_API_POOL_SLOTS"},
}
# Every variable that compose itself interpolates (``${VAR}``); anything else is a typo or
# a shell variable that should have been written ``$${VAR}``.
COMPOSE_VARIABLES = {
    "AIRFLOW_IMAGE_NAME",
    "AIRFLOW_UID",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW_ADMIN_PASSWORD",
    "ROGER_BASE_URL",
    "ECONOMIC_BASE_URL",
    "ECONOMIC_APP_SECRET_TOKEN",
    "ECONOMIC_APP_PUBLIC_TOKEN",
    "ECONOMIC_APPROVAL_BASE_URL",
    "ECONOMIC_API_POOL_SLOTS",
}


@pytest.fixture(scope="module")
def compose_text() -> str:
    return COMPOSE_FILE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def compose(compose_text: str) -> dict[str, Any]:
    data = yaml.safe_load(compose_text)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def common(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["x-airflow-common"]


@pytest.fixture(scope="module")
def common_env(common: dict[str, Any]) -> dict[str, str]:
    return common["environment"]


@pytest.fixture(scope="module")
def dockerfile_lines() -> list[str]:
    """Dockerfile instructions, comments dropped and continuation lines joined."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


@pytest.fixture(scope="module")
def requirements() -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep, f"requirements.txt entry {line!r} is not pinned with =="
        pins[_normalise(name)] = version.strip()
    return pins


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.split("[", 1)[0]).lower().strip()


def _command_text(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return "\n".join(command) if isinstance(command, list) else str(command)


def _healthcheck_text(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else str(test)


# --------------------------------------------------------------------------- compose


def test_required_services_exist(services: dict[str, Any]) -> None:
    assert set(services) >= REQUIRED_SERVICES, REQUIRED_SERVICES - set(services)


def test_airflow_services_share_image_and_environment(
    services: dict[str, Any], common: dict[str, Any], common_env: dict[str, str]
) -> None:
    assert common["build"] == "." or common["build"].get("context") == "."
    for name in AIRFLOW_SERVICES:
        service = services[name]
        assert service.get("build") == common["build"], name
        assert service.get("image") == common["image"], name
        env = service["environment"]
        differing = {k for k, v in common_env.items() if env.get(k) != v}
        assert not differing, f"{name} overrides shared settings {differing}"
        extra = set(env) - set(common_env) - EXTRA_ENV_ALLOWED.get(name, set())
        assert not extra, f"{name} has unexpected environment {extra}"


def test_common_environment_is_celery_postgres_redis(common_env: dict[str, str]) -> None:
    assert common_env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    sql = urlsplit(common_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert sql.scheme.startswith("postgresql") and sql.hostname == "postgres"
    backend = urlsplit(common_env["AIRFLOW__CELERY__RESULT_BACKEND"])
    assert backend.scheme.startswith("db+postgresql") and backend.hostname == "postgres"
    broker = urlsplit(common_env["AIRFLOW__CELERY__BROKER_URL"])
    assert broker.scheme == "redis" and broker.hostname == "redis" and broker.port == 6379
    assert common_env["AIRFLOW__CORE__LOAD_EXAMPLES"].lower() == "false"
    assert common_env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"].lower() in {"true", "false"}


def test_execution_api_points_at_the_api_server(services: dict[str, Any], common_env: dict[str, str]) -> None:
    url = urlsplit(common_env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert url.hostname == "airflow-apiserver" and url.path.rstrip("/") == "/execution"
    apiserver = services["airflow-apiserver"]
    assert apiserver["command"] == "api-server"
    assert any(str(p).endswith(f":{url.port}") for p in apiserver["ports"])


def test_secrets_come_from_the_environment_and_are_shared(common_env: dict[str, str]) -> None:
    # Both must be identical in every container (tokens minted by the API server are
    # verified by workers; connections encrypted by one are decrypted by the others),
    # which the shared anchor guarantees; they must never be committed literals.
    for key in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET"):
        assert re.fullmatch(rf"\$\{{{key}(:?[-?].*)?\}}", common_env[key]), common_env[key]


def test_project_state_database_is_separate_postgres_db(services: dict[str, Any], common_env: dict[str, str]) -> None:
    project = urlsplit(common_env["ROGER_ECONOMIC_DB_URL"])
    airflow = urlsplit(common_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert project.scheme.startswith("postgresql") and project.hostname == "postgres"
    database = project.path.lstrip("/")
    assert database == "roger_economic" and database != airflow.path.lstrip("/")

    # postgres creates that database on first start from docker/postgres-init/.
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["postgres"]["volumes"]}
    init_dir = ROOT / mounts["/docker-entrypoint-initdb.d"]
    scripts = [p for p in init_dir.iterdir() if p.suffix in {".sql", ".sh"}]
    assert any(
        re.search(rf"CREATE\s+DATABASE\s+\"?{database}\"?", p.read_text(encoding="utf-8"), re.IGNORECASE)
        for p in scripts
    ), f"no script in {init_dir} creates {database}"


def test_every_long_running_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if name == "airflow-init":
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


@pytest.mark.parametrize(
    ("service", "needle"),
    [
        ("postgres", "pg_isready"),
        ("redis", "redis-cli ping"),
        ("airflow-apiserver", "localhost:8080/api/v2/version"),
        ("airflow-scheduler", "localhost:8974/health"),
        ("airflow-dag-processor", "--job-type DagProcessorJob"),
        ("airflow-triggerer", "--job-type TriggererJob"),
        ("airflow-worker", "inspect ping"),
        ("roger-sandbox", "localhost:8081/_control/health"),
        ("economic-sandbox", "localhost:8082/_control/health"),
    ],
)
def test_healthcheck_probes_the_right_thing(services: dict[str, Any], service: str, needle: str) -> None:
    assert needle in _healthcheck_text(services[service])


def test_scheduler_health_server_is_enabled(common_env: dict[str, str]) -> None:
    # Without it nothing listens on :8974 and the scheduler is restarted forever.
    assert common_env["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"].lower() == "true"


def test_hostname_in_healthchecks_is_escaped_for_compose(services: dict[str, Any]) -> None:
    # ``${HOSTNAME}`` would be replaced by compose (with the host's value) before the
    # container ever runs the check; it must reach the shell as ``$${HOSTNAME}``.
    for name in ("airflow-dag-processor", "airflow-triggerer", "airflow-worker"):
        text = _healthcheck_text(services[name])
        assert "$${HOSTNAME}" in text and "HOSTNAME" not in text.replace("$${HOSTNAME}", ""), name


def test_worker_gets_warm_shutdown(services: dict[str, Any]) -> None:
    worker = services["airflow-worker"]
    assert worker["command"] == "celery worker"
    assert worker["environment"]["DUMB_INIT_SETSID"] == "0"


def test_airflow_services_mount_project_folders(services: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES:
        mounts = {v.split(":")[1]: v.split(":")[0] for v in services[name]["volumes"]}
        for folder in ("dags", "plugins", "include", "config", "logs"):
            assert mounts.get(f"/opt/airflow/{folder}") == f"./{folder}", (name, folder)
            assert (ROOT / folder).is_dir() or folder == "logs", f"./{folder} missing"


def test_airflow_init_migrates_and_creates_the_pool(services: dict[str, Any]) -> None:
    init = services["airflow-init"]
    script = _command_text(init)
    assert "set -e" in script or "set -euo pipefail" in script, "a failed step must fail airflow-init"
    steps = [
        "airflow db migrate",
        "roger-economic migrate",
        f"airflow pools set {ECONOMIC_POOL} ",
    ]
    positions = [script.find(step) for step in steps]
    assert all(p >= 0 for p in positions), dict(zip(steps, positions, strict=True))
    assert positions == sorted(positions), "the pool needs the migrated Airflow DB"
    assert "restart" not in init, "a one-shot init service must not be restarted"


def test_services_wait_for_databases_and_init(services: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
        if name != "airflow-init":
            assert depends["airflow-init"]["condition"] == "service_completed_successfully", name
    # Workers run tasks through the execution API.
    assert services["airflow-worker"]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"


def test_profiles(services: dict[str, Any]) -> None:
    for name in SANDBOXES:
        assert services[name].get("profiles") == ["sandboxes"], name
    assert services["flower"].get("profiles") == ["flower"]
    core = REQUIRED_SERVICES - set(SANDBOXES) - {"flower"}
    for name in core:
        assert not services[name].get("profiles"), f"{name} would not start with a plain `up`"
    in_sandbox_profile = {n for n, s in services.items() if "sandboxes" in s.get("profiles", [])}
    assert in_sandbox_profile == set(SANDBOXES)


def test_sandboxes_run_from_the_project_image(
    services: dict[str, Any], common: dict[str, Any], common_env: dict[str, str]
) -> None:
    for name, (module, port) in SANDBOXES.items():
        service = services[name]
        assert service["build"] == common["build"] and service["image"] == common["image"], name
        command = service["command"]
        assert command[:3] == ["python", "-m", module], name
        assert command[command.index("--port") + 1] == str(port), name
        assert "0.0.0.0" in command, f"{name} must listen beyond the container's loopback"
        assert any(str(p).endswith(f":{port}") for p in service["ports"]), name
        assert service["environment"].get("CONNECTION_CHECK_MAX_COUNT") == "0", name
    # The default base URLs reach the sandboxes on the compose network.
    assert "http://roger-sandbox:8081" in common_env["ROGER_BASE_URL"]
    assert "http://economic-sandbox:8082" in common_env["ECONOMIC_BASE_URL"]


def test_compose_only_interpolates_known_variables(compose_text: str) -> None:
    text = "\n".join(line for line in compose_text.splitlines() if not line.lstrip().startswith("#"))
    used = set(re.findall(r"(?<!\$)\$\{(\w+)", text)) | set(re.findall(r"(?<!\$)\$(\w+)", text))
    assert used <= COMPOSE_VARIABLES, f"unexpected compose interpolation: {used - COMPOSE_VARIABLES}"


def test_no_install_at_container_start(services: dict[str, Any], dockerfile_lines: list[str]) -> None:
    # Installing at start-up is slow, unpinned and runs again on every restart.
    for name, service in services.items():
        assert "_PIP_ADDITIONAL_REQUIREMENTS" not in service.get("environment", {}), name
    assert not any("_PIP_ADDITIONAL_REQUIREMENTS" in line for line in dockerfile_lines)


# --------------------------------------------------------------------------- image


def _from_image(dockerfile_lines: list[str]) -> str:
    froms = [line.split()[1] for line in dockerfile_lines if line.upper().startswith("FROM ")]
    assert froms, "Dockerfile has no FROM"
    return froms[-1]


def test_dockerfile_extends_official_airflow_3_3(dockerfile_lines: list[str]) -> None:
    match = re.fullmatch(r"apache/airflow:(3\.3\.\d+)-python(3\.\d+)", _from_image(dockerfile_lines))
    assert match, _from_image(dockerfile_lines)
    assert match.group(2) == "3.11"


def test_airflow_pin_matches_base_image(dockerfile_lines: list[str], requirements: dict[str, str]) -> None:
    # Otherwise pip replaces the Airflow the image was built and tested with.
    version = _from_image(dockerfile_lines).split(":")[1].split("-")[0]
    assert requirements["apache-airflow"] == version


def test_dockerfile_installs_requirements_then_project_as_airflow_user(dockerfile_lines: list[str]) -> None:
    copies: dict[str, str] = {}
    user = "root"
    installed_requirements = installed_project = False
    for line in dockerfile_lines:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "USER":
            user = rest.strip()
        elif keyword == "COPY":
            parts = [p for p in rest.split() if not p.startswith("--")]
            for src in parts[:-1]:
                copies[src.rstrip("/")] = parts[-1]
                assert (ROOT / src).exists(), f"COPY source {src} does not exist"
        elif keyword == "RUN" and "pip install" in rest:
            assert user == "airflow", f"pip install must run as the airflow user: {line}"
            req = re.search(r"-r\s+(\S+)", rest)
            if req:
                assert req.group(1) == copies.get("requirements.txt"), "installs a file it did not copy"
                installed_requirements = True
            elif re.search(r"pip install .*(-e\s+)?(\.|/opt/airflow)\s*$", rest):
                assert {"pyproject.toml", "include"} <= set(copies), "project copied after install"
                installed_project = True
    assert installed_requirements and installed_project
    assert user == "airflow", "the image must end as the airflow user"


def test_dockerfile_pins_agree_with_requirements(dockerfile_lines: list[str], requirements: dict[str, str]) -> None:
    # A package pinned in the Dockerfile too must be pinned to the same version.
    for line in dockerfile_lines:
        for name, version in re.findall(r"([A-Za-z0-9_.\-\[\]]+)==([\w.]+)", line):
            assert requirements.get(_normalise(name)) == version, f"{name}=={version} vs requirements.txt"


def test_requirements_carry_the_database_driver(requirements: dict[str, str], common_env: dict[str, str]) -> None:
    driver = urlsplit(common_env["ROGER_ECONOMIC_DB_URL"]).scheme.partition("+")[2] or "psycopg2"
    assert any(name.startswith(driver) for name in requirements), driver


def test_compose_builds_this_dockerfile(common: dict[str, Any]) -> None:
    build = common["build"]
    context = build if isinstance(build, str) else build.get("context", ".")
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    assert (ROOT / context / dockerfile).resolve() == DOCKERFILE
    assert (ROOT / context / "requirements.txt").resolve() == REQUIREMENTS


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    entries = {
        line.strip().strip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".git", "var", ".airflow", "logs"} <= entries
    assert not {"include", "requirements.txt", "pyproject.toml"} & entries
