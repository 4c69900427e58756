"""A bill's life after its first run: quarantine that releases itself, changes and deletions in Roger."""

from __future__ import annotations

import copy
from decimal import Decimal

import yaml
from sqlalchemy import select

from roger_economic.config import load_file
from roger_economic.db import models, session
from tests.integration.helpers import (
    ROOT,
    economic_state,
    ledger,
    live_entries,
    open_quarantine,
    roger_bills,
    run_dags,
    staged_states,
)

WINDOW = {"from_date": "2026-10-01", "to_date": "2026-11-26"}


def _config_with(tmp_path, agreement_id: str, **changes):
    doc = yaml.safe_load((ROOT / "config" / "agreements.example.yaml").read_text(encoding="utf-8"))
    for item in doc["agreements"]:
        if item["id"] == agreement_id:
            for key, value in changes.items():
                if isinstance(value, dict) and isinstance(item.get(key), dict):
                    item[key] = {**item[key], **value}
                else:
                    item[key] = copy.deepcopy(value)
    path = tmp_path / "agreements.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def test_quarantine_releases_itself_once_the_mapping_is_added(project_db, airflow_db, sandboxes, tmp_path):
    _roger, economic = sandboxes
    load_file(ROOT / "config" / "agreements.example.yaml")
    assert run_dags(WINDOW).state == "success"
    held = {q.bill_id for q in open_quarantine("agr_0003") if q.rule == "category_mapped"}
    assert held, "the demo agreement with gaps should hold bills for unmapped categories"

    # the accountant maps the missing categories and sets a default account; nothing else is done by hand
    fixed = _config_with(
        tmp_path,
        "agr_0003",
        default_account=3990,
        categories={"cat_marketing": {"account": 2200}, "cat_travel": {"account": 2780}},
    )
    load_file(fixed, replace=True)  # the database is the source of truth: a changed file applies when asked
    assert run_dags(WINDOW, master_data=False).state == "success"

    states = staged_states("agr_0003")
    still = {q.bill_id for q in open_quarantine("agr_0003") if q.rule == "category_mapped"}
    assert still == set()
    entries = live_entries(economic_state(economic, 3))
    with session() as sess:
        released = list(
            sess.scalars(
                select(models.Quarantine).where(
                    models.Quarantine.agreement_id == "agr_0003", models.Quarantine.rule == "category_mapped"
                )
            )
        )
    assert {q.bill_id for q in released} == held
    for q in released:
        assert q.released_at is not None and "passes" in q.release_reason
        if states[q.bill_id] == "booked":  # other rules (supplier policy) may still hold some of them
            assert entries[(q.bill_id, "supplierInvoice")] == 1
    assert any(states[b] == "booked" for b in held)


def test_changed_bill_replaces_its_draft_and_becomes_a_review_item_once_booked(project_db, airflow_db, sandboxes):
    roger, economic = sandboxes
    load_file(ROOT / "config" / "agreements.example.yaml")
    assert run_dags(WINDOW).state == "success"
    states = staged_states("agr_0001")
    bills = {b["id"]: b for b in roger_bills(roger, 1)}
    target = next(
        b
        for b, s in states.items()
        if s == "booked" and bills[b]["status"] in ("UPCOMING", "INITIALIZED") and bills[b]["document_type"] == "bill"
    )
    new_amount = "4321.10"
    roger.control(
        "POST",
        "bills/update",
        {"company_id": "cmp_0001", "bill_id": target, "changes": {"amount": new_amount, "vat_amount": None}},
    )
    assert run_dags(WINDOW, master_data=False).state == "success"

    state = economic_state(economic, 1)
    assert live_entries(state)[(target, "supplierInvoice")] == 1
    amounts = [
        e["amount"]
        for v in state["vouchers"]
        if v["status"] != "deleted"
        for e in v["entries"]
        if target in e.get("text", "") and e.get("status") != "deleted"
    ]
    assert amounts == [Decimal("-4321.10")]
    rows = sorted((p.bill_version, p.status) for p in ledger("agr_0001") if p.bill_id == target)
    first_version = bills[target]["version"]
    assert rows == [(first_version, "superseded"), (first_version + 1, "posted")]

    # the accountant books the journal; a later change must not edit anything, only ask for a review
    economic.control("POST", "book", {"agreement": 700001, "journal": 2})
    vouchers_before = len(economic_state(economic, 1)["vouchers"])
    roger.control(
        "POST",
        "bills/update",
        {"company_id": "cmp_0001", "bill_id": target, "changes": {"amount": "99.00", "vat_amount": None}},
    )
    assert run_dags(WINDOW, master_data=False).state == "success"
    assert len(economic_state(economic, 1)["vouchers"]) == vouchers_before
    with session() as sess:
        items = list(sess.scalars(select(models.ReviewItem).where(models.ReviewItem.bill_id == target)))
    assert len(items) == 1 and "reverse it by hand" in items[0].message


def test_deleted_bill_withdraws_its_draft_entries(project_db, airflow_db, sandboxes):
    roger, economic = sandboxes
    load_file(ROOT / "config" / "agreements.example.yaml")
    assert run_dags(WINDOW).state == "success"
    states = staged_states("agr_0001")
    target = next(b for b, s in states.items() if s == "booked")
    assert live_entries(economic_state(economic, 1))[(target, "supplierInvoice")] == 1
    roger.control("POST", "bills/update", {"company_id": "cmp_0001", "bill_id": target, "changes": {"deleted": True}})
    assert run_dags(WINDOW, master_data=False).state == "success"
    entries = live_entries(economic_state(economic, 1))
    assert entries[(target, "supplierInvoice")] == 0 and entries[(target, "supplierPayment")] == 0
    assert staged_states("agr_0001")[target] == "withdrawn"
    assert {p.status for p in ledger("agr_0001") if p.bill_id == target} == {"withdrawn"}
