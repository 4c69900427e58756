"""A fixed set of 55 varied bills across 3 agreements produces exactly the checked-in journal rows.

45 were generated (``_write_input_bills``); 10 were added by hand: each FI form (+71, +73, +04, +75) with
e-conomic's documented payment type numbers, the plausibility rules (VAT above the gross or negative, a
partial and an over-payment, a receipt whose payment differs), and a +75 bill on an agreement that lacks +75.

The expected rows live in ``tests/golden/journal_rows.json`` (one block per bill: its outcome,
its findings, and the exact entries). A change in any booking rule shows up here as a diff to
review against booking-rules.md. After an intended change: ``UPDATE_GOLDEN=1 pytest <this file>``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from roger_economic import transform, validation
from roger_economic.economic.jsonnum import to_plain
from roger_economic.prepare import prepare
from sandboxes.roger.data import generate_company
from tests import factories as f

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "journal_rows.json"
BILLS = GOLDEN.with_name("bills.json")
SETUPS = {  # three agreements, three ways of being set up
    "agr_0001": {"i": 1},
    "agr_0002": {
        "i": 2,
        "supplier_policy": "default",
        "default_supplier": 1,
        "invoice_journal": 1,
        "payment_journal": 1,
        "closed_period_policy": "next_open_date",
    },
    "agr_0003": {"i": 3, "supplier_policy": "quarantine", "default_account": None, "lacks_payment_types": (17,)},
}


def journal_rows() -> dict:
    contexts = {}
    for aid, setup in SETUPS.items():
        setup = dict(setup)
        i = setup.pop("i")
        snapshots = f.snapshots(i)
        lacking = setup.pop("lacks_payment_types", ())  # what this agreement's GET /payment-types leaves out
        snapshots["payment_types"] = [t for t in snapshots["payment_types"] if t["paymentTypeNumber"] not in lacking]
        contexts[aid] = f.context(aid, i, snapshots=snapshots, **setup)
    bills = [(b["agreement_id"], b["bill"]) for b in json.loads(BILLS.read_text(encoding="utf-8"))]
    frame = prepare(bills, contexts)
    findings = validation.run(frame)
    entries, outcomes = transform.build(frame, findings, contexts)
    out: dict = {}
    for o in outcomes:
        out[f"{o.agreement_id} {o.bill_id}"] = {
            "outcome": o.state,
            "findings": sorted(f"{x.severity} {x.entry} {x.rule}: {x.value}" for x in o.findings),
            "entries": [],
        }
    for e in entries:
        out[f"{e.agreement_id} {e.bill_id}"]["entries"].append(
            {"kind": e.kind, "journal": e.journal, "year": e.year, "entry": to_plain(e.entry)}
        )
    return out


def _write_input_bills() -> None:
    """The input set: 15 generated bills per agreement (20% with a problem), checked in as data."""
    rows = []
    for aid, setup in SETUPS.items():
        for bill in generate_company(setup["i"], 15, 11, "2026-11-26T00:00:00Z", 30, 0.2, 0.4):
            bill.pop("_problem", None)
            rows.append({"agreement_id": aid, "bill": bill})
    BILLS.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def test_golden_journal_rows():
    if os.environ.get("UPDATE_GOLDEN") == "1" and not BILLS.exists():
        _write_input_bills()
    got = journal_rows()
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(got, indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
    expected = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert len(expected) >= 40
    assert set(got) == set(expected)
    for key in expected:
        assert got[key] == expected[key], key
