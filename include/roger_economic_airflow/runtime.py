"""What a task needs from Airflow: endpoints from connections, the run's window and params."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import pendulum

from roger_economic.credentials import Endpoints
from roger_economic.errors import database_error
from roger_economic.pipeline import Window
from roger_economic.settings import environment
from roger_economic.steps.fanout import MAX_GROUPS

LOCAL_TZ = "Europe/Copenhagen"


def _connection(conn_id: str) -> Any | None:
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except Exception:  # not defined: fall back to the environment
        return None


def _password(conn_id: str) -> str | None:
    conn = _connection(conn_id)
    return conn.password if conn is not None else None


def base_url(conn_id: str, env: str, default: str, lookup: Callable[[str], Any] | None = None) -> str:
    """A service's base URL: the environment variable, else the connection's host (``lookup`` finds it: the
    tasks' look-up by default; the api-server has its own), else ``default``."""
    given = {"ROGER_BASE_URL": environment().roger_base_url, "ECONOMIC_BASE_URL": environment().economic_base_url}
    if given.get(env):
        return str(given[env])
    conn = (lookup or _connection)(conn_id)
    if conn is not None and conn.host:
        host = conn.host if "://" in conn.host else f"{conn.schema or 'https'}://{conn.host}"
        return f"{host}{':' + str(conn.port) if conn.port else ''}"
    return default


def endpoints() -> Endpoints:
    """Base URLs from env or connections ``roger_default``/``economic_default``; tokens resolved lazily."""
    app_secret_ref = "env:ECONOMIC_APP_SECRET_TOKEN" if environment().app_secret_token else "conn:economic_default"
    return Endpoints(
        roger_base_url=base_url("roger_default", "ROGER_BASE_URL", "http://127.0.0.1:8081/v1"),
        economic_base_url=base_url("economic_default", "ECONOMIC_BASE_URL", "http://127.0.0.1:8082"),
        app_secret_ref=app_secret_ref,
        conn_lookup=_password,
    )


def _day_start(text: str) -> pendulum.DateTime:
    moment = pendulum.parse(text, tz=LOCAL_TZ)
    if not isinstance(moment, pendulum.DateTime):  # a date parses as its midnight; a bare time or duration is not one
        raise ValueError(f"not a date: {text!r}")
    return moment.start_of("day")


def window(context: Mapping[str, Any]) -> Window:
    """The run's window: the params' date range, else the data interval, else the last day."""
    params = context.get("params") or {}
    if params.get("from_date") or params.get("to_date"):
        since = _day_start(params["from_date"]) if params.get("from_date") else None
        before = _day_start(params["to_date"]).add(days=1) if params.get("to_date") else None
        return Window(_iso(since), _iso(before))
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is not None and end is not None and start != end:
        return Window(_iso(start), _iso(end))
    now = pendulum.now("UTC")
    return Window(_iso(now - timedelta(days=1)), _iso(now))


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return pendulum.instance(moment).in_timezone("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def selected_agreements(context: Mapping[str, Any]) -> list[str] | None:
    chosen = (context.get("params") or {}).get("agreements") or []
    return [str(a).strip() for a in chosen if str(a).strip()] or None


def max_groups() -> int:
    """Mapped groups at most: ``ROGER_ECONOMIC_MAX_GROUPS``, else 8, or fewer when Airflow runs fewer tasks of
    one run at once (``[core] parallelism``, ``max_active_tasks_per_dag``).

    A group's steps run one after another in one slot, so groups beyond the slots only wait for one and
    pay each step's start-up again (README, Performance).
    """
    given = environment().max_groups
    if given:
        return given
    from airflow.sdk.configuration import conf

    slots = min(conf.getint("core", "parallelism"), conf.getint("core", "max_active_tasks_per_dag"))
    return max(1, min(MAX_GROUPS, slots))


class _CollectorTime:
    """CPU seconds this process spent in Python's cyclic garbage collector since this module was imported
    (a collection runs in the thread that triggered it, holding the GIL: that thread's CPU time)."""

    def __init__(self) -> None:
        self.total = 0.0
        self._began = 0.0
        gc.callbacks.append(self._tick)

    def _tick(self, phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.thread_time()
        else:
            self.total += time.thread_time() - self._began


_COLLECTOR = _CollectorTime()


def cpu_used() -> str:
    """The task process's CPU time so far, and its time in the garbage collector, for its log (the benchmark
    adds these up per task)."""
    return f"task process CPU: {time.process_time():.2f} s (garbage collector {_COLLECTOR.total:.2f} s)"


# ---------------------------------------------------------------------------- the run's outcome (summarise)


def _failed_tasks(context: Mapping[str, Any]) -> list[tuple[str, int | None]]:
    """(task id, map index or None) of each task of this run that failed (retries spent)."""
    ti = context["ti"]
    states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[context["run_id"]]).get(context["run_id"], {})
    out = []
    for key, state in states.items():
        if state != "failed":
            continue
        task_id, _, index = key.rpartition("_")
        out.append((task_id, int(index)) if task_id and index.isdigit() else (key, None))
    return sorted(out, key=lambda t: (t[0], -1 if t[1] is None else t[1]))


def run_outcome(context: Mapping[str, Any], dry_run: bool = False) -> dict[str, Any]:
    """The run's report: from the project database, else from what Airflow knows (the plan, the task states).

    A failed plan, a group's step that failed as a whole (named with the group's agreements), and a
    project database that cannot be read are each in the report: an agreement never reads ``ok``
    because its rows are missing, and a night without its database still has a report to alert with.
    """
    from roger_economic import report

    run_id = context["run_id"]
    planned: list[dict[str, Any]] = context["ti"].xcom_pull(task_ids="plan") or []
    problems: list[str] = []
    failed_steps: list[tuple[str, list[str]]] = []
    for task_id, index in _failed_tasks(context):
        if task_id == "plan":
            problems.append("plan failed: no agreement was extracted, validated or loaded (see the plan task's log)")
        elif index is not None and task_id.startswith("agreements.") and index < len(planned):
            group = planned[index]
            failed_steps.append((task_id.rpartition(".")[2], group["agreements"]))
        elif task_id != "summarise":
            problems.append(f"task {task_id}{'' if index is None else f'[{index}]'} failed")
    ids = [a for g in planned for a in g["agreements"]]
    try:
        if not planned and problems:  # the plan failed: name the agreements it would have chosen
            from roger_economic.config import active_agreement_ids
            from roger_economic.db import session

            with session() as sess:
                ids = active_agreement_ids(sess, selected_agreements(context))
            result = report.unreadable(run_id, ids, "not processed: the plan failed")
            result["problems"] = []
        else:
            result = report.build(run_id, ids, ("extract",) if dry_run else report.PHASES, failed_steps)
    except Exception as exc:  # the project database is down (or unreadable): report what is known
        problem = f"the project database could not be read: {database_error(exc)}"
        print(f"summarise: {problem}")
        result = report.unreadable(run_id, ids, problem)
        for (phase, agreements), group in ((s, g) for s in failed_steps for g in planned if g["agreements"] == s[1]):
            problems.append(f"{phase} of group {group['label']} failed ({', '.join(agreements)})")
    result["problems"] = problems + result["problems"]
    return result
