"""Malformed Roger records, against the real Roger and e-conomic sandboxes (issue 14.3, 15.4).

Each record is judged against Roger's contract (openapi ``Bill``) when it is read: a record that
breaks it is quarantined on its own, with rule ``roger_contract``, the field's path and the offending
value, and its neighbours are booked in the same run. A JSON number where the contract says a decimal
string is such a break (never a float, never booked). A record without a usable id or version cannot
be held per bill: it is counted and named in the agreement's run-report line, never dropped silently.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from roger_economic import pipeline, report
from roger_economic.steps import extract
from tests.faults.helpers import GOOD_BILL as GOOD
from tests.faults.helpers import add_bills, arm, control, endpoints, fired, state_of
from tests.integration.helpers import agreement_status, live_entries, open_quarantine, staged_states


def _night(agreement_ids: list[str], day: str, run_id: str) -> dict[str, dict[str, Any]]:
    """One night in process: master data, extract (the day's window), validate, load; each step's results."""
    ep = endpoints()
    window = pipeline.Window(f"{day}T00:00:00Z", f"{day}T23:59:59Z")
    out = {
        "masterdata": pipeline.refresh_master_data(agreement_ids, ep, run_id),
        "extract": pipeline.extract(agreement_ids, window, ep, run_id),
        "validate": pipeline.validate(agreement_ids, run_id),
    }
    try:
        out["load"] = pipeline.load(agreement_ids, ep, run_id)
    except pipeline.AgreementsFailed as exc:
        out["load"] = {a: {"outcome": "failed", "message": m} for a, m in exc.failures.items()}
    return out


def _invoices(economic, i: int) -> dict[str, list[Decimal]]:
    """Bill id → the amounts of its live supplier-invoice entries in e-conomic."""
    out: dict[str, list[Decimal]] = {}
    for voucher in state_of(economic, i)["vouchers"]:
        if voucher["status"] == "deleted":
            continue
        for entry in voucher["entries"]:
            if entry.get("status") != "deleted" and entry.get("type", "supplierInvoice") == "supplierInvoice":
                bill = (entry.get("text") or "").rsplit("[", 1)[-1].rstrip("]")
                out.setdefault(bill, []).append(Decimal(str(entry["amount"])))
    return out


BROKEN_FIELDS = [  # (path, value): a list or an object where the contract says a string
    ("category_id", ["cat_office"]),
    ("currency", {"code": "DKK"}),
    ("document_type", ["bill"]),
    ("status", ["UPCOMING"]),
    ("payment.method_id", ["pm_bank"]),
    ("payment.currency", {"code": "DKK"}),
]


def test_one_malformed_record_quarantines_itself_and_its_group_is_booked(demo, monkeypatch):
    roger, economic = demo
    monkeypatch.setenv("ROGER_ECONOMIC_ROGER_PAGE_SIZE", "2")  # each rule breaks the 2nd record of one page
    day = "2026-12-10"
    ids = add_bills(roger, 1, day, 2 * len(BROKEN_FIELDS), issue_date=day, **GOOD)
    other = add_bills(roger, 2, day, 2, issue_date=day, **GOOD)
    for path, value in BROKEN_FIELDS:
        arm(roger, kind="malformed", scope="cmp_0001", bill_field=path, value=value, times=1)

    night = _night(["agr_0001", "agr_0002"], day, "night-malformed")

    assert len(fired(roger)) == len(BROKEN_FIELDS)
    assert {a: r["outcome"] for a, r in night["validate"].items()} == {"agr_0001": "ok", "agr_0002": "ok"}
    broken, good = ids[1::2], ids[0::2]
    states = staged_states("agr_0001")
    assert {b: states[b] for b in broken} == dict.fromkeys(broken, "quarantined")
    assert {b: states[b] for b in good} == dict.fromkeys(good, "booked")
    assert all(staged_states("agr_0002")[b] == "booked" for b in other)
    booked = live_entries(state_of(economic, 1))
    assert all(booked[(b, "supplierInvoice")] == 1 for b in good) and not any(
        booked[(b, "supplierInvoice")] for b in broken
    )
    held = {q.bill_id: q for q in open_quarantine("agr_0001")}
    assert set(held) == set(broken)
    for bill, (path, _value) in zip(broken, BROKEN_FIELDS, strict=True):
        q = held[bill]
        assert q.rule == "roger_contract", (bill, q.rule, q.message)
        assert path in q.message and path in (q.value or "") + q.message
    assert "category_id" in held[broken[0]].value and '["cat_office"]' in held[broken[0]].value
    assert night["validate"]["agr_0001"]["reasons"] == {"roger_contract": len(BROKEN_FIELDS)}


def test_a_json_number_for_an_amount_is_malformed_never_booked(demo, monkeypatch):
    roger, economic = demo
    monkeypatch.setenv("ROGER_ECONOMIC_ROGER_PAGE_SIZE", "1")  # each rule breaks the record of one page
    day = "2026-12-11"
    kinds = ["credit_note", "bill", "bill", "bill"]  # in feed order: one rule breaks each of the first three
    credit_note, vat_number, pattern, neighbour = [
        control(
            roger,
            "POST",
            "bills/add",
            {
                "company_id": "cmp_0001",
                "bill": {**GOOD, "document_type": kind, "issue_date": day, "updated_at": f"{day}T10:00:0{n}Z"},
            },
        )["id"]
        for n, kind in enumerate(kinds)
    ]
    arm(roger, kind="malformed", scope="cmp_0001", bill_field="amount", raw="1e9", times=1)
    arm(roger, kind="malformed", scope="cmp_0001", bill_field="vat_amount", raw="25.0", times=1)
    arm(roger, kind="malformed", scope="cmp_0001", bill_field="amount", value="12.345", times=1)

    _night(["agr_0001"], day, "night-numbers")

    invoices = _invoices(economic, 1)
    assert not any(abs(a) >= Decimal("1000000") for amounts in invoices.values() for a in amounts), invoices
    held = {q.bill_id: q for q in open_quarantine("agr_0001")}
    assert {b: (q.rule, q.value) for b, q in held.items()} == {
        credit_note: ("roger_contract", "amount=1000000000"),
        vat_number: ("roger_contract", "vat_amount=25.0"),
        pattern: ("roger_contract", 'amount="12.345"'),
    }
    assert "amount 1000000000 is a JSON number" in held[credit_note].message
    assert list(invoices) == [neighbour] and [abs(a) for a in invoices[neighbour]] == [Decimal("125.00")]


def test_records_without_a_usable_id_or_version_are_named_in_the_report(demo, monkeypatch):
    roger, _economic = demo
    monkeypatch.setenv("ROGER_ECONOMIC_ROGER_PAGE_SIZE", "2")
    day = "2026-12-12"
    ids = add_bills(roger, 1, day, 4, issue_date=day, **GOOD)
    arm(roger, kind="malformed", scope="cmp_0001", bill_field="id", value=12345, times=1)
    arm(roger, kind="malformed", scope="cmp_0001", bill_field="version", value="2\n<b>x</b>", times=1)

    night = _night(["agr_0001", "agr_0002"], day, "night-unusable")

    extract = night["extract"]["agr_0001"]
    assert extract["outcome"] == "incomplete" and extract["unusable_records"] == 2
    assert "record 2 (id 12345" in extract["message"] and "record 4 (id" in extract["message"]
    assert "\n" not in extract["message"]  # Roger's text escaped, not a second log line
    assert night["extract"]["agr_0002"]["outcome"] == "ok"
    # its watermark stays: the records are read, and named, again until Roger sends them whole
    assert agreement_status("agr_0001") is None or agreement_status("agr_0001").extracted_until is None
    assert agreement_status("agr_0002").extracted_until == f"{day}T23:59:59Z"
    states = staged_states("agr_0001")
    assert states[ids[0]] == states[ids[2]] == "booked" and ids[1] not in states and ids[3] not in states
    line = next(
        a
        for a in report.build("night-unusable", ["agr_0001", "agr_0002"])["agreements"]
        if a["agreement"] == "agr_0001"
    )
    assert line["outcome"] == "incomplete" and line["unusable_records"] == 2
    assert any("record 2 (id 12345" in p for p in line["problems"])


def test_a_bill_staged_before_records_were_judged_is_judged_when_validated(demo):
    from collections import Counter

    from tests import factories

    pipeline.refresh_master_data(["agr_0001"], endpoints(), "night-legacy")
    good = factories.bill(id="bill_LEGACY_OK")
    bad = factories.bill(id="bill_LEGACY_BAD", category_id=["cat_office"])
    extract.stage("agr_0001", [good, bad], "night-before", Counter())  # as the old extract stored them

    result = pipeline.validate(["agr_0001"], "night-legacy")

    assert result["agr_0001"]["outcome"] == "ok"
    assert result["agr_0001"]["reasons"] == {"roger_contract": 1}
    states = staged_states("agr_0001")
    assert states["bill_LEGACY_BAD"] == "quarantined" and states["bill_LEGACY_OK"] == "planned"
    (held,) = [q for q in open_quarantine("agr_0001") if q.bill_id == "bill_LEGACY_BAD"]
    assert held.rule == "roger_contract" and held.value == 'category_id=["cat_office"]'
