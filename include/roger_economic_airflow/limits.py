"""How long each task may run (its ``execution_timeout``): no night may hang and hold the next one.

The DAGs run with ``max_active_runs=1``, so a task that never ends would block every later night.
Read when a DAG file is parsed, so this module imports nothing but the standard library. Each bound is
``ROGER_ECONOMIC_TIMEOUT_<TASK>`` seconds (e.g. ``ROGER_ECONOMIC_TIMEOUT_LOAD=7200``), else the default
below. Inside a step, one agreement is bounded by ``ROGER_ECONOMIC_AGREEMENT_DEADLINE`` (30 minutes by
default, see ``roger_economic.steps.fanout.each``), well inside its task's bound.
"""

from __future__ import annotations

from datetime import timedelta

from roger_economic.settings import environment

# seconds; a group's step is sized for 250+ agreements with room for a large client's first night (many
# times a usual night's work); plan and summarise only read and write the project database
DEFAULTS = {
    "default": 3600,
    "plan": 600,
    "extract": 2 * 3600,
    "validate": 2 * 3600,
    "load": 4 * 3600,
    "summarise": 1800,
    "refresh": 2 * 3600,
    "publish": 600,
}


def timeout(task: str) -> timedelta:
    """The execution timeout of ``task`` (a key of :data:`DEFAULTS`)."""
    raw = environment().task_timeouts.get(task)
    seconds = float(raw) if raw else DEFAULTS.get(task, DEFAULTS["default"])
    if seconds <= 0:
        raise ValueError(f"ROGER_ECONOMIC_TIMEOUT_{task.upper()} must be a positive number of seconds, not {raw!r}")
    return timedelta(seconds=seconds)
