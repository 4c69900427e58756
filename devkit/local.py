"""The embedded default: an Airflow home inside the project, SQLite, local sandboxes.

Used by the demo, the tests and the benchmark so that all three run the same
way on a fresh machine. Call :func:`configure` before anything imports Airflow.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sandboxes import world
from sandboxes.httpbase import SandboxProcess

ROOT = Path(__file__).resolve().parents[1]

# A task's supervisor can miss its process's exit (the sockets close a moment before the process is reaped) and then
# waits out ``[workers] min_heartbeat_interval`` (5 s) before it notices: all that time the executor slot stays taken
# and the night's next task waits for it. At 1 s (the least: an integer) the wait is short, for one heartbeat per
# running task a second instead of one in five. ``max_failed_heartbeats`` stays Airflow's 3: each failed heartbeat is
# itself retried for several seconds, so three still let an api-server be away about half a minute (15 at 1 s would
# outlast the scheduler's task heartbeat timeout). docker-compose.yaml sets the same.
TASK_SUPERVISOR = {"AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1"}


def configure(home: Path | None = None, db_url: str | None = None, airflow_db_url: str | None = None) -> Path:
    """Point Airflow and the project at a local home; returns it."""
    home = home or ROOT / ".airflow"
    home.mkdir(parents=True, exist_ok=True)
    # config/ holds airflow_local_settings.py (warm task workers); docker-compose mounts it as $AIRFLOW_HOME/config
    python_path = [str(ROOT / "config"), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_db_url or f"sqlite:///{home / 'airflow.db'}",
        "ROGER_ECONOMIC_DB_URL": db_url
        or os.environ.get("ROGER_ECONOMIC_DB_URL")
        or f"sqlite:///{home / 'roger_economic.db'}",
        "PYTHONWARNINGS": "ignore",
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(python_path)),
        # a night is a chain of short tasks: look for the next one sooner than the default 1 s when idle
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": os.environ.get(
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME", "0.25"
        ),
        **{name: os.environ.get(name, value) for name, value in TASK_SUPERVISOR.items()},
    }
    os.environ.update(env)
    return home


def migrate_airflow() -> None:
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, stdout=subprocess.DEVNULL)


def sandbox_env(
    agreements: int,
    base_roger: str,
    base_economic: str,
    prefix: str = "sbx-",
    app_secret: str = world.DEFAULT_APP_SECRET,
) -> dict[str, str]:
    """Environment variables the example agreements file refers to (tokens of the sandbox world)."""
    env = {
        "ROGER_BASE_URL": f"{base_roger}/v1",
        "ECONOMIC_BASE_URL": base_economic,
        "ECONOMIC_APP_SECRET_TOKEN": app_secret,
    }
    for i in range(1, agreements + 1):
        key = world.agreement_key(i).upper()
        env[f"ROGER_TOKEN_{key}"] = world.roger_token(i, prefix)
        env[f"ECONOMIC_GRANT_TOKEN_{key}"] = world.grant_token(i, prefix)
    return env


def start_sandboxes(
    agreements: int,
    bills: int,
    seed: int = 7,
    prefix: str = "sbx-",
    app_secret: str = world.DEFAULT_APP_SECRET,
    roger_port: int | None = None,
    economic_port: int | None = None,
    extra_roger: list[str] | None = None,
    extra_economic: list[str] | None = None,
) -> tuple[SandboxProcess, SandboxProcess]:
    roger = SandboxProcess(
        "sandboxes.roger",
        [
            "--companies",
            str(agreements),
            "--bills",
            str(bills),
            "--seed",
            str(seed),
            "--token-prefix",
            prefix,
            *(extra_roger or []),
        ],
        roger_port,
    ).start()
    economic = SandboxProcess(
        "sandboxes.economic",
        [
            "--agreements",
            str(agreements),
            "--token-prefix",
            prefix,
            "--app-secret",
            app_secret,
            *(extra_economic or []),
        ],
        economic_port,
    ).start()
    os.environ.update(sandbox_env(agreements, roger.base_url, economic.base_url, prefix, app_secret))
    return roger, economic


def write_agreements_file(path: Path, count: int, journals: tuple[int, int] = (2, 3)) -> Path:
    """An agreements file for ``count`` sandbox agreements (the benchmark's and the scale tests').

    Each agreement gets its own copies of the mapping tables: shared ones would be written as YAML anchors and
    aliases, which the agreements file refuses."""
    import copy

    import yaml

    full_categories = {
        "cat_office": {"account": 2750},
        "cat_software": {"account": 2760},
        "cat_phone": {"account": 2770},
        "cat_travel": {"account": 2780},
        "cat_meals": {"account": 2250},
        "cat_rent": {"account": 3400},
        "cat_utilities": {"account": 3410},
        "cat_services": {"account": 2800},
        "cat_marketing": {"account": 2200},
    }
    methods = {"pm_bank": 5820, "pm_debit": 5830, "pm_credit": 6600}
    items = []
    for i in range(1, count + 1):
        key = world.agreement_key(i)
        items.append(
            {
                "id": key,
                "name": world.profile(i).company_name,
                "roger": {"company_id": world.company_id(i), "token": f"env:ROGER_TOKEN_{key.upper()}"},
                "economic": {
                    "agreement_number": world.agreement_number(i),
                    "grant_token": f"env:ECONOMIC_GRANT_TOKEN_{key.upper()}",
                },
                "default_account": 3990,
                "categories": copy.deepcopy(full_categories),
                "payment_methods": dict(methods),
                "book_without_attachment": True,
            }
        )
    doc = {
        "defaults": {
            "journals": {"supplier_invoices": journals[0], "supplier_payments": journals[1]},
            "supplier_policy": "create",
            "supplier_group": 1,
            "payment_terms": 1,
        },
        "agreements": items,
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def ensure_pool(slots: int = 8) -> None:
    """The pool that bounds concurrent e-conomic work (created by setup, never by hand)."""
    from airflow.models.pool import Pool

    from roger_economic_airflow import ECONOMIC_POOL

    Pool.create_or_update_pool(ECONOMIC_POOL, slots, "concurrent e-conomic API work", include_deferred=False)
