"""``airflow backfill create`` over overlapping windows, through real Airflow components, books each bill once.

PostgreSQL for both Airflow's metadata and the project DB (the scheduler, the dag-processor, the api-server and
the task processes all share them); skipped when 127.0.0.1:5432 is down unless ROGER_ECONOMIC_REQUIRE_POSTGRES=1.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import PG_HOST, PG_PORT, REQUIRE_PG, _drop_postgres_db, _fresh_postgres_db, postgres_up
from tests.integration.helpers import ROOT, economic_state, live_entries, staged_states

sys.path.insert(0, str(ROOT / "tools"))

from bench import Components, query

from devkit import local
from sandboxes import world
from sandboxes.httpbase import free_port

DAG_ID = "roger_bills_to_economic"
AIRFLOW = str(ROOT / ".venv" / "bin" / "airflow")
AGREEMENTS = 3
# the second window overlaps the first by three days; "completed" makes the backfill run those days again
WINDOWS = [("2026-11-18", "2026-11-23", []), ("2026-11-21", "2026-11-27", ["--reprocess-behavior", "completed"])]
TIMEOUT = 240.0  # per backfill


def _airflow(*args: str, env: dict[str, str]) -> str:
    out = subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, cwd=env["AIRFLOW_HOME"])
    assert out.returncode == 0, f"airflow {' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def _runs(airflow_url: str) -> list[tuple]:
    return query(
        airflow_url,
        "select run_id, state, backfill_id, data_interval_start, data_interval_end "
        "from dag_run where dag_id = %s order by id",
        (DAG_ID,),
    )


def _wait_for_backfill(airflow_url: str, backfill_id: int, components: Components, home: Path) -> list[tuple]:
    deadline = time.monotonic() + TIMEOUT
    while True:
        components.check_alive()
        done = query(airflow_url, "select completed_at from backfill where id = %s", (backfill_id,))
        runs = [r for r in _runs(airflow_url) if r[2] == backfill_id]
        if done and done[0][0] is not None and all(r[1] in ("success", "failed") for r in runs):
            return runs
        if time.monotonic() > deadline:
            raise AssertionError(f"backfill {backfill_id} not finished after {TIMEOUT:.0f} s: {runs}; logs in {home}")
        time.sleep(1)


def _failed_tasks(airflow_url: str, run_id: str) -> list[tuple]:
    return query(
        airflow_url,
        "select task_id, map_index, state, try_number from task_instance "
        "where dag_id = %s and run_id = %s and state <> 'success'",
        (DAG_ID, run_id),
    )


@pytest.mark.slow
@pytest.mark.postgres
def test_backfill_over_overlapping_windows_books_each_bill_once(tmp_path: Path) -> None:
    if not postgres_up():
        if REQUIRE_PG:
            pytest.fail("PostgreSQL is required (ROGER_ECONOMIC_REQUIRE_POSTGRES=1) but 127.0.0.1:5432 is down")
        pytest.skip("PostgreSQL not reachable on 127.0.0.1:5432")
    saved_env = dict(os.environ)
    dbs: list[str] = []
    sandboxes = []
    components: Components | None = None
    home = tmp_path / "airflow"
    try:
        dbs.append(_fresh_postgres_db())
        dbs.append(_fresh_postgres_db())
        airflow_url, project_url = (f"postgresql+psycopg2://postgres@{PG_HOST}:{PG_PORT}/{name}" for name in dbs)
        local.configure(home, db_url=project_url, airflow_db_url=airflow_url)
        port = free_port()
        os.environ.update(
            {
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "6",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
                "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
                "AIRFLOW__API__PORT": str(port),
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "ROGER_ECONOMIC_DB_URL": project_url,
            }
        )
        roger, economic = local.start_sandboxes(agreements=AGREEMENTS, bills=20)
        sandboxes = [roger, economic]
        env = dict(os.environ)

        from roger_economic.config import load_file
        from roger_economic.credentials import Endpoints
        from roger_economic.db import migrate
        from roger_economic.pipeline import refresh_master_data

        _airflow("db", "migrate", env=env)
        migrate(project_url)
        _airflow("pools", "set", "economic_api", "8", "concurrent e-conomic API work", env=env)
        load_file(ROOT / "config" / "agreements.example.yaml")
        ids = [world.agreement_key(i) for i in range(1, AGREEMENTS + 1)]
        md = refresh_master_data(ids, Endpoints.from_env(), "md")
        assert all(r.get("outcome") == "ok" for r in md.values()), md

        components = Components(home)
        components.start(
            "api-server", ["api-server", "--port", str(port), "--host", "127.0.0.1", "--workers", "1"], env
        )
        components.start("dag-processor", ["dag-processor"], env)
        components.start("scheduler", ["scheduler"], env)
        deadline = time.monotonic() + 120
        while not query(airflow_url, "select count(*) from serialized_dag where dag_id = %s", (DAG_ID,))[0][0]:
            components.check_alive()
            assert time.monotonic() < deadline, f"{DAG_ID} not parsed after 120 s; logs in {home}"
            time.sleep(0.5)
        _airflow("dags", "unpause", DAG_ID, env=env)

        all_runs = []
        for from_date, to_date, extra in WINDOWS:
            t0 = time.monotonic()
            _airflow(
                "backfill",
                "create",
                "--dag-id",
                DAG_ID,
                "--from-date",
                from_date,
                "--to-date",
                to_date,
                "--max-active-runs",
                "3",
                *extra,
                env=env,
            )
            backfill_id = query(airflow_url, "select max(id) from backfill where dag_id = %s", (DAG_ID,))[0][0]
            assert backfill_id is not None, "no backfill created"
            runs = _wait_for_backfill(airflow_url, backfill_id, components, home)
            print(
                f"backfill {backfill_id} {from_date}..{to_date}: {len(runs)} runs in {time.monotonic() - t0:.1f} s "
                f"{[(r[3].isoformat(), r[1]) for r in runs]}"
            )
            assert runs, f"backfill {from_date}..{to_date} created no runs"
            all_runs.extend(runs)

        failed = [r for r in all_runs if r[1] != "success"]
        details = [(r[0], _failed_tasks(airflow_url, r[0])) for r in failed]
        assert not failed, f"runs failed: {details}; task logs under {home / 'logs' / f'dag_id={DAG_ID}'}"
        second_ids = {r[3] for r in all_runs if r[2] == all_runs[-1][2]}
        first_ids = {r[3] for r in all_runs if r[2] == all_runs[0][2]}
        assert first_ids & second_ids, "the two backfills' windows do not overlap (reprocessing did not happen)"

        total = 0
        for i in range(1, AGREEMENTS + 1):
            aid = world.agreement_key(i)
            entries = live_entries(economic_state(economic, i))
            twice = {k: n for k, n in entries.items() if n > 1}
            assert not twice, f"{aid}: booked more than once: {twice}"
            booked = {b for b, s in staged_states(aid).items() if s == "booked"}
            invoices = {b for (b, kind), _n in entries.items() if kind == "supplierInvoice"}
            missing = booked - invoices
            assert not missing, f"{aid}: staged as booked without an invoice entry: {sorted(missing)}"
            total += len(booked)
        assert total, "nothing was booked"
    finally:
        if components is not None:
            components.stop()
        for sb in sandboxes:
            sb.stop()
        from roger_economic.db import dispose_engines

        dispose_engines()
        os.environ.clear()
        os.environ.update(saved_env)
        for name in dbs:
            _drop_postgres_db(name)
