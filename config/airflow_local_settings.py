"""Airflow local settings for this project: task workers that start warm.

Airflow runs every task instance in a process forked from its executor's worker
(LocalExecutor workers are forked from the scheduler, Celery's pool processes
from the Celery worker). What those processes imported before forking is
already loaded in every task. Importing pandas and Great Expectations (and
their dependencies) costs several CPU-seconds per process, which every
validation task would otherwise pay again; here it is paid once per worker.
The project's own modules are not pre-imported: they are cheap, and a worker
must pick up a changed ``include/`` (and its settings) at the next task, not at
its next restart.

Only the processes that fork tasks import them: the scheduler when it runs
tasks itself (LocalExecutor) and the Celery worker. The API server, the DAG
processor and the CLI do not, so DAG parsing stays cheap. Nothing here opens a
connection (a connection made before a fork would be shared by every task).
``ROGER_ECONOMIC_WARM_WORKERS=0`` turns it off.

Airflow imports this module from ``$AIRFLOW_HOME/config`` (docker-compose
mounts ``config/`` there) or from ``PYTHONPATH`` (the local setup adds it).
"""

from __future__ import annotations

import logging
import os
import sys

__all__: list[str] = []  # Airflow copies a local-settings module's public names into airflow.settings


def _forks_tasks(argv: list[str]) -> bool:
    command = argv[1:3]
    if command[:1] == ["scheduler"]:
        from airflow.configuration import conf

        return "LocalExecutor" in conf.get("core", "executor")
    return command == ["celery", "worker"]


def _warm_up() -> None:
    quiet = logging.getLogger("great_expectations")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # its import logs a line per registered API function
    try:
        import great_expectations  # noqa: F401
        import pandas  # noqa: F401
    except Exception as exc:  # a worker that cannot warm up still runs its tasks (cold)
        logging.getLogger(__name__).warning("warm workers: %s", exc)
    finally:
        quiet.setLevel(level)


if os.environ.get("ROGER_ECONOMIC_WARM_WORKERS", "1") != "0" and _forks_tasks(sys.argv):
    _warm_up()
