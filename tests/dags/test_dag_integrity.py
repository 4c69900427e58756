"""Every DAG file imports cleanly, cheaply, and wires what the issue names."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
HEAVY = (
    "great_expectations",
    "pandas",
    "sqlalchemy",
    "requests",
    "roger_economic.prepare",
    "roger_economic.validation",
)


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_both_dags_present_with_tags_and_retries(dagbag):
    assert {"roger_master_data", "roger_bills_to_economic"} <= set(dagbag.dag_ids)
    for dag_id in ("roger_master_data", "roger_bills_to_economic"):
        dag = dagbag.dags[dag_id]
        assert dag.tags, dag_id
        assert dag.doc_md, dag_id
        for t in dag.tasks:
            assert t.retries >= 1, f"{dag_id}.{t.task_id} has no retries"


def test_bills_dag_covers_a_real_window_in_copenhagen(dagbag):
    from airflow.sdk import CronDataIntervalTimetable

    dag = dagbag.dags["roger_bills_to_economic"]
    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert "Europe/Copenhagen" in repr(dag.timetable)
    assert set(dag.params.keys()) >= {"from_date", "to_date", "agreements", "dry_run"}
    load = dag.get_task("agreements.load")
    assert load.pool == "economic_api"


def test_master_data_dag_updates_the_asset_the_bills_dag_reads(dagbag):
    md = dagbag.dags["roger_master_data"]
    bills = dagbag.dags["roger_bills_to_economic"]
    outlets = {getattr(o, "uri", None) for t in md.tasks for o in t.outlets}
    inlets = {getattr(i, "uri", None) for t in bills.tasks for i in t.inlets}
    assert "roger_economic://master_data" in outlets & inlets


@pytest.mark.parametrize("dag_file", sorted(p.name for p in DAGS.glob("*.py")))
def test_dag_file_parses_fast_without_heavy_imports(dag_file):
    """Each task instance re-parses its DAG file: no pandas/GX/DB/HTTP at top level, and quick."""
    code = (
        "import sys, time, runpy; import airflow.sdk, airflow.timetables.interval; before = set(sys.modules); "
        f"t = time.perf_counter(); runpy.run_path({str(DAGS / dag_file)!r}); "
        "print(time.perf_counter() - t); new = set(sys.modules) - before; "
        f"print('heavy=' + ','.join(m for m in {HEAVY!r} if m in new))"
    )
    # Airflow itself is imported first, as the DAG processor has it loaded already.
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    parse_seconds, loaded = float(lines[-2]), lines[-1].removeprefix("heavy=")
    print(f"{dag_file}: parsed in {parse_seconds:.3f}s (process {time.perf_counter() - started:.1f}s)")
    assert loaded == "", f"{dag_file} imports {loaded} at parse time"


def test_every_task_is_bounded_in_time(dagbag, monkeypatch):
    from datetime import timedelta

    from roger_economic_airflow.limits import timeout

    for dag_id in ("roger_master_data", "roger_bills_to_economic"):  # max_active_runs=1: a hung task holds every night
        for t in dagbag.dags[dag_id].tasks:
            bound = t.execution_timeout
            assert bound is not None and bound <= timedelta(hours=6), f"{dag_id}.{t.task_id}"
    assert dagbag.dags["roger_bills_to_economic"].get_task("agreements.load").execution_timeout == timeout("load")
    monkeypatch.setenv("ROGER_ECONOMIC_TIMEOUT_LOAD", "900")
    assert timeout("load") == timedelta(minutes=15)
