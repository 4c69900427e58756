"""
### Roger + e-conomic master data

Refreshes, for every active agreement (or the ones named in `agreements`),
e-conomic's accounts, journals, accounting years and periods, VAT accounts,
currencies, suppliers and `/self`, and Roger's categories and payment methods.
Records the scanning add-on and API access, reports mapping gaps (unmapped
categories or payment methods, mappings to barred accounts, wrong journals),
and updates the `roger_economic://master_data` Asset the bills DAG reads.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, Param, dag, get_current_context, task

from roger_economic_airflow import ECONOMIC_POOL, MASTER_DATA_URI
from roger_economic_airflow.limits import timeout

MASTER_DATA = Asset(MASTER_DATA_URI)


@dag(
    dag_id="roger_master_data",
    schedule="0 1 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="Europe/Copenhagen"),
    catchup=False,
    max_active_runs=1,
    tags=["roger", "e-conomic", "master-data"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30), "execution_timeout": timeout("default")},
    params={"agreements": Param([], type="array", items={"type": "string"}, description="agreement ids; empty = all")},
    doc_md=__doc__,
)
def roger_master_data():
    @task(execution_timeout=timeout("plan"))
    def plan() -> list[dict]:
        from roger_economic.config import active_agreement_ids
        from roger_economic.db import session
        from roger_economic.pipeline import groups
        from roger_economic_airflow.runtime import max_groups, selected_agreements

        with session() as sess:
            ids = active_agreement_ids(sess, selected_agreements(get_current_context()))
        return groups(ids, max_groups=max_groups())

    @task(map_index_template="{{ group_label }}", pool=ECONOMIC_POOL, execution_timeout=timeout("refresh"))
    def refresh(group: dict) -> dict:
        from roger_economic.pipeline import refresh_master_data
        from roger_economic_airflow.runtime import endpoints

        context = get_current_context()
        context["group_label"] = group["label"]  # type: ignore[typeddict-unknown-key]  # map_index_template shows it
        results = refresh_master_data(group["agreements"], endpoints(), context["run_id"])
        for aid, res in results.items():
            print(f"{aid}: {res}")
        return results

    @task(outlets=[MASTER_DATA], trigger_rule="all_done", execution_timeout=timeout("publish"))
    def publish(results: list[dict]) -> dict:
        """Report gaps per agreement; fail naming agreements whose refresh failed."""
        from sqlalchemy import select

        from roger_economic.db import models, session
        from roger_economic.states import Outcome

        merged = {aid: res for part in results if part for aid, res in part.items()}
        with session() as sess:
            for status in sess.scalars(
                select(models.AgreementStatus).where(models.AgreementStatus.agreement_id.in_(list(merged)))
            ):
                for gap in status.mapping_gaps or []:
                    print(f"{status.agreement_id}: mapping gap ({gap['kind']} {gap['item']}): {gap['message']}")
        bad = {a: r.get("message") for a, r in merged.items() if r.get("outcome") != Outcome.OK}
        if bad:
            raise RuntimeError("master data not refreshed for: " + "; ".join(f"{a}: {m}" for a, m in bad.items()))
        return {"agreements": len(merged)}

    publish(refresh.expand(group=plan()))


roger_master_data()
