"""Fetching one agreement's master data from the page, visibly: a direct fetch, or a DAG run followed to its end.

Two ways, one progress page (``/agreements/{id}/progress?run=…``, in :mod:`roger_economic_ui.app`):

- **Direct fetch** (after a client is connected, and "Fetch here now"): the api-server runs the domain's
  :func:`roger_economic.pipeline.refresh_master_data` for that one agreement in a background thread. It needs no
  scheduler. Its outcome is the run report the refresh writes (``run_reports``, phase ``masterdata``) under a run
  id of its own (:data:`DIRECT_PREFIX`), so every api-server worker can answer for it; its start and end are in
  the agreement's history (``setup_audit``).
- **A run of** ``roger_master_data`` (the refresh button): its state is Airflow's ``dag_run.state``. A run that
  stays queued while no scheduler has a recent heartbeat is said to wait for a scheduler, plainly, with the
  direct fetch offered instead.

The page follows either without a script (the plugin's CSP allows none): it asks again by itself with
``<meta http-equiv="refresh">`` until the state is final, then continues to the setup page.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import select

from roger_economic.credentials import Endpoints
from roger_economic.db import models, session
from roger_economic.errors import scrub
from roger_economic.settings import environment
from roger_economic_ui import queries

log = logging.getLogger(__name__)

MASTER_DATA_DAG = "roger_master_data"
PHASE = "masterdata"  # the run report's phase refresh_master_data writes
DIRECT_PREFIX = "ui_fetch__"
GIVE_UP = 15 * 60.0  # seconds without a result after which a direct fetch is reported lost (a restarted server)
STARTED, FINISHED = "fetch_master_data", "master_data_fetched"  # the history's actions

_running: dict[str, threading.Thread] = {}  # agreement id → its direct fetch in this process
_lock = threading.Lock()


class Progress(StrEnum):
    """Where a fetch is: the states of a DAG run the page shows (a direct fetch is never queued)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"


FINAL = frozenset({Progress.SUCCESS, Progress.FAILED})


@dataclass(frozen=True)
class Seen:
    """What the progress page says about one fetch."""

    progress: Progress
    text: str
    no_scheduler: bool = False  # queued, and no scheduler is alive to pick it up

    @property
    def done(self) -> bool:
        return self.progress in FINAL


def is_direct(run_id: str) -> bool:
    return run_id.startswith(DIRECT_PREFIX)


# ------------------------------------------------------------------------------------------------ direct fetch


def endpoints() -> Endpoints:
    """The tasks' endpoints (``roger_economic_airflow.runtime.endpoints``) as the api-server finds them: it has no
    task context, so connections are read from the secrets backends and the metadata DB directly."""
    from roger_economic_ui import onboarding

    bases = onboarding.endpoints()
    given = environment().app_secret_token
    secret_ref = "env:ECONOMIC_APP_SECRET_TOKEN" if given else f"conn:{onboarding.APP_CONN}"
    return Endpoints(bases.roger_base_url, bases.economic_base_url, secret_ref, onboarding.connection_password)


def start_direct(agreement_id: str, actor: str, why: str) -> str:
    """Start a direct fetch of the agreement's master data (or join the one running here); returns its run id."""
    with _lock:
        thread = _running.get(agreement_id)
        if thread is not None and thread.is_alive():
            return thread.name
        ends = endpoints()
        run_id = f"{DIRECT_PREFIX}{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
        with session() as sess:
            queries.record(sess, agreement_id, actor, STARTED, target=run_id, note=why)
        thread = threading.Thread(target=_fetch, args=(agreement_id, actor, run_id, ends), name=run_id, daemon=True)
        _running[agreement_id] = thread
        thread.start()
        return run_id


def _fetch(agreement_id: str, actor: str, run_id: str, ends: Endpoints) -> None:
    from roger_economic import pipeline

    try:
        result = pipeline.refresh_master_data([agreement_id], ends, run_id)[agreement_id]
    except Exception as exc:  # outside the per-agreement guard (the database, the settings): reported, not lost
        text = scrub(f"{type(exc).__name__}: {exc}")
        log.error("direct master-data fetch of %s failed: %s", agreement_id, text)
        result = {"outcome": "failed", "message": text}
        try:
            with session() as sess:
                sess.merge(
                    models.RunReport(
                        run_id=run_id,
                        agreement_id=agreement_id,
                        phase=PHASE,
                        outcome="failed",
                        counts={},
                        message=text,
                        finished_at=datetime.now(UTC),
                    )
                )
        except Exception:
            log.exception("could not record the failed fetch of %s", agreement_id)
            return
    counts = {k: v for k, v in result.items() if k in ("accounts", "suppliers", "categories", "gaps")}
    try:
        with session() as sess:
            after = {"outcome": result.get("outcome"), **counts}
            queries.record(sess, agreement_id, actor, FINISHED, target=run_id, after=after, note=result.get("message"))
    except Exception:
        log.exception("could not record the end of the fetch of %s", agreement_id)


