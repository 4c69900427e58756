"""What the end-to-end tests read back from the sandboxes and the project database."""

from __future__ import annotations

import json
import re
import urllib.request
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select

from roger_economic.db import models, session
from sandboxes import world

ROOT = Path(__file__).resolve().parents[2]
BILL_ID = re.compile(r"\[(bill_[A-Z0-9]+)\]")


def economic_state(economic, i: int) -> dict[str, Any]:
    url = f"{economic.base_url}/_control/state?agreement={world.agreement_number(i)}"
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.loads(resp.read(), parse_float=Decimal)


def roger_bills(roger, i: int) -> list[dict[str, Any]]:
    return roger.control("GET", f"bills?company_id={world.company_id(i)}")["data"]


def live_entries(state: dict[str, Any]) -> Counter:
    """(bill id, entry type) → number of non-deleted entries in the agreement's journals."""
    found: Counter = Counter()
    for voucher in state["vouchers"]:
        if voucher["status"] == "deleted":
            continue
        for entry in voucher["entries"]:
            if entry.get("status") == "deleted":
                continue
            match = BILL_ID.search(entry.get("text", ""))
            if match:
                found[(match.group(1), entry.get("entryType"))] += 1
    return found


def ledger(agreement_id: str) -> list[models.Posting]:
    with session() as sess:
        return list(sess.scalars(select(models.Posting).where(models.Posting.agreement_id == agreement_id)))


def staged_states(agreement_id: str) -> dict[str, str]:
    with session() as sess:
        return dict(
            sess.execute(
                select(models.StagedBill.bill_id, models.StagedBill.state).where(
                    models.StagedBill.agreement_id == agreement_id
                )
            ).all()
        )


def open_quarantine(agreement_id: str) -> list[models.Quarantine]:
    with session() as sess:
        return list(
            sess.scalars(
                select(models.Quarantine).where(
                    models.Quarantine.agreement_id == agreement_id,
                    models.Quarantine.released_at.is_(None),
                    models.Quarantine.severity == "stop",
                )
            )
        )


def run_dags(conf: dict[str, Any], master_data: bool = True):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors
    if master_data:
        md = bag.dags["roger_master_data"].test()
        assert md.state == "success", "master data run failed"
    return bag.dags["roger_bills_to_economic"].test(run_conf=conf)


def agreement_status(agreement_id: str) -> models.AgreementStatus:
    with session() as sess:
        return sess.get(models.AgreementStatus, agreement_id)


def task_states(run_id: str) -> dict[str, set[str]]:
    """Task id → the states of its task instances (all map indexes) in one run of the bills DAG."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    states: dict[str, set[str]] = {}
    with create_session() as sess:
        for task_id, state in sess.execute(
            select(TaskInstance.task_id, TaskInstance.state).where(
                TaskInstance.dag_id == "roger_bills_to_economic", TaskInstance.run_id == run_id
            )
        ):
            states.setdefault(task_id, set()).add(str(state))
    return states
