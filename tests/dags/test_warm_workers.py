"""Warm task workers: only the processes that fork tasks import pandas and Great Expectations.

``config/airflow_local_settings.py`` is imported by every Airflow process. Tasks fork from the
LocalExecutor scheduler or a Celery worker, so those import the heavy libraries once for all their
tasks; the DAG processor, the API server and the CLI must not (parsing stays cheap).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import sys\n"
    "sys.argv = {argv!r}\n"
    "import airflow.settings\n"
    "print('warm' if {{'pandas', 'great_expectations'}} <= set(sys.modules) else 'cold')\n"
    "print('project loaded' if 'roger_economic.pipeline' in sys.modules else 'project not loaded')\n"
)


def _probe(argv: list[str], tmp_path: Path, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ROGER_ECONOMIC_WARM"))}
    environ.update(
        {
            "AIRFLOW_HOME": str(tmp_path),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "PYTHONPATH": os.pathsep.join([str(ROOT / "config"), str(ROOT / "include")]),
            **env,
        }
    )
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv)], env=environ, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    *_, heavy, project = out.stdout.strip().splitlines()
    # the project's own modules are never pre-imported: a worker picks up a changed include/ at the next task
    assert project == "project not loaded"
    return heavy


@pytest.mark.parametrize(
    ("argv", "executor", "expected"),
    [
        (["airflow", "scheduler"], "LocalExecutor", "warm"),
        (["airflow", "celery", "worker"], "CeleryExecutor", "warm"),
        (["airflow", "scheduler"], "CeleryExecutor", "cold"),  # its tasks run on the workers
        (["airflow", "dag-processor"], "LocalExecutor", "cold"),
        (["airflow", "api-server"], "LocalExecutor", "cold"),
        (["airflow", "dags", "trigger", "x"], "LocalExecutor", "cold"),
    ],
)
def test_only_processes_that_fork_tasks_start_warm(argv, executor, expected, tmp_path):
    assert _probe(argv, tmp_path, AIRFLOW__CORE__EXECUTOR=executor) == expected


def test_warm_workers_can_be_turned_off(tmp_path):
    assert (
        _probe(
            ["airflow", "scheduler"], tmp_path, AIRFLOW__CORE__EXECUTOR="LocalExecutor", ROGER_ECONOMIC_WARM_WORKERS="0"
        )
        == "cold"
    )