def direct_progress(agreement_id: str, run_id: str) -> Seen:
    with session() as sess:
        report = sess.get(models.RunReport, (run_id, agreement_id, PHASE))
        started = sess.scalar(
            select(models.SetupAudit.at).where(
                models.SetupAudit.agreement_id == agreement_id,
                models.SetupAudit.action == STARTED,
                models.SetupAudit.target == run_id,
            )
        )
        if report is not None:
            return _reported(report)
    if started is None:
        return Seen(Progress.FAILED, f"No fetch {run_id} was started for this agreement.")
    thread = _running.get(agreement_id)
    alive = thread is not None and thread.name == run_id and thread.is_alive()
    age = (datetime.now(UTC) - (started if started.tzinfo else started.replace(tzinfo=UTC))).total_seconds()
    if alive or age < GIVE_UP:
        return Seen(Progress.RUNNING, f"Fetching now, here in the api-server ({age:.0f} s so far).")
    return Seen(
        Progress.FAILED,
        f"No result after {GIVE_UP / 60:.0f} minutes: the api-server may have restarted during the fetch. Fetch again.",
    )


def _reported(report: models.RunReport) -> Seen:
    counts = report.counts or {}
    if report.outcome != "ok":
        return Seen(Progress.FAILED, f"The fetch {report.outcome}: {report.message or 'no reason given'}.")
    return Seen(
        Progress.SUCCESS,
        f"Fetched {counts.get('accounts', 0)} accounts, {counts.get('suppliers', 0)} suppliers and "
        f"{counts.get('categories', 0)} Roger categories; {counts.get('gaps', 0)} mapping gap(s).",
    )


# ------------------------------------------------------------------------------------------------ a DAG run


def dag_run_progress(agreement_id: str, run_id: str) -> Seen:
    """A ``roger_master_data`` run's state, and whether anything will ever pick it up."""
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as sess:
        run = sess.scalar(select(DagRun).where(DagRun.dag_id == MASTER_DATA_DAG, DagRun.run_id == run_id))
        state = str(run.state) if run is not None else None
        dag = sess.get(DagModel, MASTER_DATA_DAG)
        paused = bool(dag is not None and dag.is_paused)
    if state is None:
        return Seen(Progress.FAILED, f"Airflow has no run {run_id} of {MASTER_DATA_DAG}.")
    if state == Progress.SUCCESS:
        with session() as sess:
            report = sess.get(models.RunReport, (run_id, agreement_id, PHASE))
        return _reported(report) if report is not None else Seen(Progress.SUCCESS, "The run succeeded.")
    if state == Progress.FAILED:
        with session() as sess:
            report = sess.get(models.RunReport, (run_id, agreement_id, PHASE))
        reason = f" {_reported(report).text}" if report is not None and report.outcome != "ok" else ""
        return Seen(Progress.FAILED, f"The run failed.{reason} Its tasks' logs are in Airflow ({MASTER_DATA_DAG}).")
    if state == Progress.RUNNING:
        return Seen(Progress.RUNNING, "A worker is fetching the data.")
    if paused:
        return Seen(
            Progress.QUEUED,
            f"The {MASTER_DATA_DAG} DAG is paused: the run waits until it is unpaused (or fetch here now).",
            no_scheduler=True,
        )
    beat = scheduler_heartbeat()
    if beat is None:
        return Seen(
            Progress.QUEUED,
            "No scheduler is picking this run up: no Airflow scheduler is running (none has sent a recent "
            "heartbeat). The run waits in the queue until one starts; or fetch the data here now.",
            no_scheduler=True,
        )
    return Seen(Progress.QUEUED, f"Waiting for the scheduler to start it (its last heartbeat {beat:.0f} s ago).")


def scheduler_heartbeat() -> float | None:
    """Seconds since the heartbeat of a scheduler that is alive (Airflow's own health rule); None: none is."""
    from airflow.jobs.job import most_recent_job

    job = most_recent_job("SchedulerJob")
    beat = job.latest_heartbeat if job is not None else None
    if job is None or beat is None or not job.is_alive():
        return None
    return (datetime.now(UTC) - (beat if beat.tzinfo else beat.replace(tzinfo=UTC))).total_seconds()


def progress(agreement_id: str, run_id: str) -> Seen:
    return direct_progress(agreement_id, run_id) if is_direct(run_id) else dag_run_progress(agreement_id, run_id)
