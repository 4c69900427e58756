"""
### Roger bills → e-conomic journals

Nightly (02:00 Europe/Copenhagen) for every active agreement, over the data
interval that just ended: **extract** bills changed in Roger, **validate** them
(Great Expectations, one run per group) and **transform** them into supplier
invoices and payments, **load** them into the agreement's journals exactly
once, and **summarise** the run (table in the log, JSON report, failures named).
Summarise runs whatever happened upstream and alerts once for every way the night failed
or needs a person (a failed plan or group step, the project database down, failed or stopped
agreements, quarantined bills, review items). Every task has an execution timeout
(`ROGER_ECONOMIC_TIMEOUT_<TASK>`), and one agreement's work in a step is bounded by
`ROGER_ECONOMIC_AGREEMENT_DEADLINE`, so no night hangs and holds the next.

Agreements are processed in groups (one mapped task group per group of
agreements, each named by the agreements it holds), so hundreds of agreements
stay within what the scheduler can run; each group goes on to its load as
soon as its own validation is done, while other groups still validate.
A group whose extract finds nothing new and nothing waiting (a rerun, a quiet
night) skips its validate and load; a stopped agreement always runs them, so
it is reported every night.
Manual runs take params: `from_date`/`to_date` (a date range, inclusive),
`agreements` (ids; empty = all active) and `dry_run` (build and validate the
journal rows, show them, post nothing).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, get_current_context, task, task_group

from roger_economic_airflow import ECONOMIC_POOL, MASTER_DATA_URI
from roger_economic_airflow.limits import timeout

MASTER_DATA = Asset(MASTER_DATA_URI)


def _summary_failed(context: dict) -> None:
    """summarise failed before its alert (a crash, its timeout): the run alerts all the same."""
    from roger_economic_airflow.alerts import summary_failed

    summary_failed(context)


@dag(
    dag_id="roger_bills_to_economic",
    schedule=CronDataIntervalTimetable("0 2 * * *", timezone="Europe/Copenhagen"),
    start_date=pendulum.datetime(2026, 1, 1, tz="Europe/Copenhagen"),
    catchup=False,
    max_active_runs=1,
    tags=["roger", "e-conomic", "bookkeeping"],
    # "upstream": a group's load outranks the next group's extract, so groups finish one after
    # another (agreements are booked early in a long night) instead of all extracts, then all loads
    # every task bounded (execution_timeout): with max_active_runs=1 a hung task would hold every later night
    default_args={
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": 2.0,
        "weight_rule": "upstream",
        "execution_timeout": timeout("default"),
    },
    params={
        "from_date": Param(None, type=["null", "string"], format="date", description="first day (inclusive)"),
        "to_date": Param(None, type=["null", "string"], format="date", description="last day (inclusive)"),
        "agreements": Param([], type="array", items={"type": "string"}, description="agreement ids; empty = all"),
        "dry_run": Param(False, type="boolean", description="validate and show the journal rows, post nothing"),
    },
    doc_md=__doc__,
)
def roger_bills_to_economic():
    @task(inlets=[MASTER_DATA], execution_timeout=timeout("plan"))
    def plan() -> list[dict]:
        """Choose the agreements and the window; group the agreements."""
        from roger_economic.config import active_agreement_ids
        from roger_economic.db import session
        from roger_economic.pipeline import groups
        from roger_economic_airflow.runtime import max_groups, selected_agreements, window

        context = get_current_context()
        with session() as sess:
            ids = active_agreement_ids(sess, selected_agreements(context))
        win = window(context)
        print(f"{len(ids)} agreements, window {win.label()}, dry_run={context['params'].get('dry_run')}")
        return [{**g, "since": win.since, "before": win.before} for g in groups(ids, max_groups=max_groups())]

    @task(map_index_template="{{ group_label }}", execution_timeout=timeout("extract"))
    def extract(group: dict) -> dict | None:
        from airflow.sdk.exceptions import DownstreamTasksSkipped

        from roger_economic.pipeline import Window, extract, settled
        from roger_economic.report import phase_table
        from roger_economic_airflow.runtime import cpu_used, endpoints

        context = get_current_context()
        context["group_label"] = group["label"]  # type: ignore[typeddict-unknown-key]  # map_index_template shows it
        results = extract(group["agreements"], Window(group["since"], group["before"]), endpoints(), context["run_id"])
        print(phase_table(results))
        quiet = not context["params"].get("dry_run") and settled(group["agreements"], context["run_id"], results)
        print(cpu_used())
        if quiet:
            # this group's validate is marked skipped (its load follows by trigger rule) without
            # starting a task process; @task.short_circuit cannot do that inside a mapped task group
            # (Airflow 3.3 looks for its note under map index -1). None is the fallback input.
            print("nothing new, nothing waiting, no agreement stopped: validate and load are skipped")
            ti = context["ti"]
            ti.xcom_push(key="return_value", value=None)
            task = context["task"]  # validate and load of this group at once (one scheduler pass, not two)
            group_prefix = task.task_id.rpartition(".")[0] + "."  # "agreements."
            in_group = sorted(t for t in task.get_flat_relative_ids() if t.startswith(group_prefix))
            raise DownstreamTasksSkipped(tasks=[(t, ti.map_index) for t in in_group])
        return group

    @task(map_index_template="{{ group_label }}", execution_timeout=timeout("validate"))
    def validate(group: dict | None) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from roger_economic.pipeline import validate
        from roger_economic.report import phase_table
        from roger_economic_airflow.runtime import cpu_used

        if group is None:
            raise AirflowSkipException("extract found nothing new and nothing waiting")
        context = get_current_context()
        context["group_label"] = group["label"]  # type: ignore[typeddict-unknown-key]  # map_index_template shows it
        dry_run = bool(context["params"].get("dry_run"))
        results = validate(group["agreements"], context["run_id"], dry_run=dry_run)
        print(phase_table(results))
        for res in results.values():
            entries = res.pop("entries", None)
            quarantine = res.pop("quarantine", None)
            for entry in entries or []:
                print(
                    f"  would post {entry['kind']} of {entry['bill_id']} to journal {entry['journal']} "
                    f"({entry['year']}): {entry['entry']}"
                )
            for finding in quarantine or []:
                print(f"  would quarantine {finding['bill_id']}: {finding['rule']}: {finding['message']}")
        print(cpu_used())
        return group

    @task(map_index_template="{{ group_label }}", pool=ECONOMIC_POOL, execution_timeout=timeout("load"))
    def load(group: dict) -> dict:
        from roger_economic.pipeline import load
        from roger_economic.report import phase_table
        from roger_economic_airflow.runtime import cpu_used, endpoints

        context = get_current_context()
        context["group_label"] = group["label"]  # type: ignore[typeddict-unknown-key]  # map_index_template shows it
        if context["params"].get("dry_run"):
            print("dry run: nothing posted")
            return group
        results = load(group["agreements"], endpoints(), context["run_id"])
        print(phase_table(results))
        print(cpu_used())
        return group

    @task(trigger_rule="all_done", execution_timeout=timeout("summarise"), on_failure_callback=_summary_failed)
    def summarise() -> dict:
        """Print the per-agreement table, store the JSON report, alert; fail naming what did not complete.

        Runs whatever happened upstream: a failed plan, a group's step that failed as a whole, a project
        database that is down; each is in the report and the alert (built from the task states and the
        plan when the database cannot be read).
        """
        from roger_economic import report
        from roger_economic.states import Outcome
        from roger_economic_airflow.runtime import run_outcome

        context = get_current_context()
        dry_run = bool(context["params"].get("dry_run"))
        result = run_outcome(context, dry_run)
        print(report.table(result))
        unsent = None
        if not dry_run:  # before the report is stored: nothing after the outcome is known may keep it back
            from roger_economic_airflow.alerts import notify

            try:
                channels = notify(result)
                print(f"alert sent via {', '.join(channels)}" if channels else "no alert sent")
            except Exception as exc:  # raised once the report is stored
                unsent = exc
        print(f"run report: {report.save(result)}")
        if unsent is not None:
            raise unsent
        bad = [a for a in result["agreements"] if a["outcome"] != Outcome.OK]
        if result["problems"] or (bad and not dry_run):
            names = "; ".join(f"{a['agreement']} ({a['outcome']}: {' / '.join(a['problems'])})" for a in bad)
            raise RuntimeError(" ".join([*result["problems"], f"{len(bad)} agreement(s) did not complete: {names}"]))
        return result["totals"]

    @task_group(group_id="agreements")
    def per_group(group: dict) -> None:
        """extract → validate → load for one group: a mapped task group runs each group depth-first."""
        load(validate(extract(group)))

    groups = plan()
    # summarise reads every planned group itself (not load's output: a failed load pushes no XCom, and its
    # agreements must still be in the report and fail the run), and runs even when plan failed
    summary = summarise()
    groups >> summary
    per_group.expand(group=groups) >> summary


roger_bills_to_economic()
