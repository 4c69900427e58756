"""Both DAGs, end to end, against both sandboxes: what an accountant would check afterwards."""

from __future__ import annotations

from roger_economic import report
from roger_economic.config import load_file
from tests.economic_schema import errors
from tests.integration.helpers import (
    ROOT,
    agreement_status,
    economic_state,
    ledger,
    live_entries,
    open_quarantine,
    roger_bills,
    run_dags,
    staged_states,
    task_states,
)

WINDOW = {"from_date": "2026-10-01", "to_date": "2026-11-26"}
AGREEMENTS = {1: "agr_0001", 2: "agr_0002", 3: "agr_0003"}


def test_bills_become_entries_exactly_once(project_db, airflow_db, sandboxes):
    roger, economic = sandboxes
    load_file(ROOT / "config" / "agreements.example.yaml")

    first = run_dags(WINDOW)
    assert first.state == "success"

    before = {}
    all_bill_ids = {i: {b["id"] for b in roger_bills(roger, i)} for i in AGREEMENTS}
    for i, aid in AGREEMENTS.items():
        state = economic_state(economic, i)
        before[i] = (len(state["vouchers"]), state["counters"]["vouchers"].get("POST", 0))
        # every voucher e-conomic accepted validates against e-conomic's own schema
        for voucher in state["vouchers"]:
            assert errors(voucher["payload"]) == [], voucher["payload"]
        entries = live_entries(state)
        # no bill of another agreement in this agreement's journals
        others = set().union(*(ids for j, ids in all_bill_ids.items() if j != i))
        assert not {bill for bill, _ in entries} & others
        # every booked bill: exactly one invoice entry, and one payment entry when paid
        bills = {b["id"]: b for b in roger_bills(roger, i)}
        states = staged_states(aid)
        posted = [p for p in ledger(aid) if p.status == "posted"]
        assert posted, f"{aid} booked nothing"
        for p in posted:
            kind = "supplierInvoice" if p.entry_kind == "invoice" else "supplierPayment"
            assert entries[(p.bill_id, kind)] == 1, (aid, p.bill_id, kind)
        for bill_id, bill_state in states.items():
            bill = bills[bill_id]
            if bill_state == "booked":
                assert entries[(bill_id, "supplierInvoice")] == 1
                paid = bill["status"] == "PAID" and (bill["document_type"] != "credit_note" or bill.get("payment"))
                assert entries[(bill_id, "supplierPayment")] == (1 if paid else 0), bill_id
        # nothing lost: every bill ends booked, quarantined with a reason, waiting, or withdrawn
        assert set(states) == set(bills), f"{aid}: bills never staged"
        assert set(states.values()) <= {"booked", "quarantined", "waiting", "withdraw", "withdrawn"}
        quarantined = {q.bill_id for q in open_quarantine(aid)}
        assert {b for b, s in states.items() if s == "quarantined"} == quarantined

    # the agreement with mapping gaps: its bad bills quarantined with reasons, its good ones booked
    reasons = {q.rule for q in open_quarantine("agr_0003")}
    assert {"category_mapped", "supplier_resolved"} <= reasons
    gaps = {(g["kind"], g["item"]) for g in agreement_status("agr_0003").mapping_gaps}
    assert {("category", "cat_services"), ("category", "cat_marketing"), ("payment_method", "pm_mobilepay")} <= gaps
    assert any(p.status == "posted" for p in ledger("agr_0003"))

    second = run_dags(WINDOW, master_data=False)
    assert second.state == "success"
    # nothing new and nothing waiting: the rerun skips validation and loading, and still reports each agreement
    states = task_states(second.run_id)
    assert states["agreements.extract"] == {"success"} and states["summarise"] == {"success"}
    assert states["agreements.validate"] == {"skipped"} and states["agreements.load"] == {"skipped"}
    rerun = report.build(second.run_id, list(AGREEMENTS.values()))
    assert [a["outcome"] for a in rerun["agreements"]] == ["ok"] * len(AGREEMENTS)
    assert rerun["totals"]["invoices"] == rerun["totals"]["payments"] == 0
    for i in AGREEMENTS:
        state = economic_state(economic, i)
        assert (len(state["vouchers"]), state["counters"]["vouchers"].get("POST", 0)) == before[i]
