"""A task's supervisor frees its executor slot soon after the task ends, in every deployment.

Airflow's supervisor can miss the moment its task process exits (the process closes its sockets a moment before
it is reaped), and then waits ``[workers] min_heartbeat_interval`` before it looks again: with the default 5 s
a finished task can hold its executor slot 5 s, and the night's next task waits for the slot. The embedded
default and docker-compose set 1 s. ``max_failed_heartbeats`` keeps Airflow's 3 (each failed heartbeat is
itself retried for seconds): fewer would kill running tasks over a short api-server restart, many more would
outlast the scheduler's own heartbeat timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import sys\n"
    "sys.path[:0] = [{root!r}]\n"
    "from pathlib import Path\n"
    "from devkit import local\n"
    "local.configure(Path({home!r}))\n"
    "from airflow.sdk.execution_time import supervisor\n"
    "print(supervisor.MIN_HEARTBEAT_INTERVAL, supervisor.MAX_FAILED_HEARTBEATS)\n"
)
LONGEST_WAIT = 1  # seconds a supervisor may miss its process's exit for
AIRFLOWS_FAILED_HEARTBEATS = 3  # Airflow's default ``[workers] max_failed_heartbeats``


def _judge(interval: float, failures: int) -> None:
    assert interval <= LONGEST_WAIT, f"a finished task may hold its executor slot {interval} s"
    assert failures == AIRFLOWS_FAILED_HEARTBEATS, "the api-server's tolerated absence changed with the interval"


def test_the_embedded_default_frees_a_finished_tasks_slot_soon(tmp_path):
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHONPATH"))}
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(root=str(ROOT), home=str(tmp_path))],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    interval, failures = out.stdout.split()[-2:]  # as Airflow's supervisor read them
    _judge(float(interval), int(failures))


def test_docker_compose_frees_a_finished_tasks_slot_soon():
    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text(encoding="utf-8"))
    for name in ("airflow-scheduler", "airflow-worker"):  # where tasks are supervised (Local / Celery executor)
        env = compose["services"][name]["environment"]
        failures = env.get("AIRFLOW__WORKERS__MAX_FAILED_HEARTBEATS", AIRFLOWS_FAILED_HEARTBEATS)
        _judge(float(env["AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL"]), int(failures))
