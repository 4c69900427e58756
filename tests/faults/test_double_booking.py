"""Sequences that once booked a bill twice (issues 14 and 15): each is replayed against the real sandboxes.

- an outage, then an edit in Roger: the next night posted both versions;
- a lost answer, then the accountant books the journal: recovery looked only among the drafts;
- overlapping runs with edits between them: an older version planned beside a newer one;
- an invoice e-conomic refuses: its payment was posted alone.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from roger_economic import pipeline
from roger_economic.db import models, session
from roger_economic.posting import ledger
from sandboxes import world
from tests.faults.helpers import (
    BEFORE,
    SINCE,
    add_bills,
    arm,
    control,
    disarm,
    endpoints,
    fired,
    ledger_rows,
    prepare,
    run_bills,
    run_master_data,
    state_of,
    window,
)
from tests.integration.helpers import live_entries, staged_states

VOUCHERS = r"^/journals/\d+/vouchers$"
AGREEMENT = world.agreement_number(1)  # agr_0001's e-conomic agreement: invoices in journal 2, payments in 3


def _amounts(economic, bill_id: str, entry_type: str = "supplierInvoice") -> list[Decimal]:
    """The amounts of the bill's live (draft or booked) entries of one type in agr_0001's journals."""
    return [
        e["amount"]
        for v in state_of(economic, 1)["vouchers"]
        if v["status"] != "deleted"
        for e in v["entries"]
        if e.get("status") != "deleted" and e.get("entryType") == entry_type and f"[{bill_id}]" in e.get("text", "")
    ]


def _edit(roger, bill_id: str, amount: str, updated_at: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "company_id": world.company_id(1),
        "bill_id": bill_id,
        "changes": {"amount": amount, "vat_amount": None},
    }
    if updated_at:
        body["updated_at"] = updated_at
    return control(roger, "POST", "bills/update", body)


def _report_line(run, aid: str = "agr_0001") -> dict[str, Any]:
    return next(a for a in run.report["agreements"] if a["agreement"] == aid)


def _book_journals(economic) -> None:
    """The accountant books the kassekladde: drafts become booked entries of the accounting year."""
    for journal in (2, 3):
        control(economic, "POST", "book", {"agreement": AGREEMENT, "journal": journal})


# ---------------------------------------------------------------------------- 1. an outage, then an edit


def test_outage_then_an_edit_books_only_the_newest_version(demo, airflow_db):
    roger, economic = demo
    run_master_data()
    day = "2026-12-01"
    bills = add_bills(roger, 1, day, 7, status="UPCOMING", document_type="bill")
    arm(economic, kind="status", status=503, scope=str(AGREEMENT), method="POST", path=VOUCHERS, times=-1)
    night = run_bills(window(day))
    assert night.state == "failed" and "agr_0001" in night.failures
    disarm(economic)
    assert state_of(economic, 1)["vouchers"] == []
    edited = bills[0]
    new = _edit(roger, edited, "4321.10", f"{day}T12:00:00Z")

    next_night = run_bills(window(day))

    assert next_night.state == "success", next_night.failures
    assert _report_line(next_night)["invoices"] == 7  # 7 invoices for 7 bills, not 8
    entries = live_entries(state_of(economic, 1))
    assert {bill: entries[(bill, "supplierInvoice")] for bill in bills} == dict.fromkeys(bills, 1)
    assert _amounts(economic, edited) == [Decimal("-4321.10")]
    rows = sorted(
        (r.bill_version, r.status) for r in ledger_rows("agr_0001") if r.bill_id == edited and r.entry_kind == "invoice"
    )
    assert rows == [(new["version"] - 1, "superseded"), (new["version"], "posted")]
    assert {staged_states("agr_0001")[b] for b in bills} == {"booked"}


def test_outage_then_a_deletion_posts_nothing_for_the_deleted_bill(demo, airflow_db):
    roger, economic = demo
    run_master_data()
    day = "2026-12-02"
    bills = add_bills(roger, 1, day, 3, status="UPCOMING", document_type="bill")
    arm(economic, kind="status", status=503, scope=str(AGREEMENT), method="POST", path=VOUCHERS, times=-1)
    assert run_bills(window(day)).state == "failed"
    disarm(economic)
    control(
        roger,
        "POST",
        "bills/update",
        {
            "company_id": world.company_id(1),
            "bill_id": bills[0],
            "changes": {"deleted": True},
            "updated_at": f"{day}T12:00:00Z",
        },
    )

    assert run_bills(window(day)).state == "success"

    entries = live_entries(state_of(economic, 1))
    assert {b: entries[(b, "supplierInvoice")] for b in bills} == {bills[0]: 0, bills[1]: 1, bills[2]: 1}
    assert {r.status for r in ledger_rows("agr_0001") if r.bill_id == bills[0]} == {"withdrawn"}
    assert staged_states("agr_0001")[bills[0]] == "withdrawn"


# ---------------------------------------------------------------------------- 2. lost answer, then booked


def test_lost_answer_then_the_accountant_books_the_journal_books_nothing_again(demo):
    roger, economic = demo
    prepare(["agr_0001"])
    planned = sum(1 for r in ledger_rows("agr_0001") if r.status == "planned")
    # the first batch is committed in e-conomic, and every answer to it is lost: the load gives up
    arm(economic, kind="lost_answer", scope=str(AGREEMENT), method="POST", path=VOUCHERS, times=4)
    with pytest.raises(pipeline.AgreementsFailed, match=r"agr_0001"):
        pipeline.load(["agr_0001"], endpoints(), "night-1")
    assert [f["kind"] for f in fired(economic)] == ["lost_answer"] * 4
    in_flight = [r for r in ledger_rows("agr_0001") if r.status == "posting"]
    assert in_flight
    # the next morning the accountant books the journals; an hour later e-conomic has forgotten the key
    _book_journals(economic)
    assert state_of(economic, 1)["entries"]["draft"] == 0
    control(economic, "POST", "clock", {"advance_seconds": 3700})
    posts_before = state_of(economic, 1)["counters"]["vouchers"]["POST"]

    result = pipeline.load(["agr_0001"], endpoints(), "night-2")

    assert result["agr_0001"]["outcome"] == "ok"
    state = state_of(economic, 1)
    assert max(live_entries(state).values()) == 1  # booked once: found among the year's booked entries
    assert result["agr_0001"]["recovered"] == result["agr_0001"]["recovered_booked"] == len(in_flight)
    rows = ledger_rows("agr_0001")
    assert {r.status for r in rows} == {"posted"} and len(rows) == planned
    assert sum(1 for v in state["vouchers"] if v["status"] != "deleted") == planned
    # only the journal never posted got a POST; the recovered invoices got their PDF, once
    remaining = {r.journal_number for r in rows if r.id not in {x.id for x in in_flight}}
    assert state["counters"]["vouchers"]["POST"] == posts_before + len(remaining)
    pages = {
        (v["accountingYear"], v["voucherNumber"]): (v["attachment"] or {}).get("pages", 0) for v in state["vouchers"]
    }
    for row in rows:
        if row.entry_kind == "invoice" and row.payload.get("has_document"):
            assert pages[(row.accounting_year, row.voucher_number)] == 1, row.bill_id

    # a later change of a bill recovered as booked is a review item, never a second entry
    target = next(r for r in in_flight if r.entry_kind == "invoice")
    _edit(roger, target.bill_id, "99.00", "2026-11-26T20:00:00Z")
    prepare(["agr_0001"], "night-3-prepare")
    assert pipeline.load(["agr_0001"], endpoints(), "night-3")["agr_0001"]["outcome"] == "ok"
    assert live_entries(state_of(economic, 1))[(target.bill_id, "supplierInvoice")] == 1
    with session() as sess:
        items = list(sess.scalars(select(models.ReviewItem).where(models.ReviewItem.bill_id == target.bill_id)))
    assert len(items) == 1 and "reverse it by hand" in items[0].message


@pytest.mark.parametrize("booked", [False, True], ids=["still-a-draft", "booked-meanwhile"])
def test_lost_answer_then_an_edit_finds_the_older_version_before_replacing_it(demo, booked):
    """The older version's answer was lost (it is in e-conomic) and the bill changed before the next night:
    recovery finds it first; a draft is then deleted and replaced, a booked one becomes a review item."""
    roger, economic = demo
    prepare(["agr_0001"])
    arm(economic, kind="lost_answer", scope=str(AGREEMENT), method="POST", path=VOUCHERS, times=4)
    with pytest.raises(pipeline.AgreementsFailed, match=r"agr_0001"):
        pipeline.load(["agr_0001"], endpoints(), "night-1")
    target = next(r for r in ledger_rows("agr_0001") if r.status == "posting" and r.entry_kind == "invoice")
    old_amount = _amounts(economic, target.bill_id)
    assert len(old_amount) == 1
    if booked:
        _book_journals(economic)
    control(economic, "POST", "clock", {"advance_seconds": 3700})
    _edit(roger, target.bill_id, "1234.50", "2026-11-26T20:00:00Z")
    prepare(["agr_0001"], "night-2-prepare")  # plans the newer version while the older one is still in flight

    assert pipeline.load(["agr_0001"], endpoints(), "night-2")["agr_0001"]["outcome"] == "ok"

    assert max(live_entries(state_of(economic, 1)).values()) == 1
    rows = sorted(
        (r.bill_version, r.status)
        for r in ledger_rows("agr_0001")
        if r.bill_id == target.bill_id and r.entry_kind == "invoice"
    )
    if booked:  # nothing is edited once booked: the accountant reverses it by hand
        assert _amounts(economic, target.bill_id) == old_amount
        assert rows == [(target.bill_version, "posted"), (target.bill_version + 1, "review")]
        with session() as sess:
            items = list(sess.scalars(select(models.ReviewItem).where(models.ReviewItem.bill_id == target.bill_id)))
        assert len(items) == 1 and "reverse it by hand" in items[0].message
    else:
        assert _amounts(economic, target.bill_id) == [Decimal("-1234.50")]
        assert rows == [(target.bill_version, "superseded"), (target.bill_version + 1, "posted")]


def test_a_draft_booked_between_the_check_and_the_delete_is_a_review_item_not_gone(demo):
    """The bill changed; its entry was still a draft when looked at, but the DELETE no longer finds it (the
    accountant booked the journal in between): the change is a review item, the newer version is not posted."""
    roger, economic = demo
    prepare(["agr_0001"])
    assert pipeline.load(["agr_0001"], endpoints(), "night-1")["agr_0001"]["outcome"] == "ok"
    target = next(r for r in ledger_rows("agr_0001") if r.status == "posted" and r.entry_kind == "invoice")
    old_amount = _amounts(economic, target.bill_id)
    _edit(roger, target.bill_id, "555.00", "2026-11-26T20:00:00Z")
    prepare(["agr_0001"], "night-2-prepare")
    arm(economic, kind="status", status=404, scope=str(AGREEMENT), method="DELETE", path=r"^/journals/\d+/entries/\d+$")

    assert pipeline.load(["agr_0001"], endpoints(), "night-2")["agr_0001"]["outcome"] == "ok"

    assert [f["method"] for f in fired(economic)] == ["DELETE"]
    assert _amounts(economic, target.bill_id) == old_amount  # nothing posted beside it
    rows = sorted(
        (r.bill_version, r.status)
        for r in ledger_rows("agr_0001")
        if r.bill_id == target.bill_id and r.entry_kind == "invoice"
    )
    assert rows == [(target.bill_version, "posted"), (target.bill_version + 1, "review")]
    with session() as sess:
        items = list(sess.scalars(select(models.ReviewItem).where(models.ReviewItem.bill_id == target.bill_id)))
    assert len(items) == 1 and "reverse it by hand" in items[0].message


# ---------------------------------------------------------------------------- 3. overlapping runs


def test_overlapping_runs_with_edits_between_them_book_one_version(demo, monkeypatch):
    """Run A judges a bill's version; before A plans, the bill is edited and run B stages and plans the newer
    version; then A plans what it judged. The older version must not be planned beside the newer one (it was,
    and the next load booked both); a third run after another edit replaces the draft with the newest."""
    roger, economic = demo
    monkeypatch.setenv("ROGER_ECONOMIC_DATA_DOCS", "0")
    (bill,) = add_bills(roger, 1, "2026-11-26", 1, status="UPCOMING", document_type="bill")
    ids, ep, span = ["agr_0001"], endpoints(), pipeline.Window(SINCE, BEFORE)
    assert pipeline.refresh_master_data(ids, ep, "md")["agr_0001"]["outcome"] == "ok"
    real_plan = ledger.plan
    overtaken: list[int] = []

    def plan_after_run_b(sess, entries, run_id, *args: Any, **kwargs: Any):
        if run_id == "run-a":  # run B overtakes run A between A's judgement and A's planning
            overtaken.append(_edit(roger, bill, "2000.00", "2026-11-26T20:00:00Z")["version"])
            assert pipeline.extract(ids, span, ep, "run-b")["agr_0001"]["outcome"] == "ok"
            assert pipeline.validate(ids, "run-b")["agr_0001"]["outcome"] == "ok"
        return real_plan(sess, entries, run_id, *args, **kwargs)

    monkeypatch.setattr(ledger, "plan", plan_after_run_b)
    assert pipeline.extract(ids, span, ep, "run-a")["agr_0001"]["outcome"] == "ok"
    assert pipeline.validate(ids, "run-a")["agr_0001"]["outcome"] == "ok"
    assert overtaken, "run B should have overtaken run A"
    assert pipeline.load(ids, ep, "run-a")["agr_0001"]["outcome"] == "ok"
    assert pipeline.load(ids, ep, "run-b")["agr_0001"]["outcome"] == "ok"

    assert _amounts(economic, bill) == [Decimal("-2000.00")]
    invoices = {r.bill_version: r.status for r in ledger_rows("agr_0001") if r.bill_id == bill}
    assert invoices == {overtaken[0]: "posted"}  # the older version A judged was never planned

    # run C, after one more edit: the newest version replaces the draft, still one entry
    newest = _edit(roger, bill, "3000.00", "2026-11-26T21:00:00Z")["version"]
    assert pipeline.extract(ids, span, ep, "run-c")["agr_0001"]["outcome"] == "ok"
    assert pipeline.validate(ids, "run-c")["agr_0001"]["outcome"] == "ok"
    assert pipeline.load(ids, ep, "run-c")["agr_0001"]["outcome"] == "ok"
    assert _amounts(economic, bill) == [Decimal("-3000.00")]
    assert max(live_entries(state_of(economic, 1)).values()) == 1
    rows = {r.bill_version: r.status for r in ledger_rows("agr_0001") if r.bill_id == bill}
    assert rows == {overtaken[0]: "superseded", newest: "posted"}
    assert staged_states("agr_0001")[bill] == "booked"


def test_three_overlapping_bills_runs_with_edits_between_them_book_each_bill_once(demo, airflow_db):
    """Three bills runs over overlapping windows (a backfill by hand), the bill edited in Roger between them."""
    roger, economic = demo
    run_master_data()
    bills = add_bills(roger, 1, "2026-12-10", 3, status="UPCOMING", document_type="bill")
    runs = [run_bills({"from_date": "2026-12-10", "to_date": "2026-12-11"})]
    _edit(roger, bills[0], "1111.00", "2026-12-11T09:00:00Z")
    runs.append(run_bills({"from_date": "2026-12-09", "to_date": "2026-12-12"}))
    last = _edit(roger, bills[0], "2222.00", "2026-12-12T09:00:00Z")
    runs.append(run_bills({"from_date": "2026-12-11", "to_date": "2026-12-12"}))

    assert [r.state for r in runs] == ["success"] * 3, [r.failures for r in runs]
    entries = live_entries(state_of(economic, 1))
    assert {b: entries[(b, "supplierInvoice")] for b in bills} == dict.fromkeys(bills, 1)
    assert _amounts(economic, bills[0]) == [Decimal("-2222.00")]
    live = [
        (r.bill_version, r.status)
        for r in ledger_rows("agr_0001")
        if r.bill_id == bills[0] and r.status in ("planned", "posting", "posted")
    ]
    assert live == [(last["version"], "posted")]
    assert {staged_states("agr_0001")[b] for b in bills} == {"booked"}


def test_a_plan_of_an_older_version_after_a_newer_one_is_ignored(demo):
    """Versions never go backwards in the ledger, whatever order overlapping runs plan them in."""
    _roger, _economic = demo
    prepare(["agr_0001"])
    rows = [r for r in ledger_rows("agr_0001") if r.status == "planned" and r.entry_kind == "invoice"]
    row = rows[0]
    older = _planned_entry(row, row.bill_version - 1)
    with session() as sess:
        counts = ledger.plan(sess, [older], "late-run")
    assert counts["agr_0001"]["planned"] == 0
    after = [r for r in ledger_rows("agr_0001") if r.bill_id == row.bill_id and r.entry_kind == "invoice"]
    assert [(r.bill_version, r.status) for r in after] == [(row.bill_version, "planned")]


def test_two_versions_planned_by_racing_runs_post_only_the_newest(demo):
    """Whatever two racing plans leave in the ledger (an entry planned in two versions), a load posts one: the
    newest (the last line of defence: planning itself takes turns, see ``ledger.plan``)."""
    _roger, economic = demo
    prepare(["agr_0001"])
    row = next(r for r in ledger_rows("agr_0001") if r.status == "planned" and r.entry_kind == "invoice")
    newer = _planned_entry(row, row.bill_version + 1)
    newer.voucher["entries"]["supplierInvoices"][0]["amount"] = "-777.00"
    with session() as sess:  # what a racing run wrote beside the older row
        sess.add(
            models.Posting(
                agreement_id="agr_0001",
                bill_id=row.bill_id,
                bill_version=newer.version,
                entry_kind="invoice",
                idempotency_key=ledger.entry_key("agr_0001", row.bill_id, "invoice", newer.version),
                status="planned",
                journal_number=row.journal_number,
                accounting_year=row.accounting_year,
                payload={**row.payload, "voucher": newer.voucher},
                payload_hash="raced",
                run_id="racing-run",
                created_at=row.created_at,
                attachment="none",
            )
        )

    assert pipeline.load(["agr_0001"], endpoints(), "night")["agr_0001"]["outcome"] == "ok"

    assert _amounts(economic, row.bill_id) == [Decimal("-777.00")]
    rows = sorted(
        (r.bill_version, r.status)
        for r in ledger_rows("agr_0001")
        if r.bill_id == row.bill_id and r.entry_kind == "invoice"
    )
    assert rows == [(row.bill_version, "superseded"), (newer.version, "posted")]


def test_two_plans_of_one_bill_at_once_take_turns(demo):
    """Run A plans a bill's newest version and has not committed yet when run B plans an older (but newer than
    the ledger's) version of it: B waits for A and then sees A's row, so the older version is never planned."""
    import threading
    import time

    _roger, _economic = demo
    prepare(["agr_0001"])
    row = next(r for r in ledger_rows("agr_0001") if r.status == "planned" and r.entry_kind == "invoice")
    newest, older = _planned_entry(row, row.bill_version + 2), _planned_entry(row, row.bill_version + 1)
    a_planned, b_counts = threading.Event(), {}

    def run_b() -> None:
        a_planned.wait(30)
        with session() as sess:
            b_counts.update(ledger.plan(sess, [older], "run-b")["agr_0001"])

    b = threading.Thread(target=run_b)
    b.start()
    with session() as sess:  # run A, its transaction held open while run B tries to plan
        ledger.plan(sess, [newest], "run-a")
        a_planned.set()
        time.sleep(1.0)  # room for B to plan now, if nothing made it wait
    b.join(90)

    assert b_counts == {"older_version": 1}
    rows = sorted(
        (r.bill_version, r.status)
        for r in ledger_rows("agr_0001")
        if r.bill_id == row.bill_id and r.entry_kind == "invoice"
    )
    assert rows == [(row.bill_version, "superseded"), (newest.version, "planned")]


def _planned_entry(row: models.Posting, version: int):
    from roger_economic.model import PlannedEntry

    payload = row.payload
    return PlannedEntry(
        row.agreement_id,
        row.bill_id,
        version,
        row.entry_kind,
        row.journal_number,
        row.accounting_year,
        payload["voucher"],
        payload["vendor"],
        payload["has_document"],
    )


# ---------------------------------------------------------------------------- 4. a refused invoice


def _open_quarantine(aid: str, bill_id: str) -> dict[tuple[str, str], models.Quarantine]:
    with session() as sess:
        return {
            (q.entry_kind, q.rule): q
            for q in sess.scalars(
                select(models.Quarantine).where(
                    models.Quarantine.agreement_id == aid, models.Quarantine.bill_id == bill_id
                )
            )
        }


@pytest.mark.parametrize("i", [1, 2], ids=["two-journals", "one-journal-for-both"])
def test_an_invoice_e_conomic_rejects_holds_its_payment_back_until_both_go_in(demo, i):
    """agr_0001 posts invoices and payments to two journals (the invoices' POST first), agr_0002 to one (the
    payment is in the refused invoice's batch)."""
    _roger, economic = demo
    aid = f"agr_000{i}"
    prepare([aid])
    rows = ledger_rows(aid)
    paid = {r.bill_id for r in rows if r.entry_kind == "payment" and r.status == "planned"}
    invoice = next(r for r in rows if r.entry_kind == "invoice" and r.bill_id in paid)
    account = invoice.payload["voucher"]["entries"]["supplierInvoices"][0]["contraAccount"]["accountNumber"]
    # the account is barred in e-conomic after the master data was read: only e-conomic can refuse the invoice
    control(
        economic, "POST", "accounts", {"agreement": world.agreement_number(i), "accountNumber": account, "barred": True}
    )

    assert pipeline.load([aid], endpoints(), "night-1")[aid]["outcome"] == "ok"

    rows = ledger_rows(aid)
    refused = {r.bill_id for r in rows if r.entry_kind == "invoice" and r.status == "rejected"}
    assert invoice.bill_id in refused
    entries = live_entries(state_of(economic, i))
    for bill in refused:
        assert entries[(bill, "supplierInvoice")] == entries[(bill, "supplierPayment")] == 0, bill
        assert {r.status for r in rows if r.bill_id == bill and r.entry_kind == "payment"} <= {"held"}, bill
    held = _open_quarantine(aid, invoice.bill_id)
    for key in (("invoice", "economic_rejected"), ("payment", "invoice_rejected")):
        record = held[key]
        assert record.released_at is None and record.severity == "stop"
        assert "E07150" in record.message and f"Account {account} is barred" in record.message, record.message
    assert staged_states(aid)[invoice.bill_id] == "quarantined"

    # the accountant lifts the bar; the next night books both, and their records are released together
    control(
        economic,
        "POST",
        "accounts",
        {"agreement": world.agreement_number(i), "accountNumber": account, "barred": False},
    )
    prepare([aid], "night-2-prepare")
    assert pipeline.load([aid], endpoints(), "night-2")[aid]["outcome"] == "ok"

    entries = live_entries(state_of(economic, i))
    for bill in refused:
        assert entries[(bill, "supplierInvoice")] == 1, bill
        assert entries[(bill, "supplierPayment")] == (1 if bill in paid else 0), bill
    released = _open_quarantine(aid, invoice.bill_id)
    for key in (("invoice", "economic_rejected"), ("payment", "invoice_rejected")):
        assert released[key].released_at is not None and "posted" in released[key].release_reason
    assert staged_states(aid)[invoice.bill_id] == "booked"
