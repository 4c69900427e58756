"""The posting ledger's planning rules, on the real project database.

What an accountant relies on: a bill version is planned once, versions only move forward, at most one
version of an entry is live, and the voucher stored for posting carries the amounts to the øre.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, update

from roger_economic.config import load_file
from roger_economic.db import models, session
from roger_economic.model import PlannedEntry
from roger_economic.posting import ledger
from tests.integration.helpers import ROOT

AGR, BILL = "agr_0001", "bill_1"


@pytest.fixture()
def db(project_db: str) -> str:
    load_file(ROOT / "config" / "agreements.example.yaml", url=project_db)
    return project_db


def _entry(version: int, amount: str = "1234.56", kind: str = "invoice", bill: str = BILL) -> PlannedEntry:
    item: dict[str, Any] = {
        "supplier": {"supplierNumber": 7},
        "amount": Decimal(amount),
        "contraAccount": {"accountNumber": 4000},
        "currency": {"code": "DKK"},
        "date": "2026-11-02",
        "text": f"Vendor faktura {bill}",
    }
    entries = {"supplierInvoices" if kind == "invoice" else "supplierPayments": [item]}
    voucher = {"accountingYear": {"year": "2026"}, "journal": {"journalNumber": 1}, "entries": entries}
    return PlannedEntry(AGR, bill, version, kind, 1, "2026", voucher, {"key": "cvr:12345678"})


def _plan(url: str, entries: list[PlannedEntry], judged: dict | None = None, run: str = "run") -> dict:
    with session(url) as sess:
        return dict(ledger.plan(sess, entries, run, judged).get(AGR, {}))


def _rows(url: str) -> list[tuple[int, str, str]]:
    """(version, kind, status) of every ledger row of the agreement, oldest first."""
    with session(url) as sess:
        p = models.Posting
        rows = sess.execute(select(p.bill_version, p.entry_kind, p.status).where(p.agreement_id == AGR).order_by(p.id))
        return [tuple(r) for r in rows]


def _set_status(url: str, version: int, status: str) -> None:
    with session(url) as sess:
        p = models.Posting
        sess.execute(update(p).where(p.agreement_id == AGR, p.bill_version == version).values(status=status))


def test_a_new_entry_is_planned_once_with_its_amount_to_the_ore(db):
    assert _plan(db, [_entry(1, "1234.56")]) == {"planned": 1}
    with session(db) as sess:
        row = sess.scalars(select(models.Posting)).one()
        assert row.status == "planned"
        assert row.idempotency_key == ledger.entry_key(AGR, BILL, "invoice", 1)
        stored = row.payload["voucher"]["entries"]["supplierInvoices"][0]["amount"]
    assert stored == "1234.56"  # the exact digits as text, never a float

    assert _plan(db, [_entry(1, "1234.56")], run="rerun") == {"planned": 1}  # still not in e-conomic: replanned
    assert _rows(db) == [(1, "invoice", "planned")]  # the same row, not a second one


def test_the_idempotency_key_names_agreement_bill_kind_and_version():
    keys = {
        ledger.entry_key(AGR, BILL, "invoice", 1),
        ledger.entry_key(AGR, BILL, "invoice", 2),
        ledger.entry_key(AGR, BILL, "payment", 1),
        ledger.entry_key(AGR, "bill_2", "invoice", 1),
        ledger.entry_key("agr_0002", BILL, "invoice", 1),
    }
    assert len(keys) == 5
    assert ledger.entry_key(AGR, BILL, "invoice", 1) == ledger.entry_key(AGR, BILL, "invoice", 1)


@pytest.mark.parametrize("status", ["planned", "rejected", "held"])
def test_a_newer_version_supersedes_an_older_row_not_in_economic(db, status):
    _plan(db, [_entry(1, "100.00")])
    _set_status(db, 1, status)
    counts = _plan(db, [_entry(2, "120.00")], run="run-2")
    assert counts == {"planned": 1, "superseded": 1}
    assert _rows(db) == [(1, "invoice", "superseded"), (2, "invoice", "planned")]


def test_an_older_version_arriving_late_is_not_planned(db):
    _plan(db, [_entry(2, "120.00")])
    counts = _plan(db, [_entry(1, "100.00")], run="late")
    assert counts == {"older_version": 1}
    assert _rows(db) == [(2, "invoice", "planned")]


def test_a_posted_entry_whose_content_did_not_change_is_not_planned_again(db):
    """A bill going from UPCOMING to PAID is a new version, but its invoice says the same: no second voucher."""
    _plan(db, [_entry(1, "100.00")])
    _set_status(db, 1, "posted")
    assert _plan(db, [_entry(2, "100.00")], run="paid") == {"already_booked": 1}
    assert _rows(db) == [(1, "invoice", "posted")]


def test_a_posted_entry_whose_amount_changed_is_replaced_and_stays_posted(db):
    """The booked voucher is history in e-conomic: the ledger keeps it and plans the new version beside it."""
    _plan(db, [_entry(1, "100.00")])
    _set_status(db, 1, "posted")
    assert _plan(db, [_entry(2, "100.01")], run="changed") == {"replacing": 1}  # one øre is a change
    assert _rows(db) == [(1, "invoice", "posted"), (2, "invoice", "planned")]


def test_an_older_row_in_flight_is_left_to_the_loader(db):
    """A ``posting`` row (its answer lost) may be in e-conomic: only the loader may rule it out."""
    _plan(db, [_entry(1, "100.00")])
    _set_status(db, 1, "posting")
    assert _plan(db, [_entry(2, "120.00")], run="run-2") == {"replacing": 1}  # nothing superseded
    assert _rows(db) == [(1, "invoice", "posting"), (2, "invoice", "planned")]


def test_a_judged_version_supersedes_older_rows_even_without_an_entry_of_that_kind(db):
    """v2's payment is quarantined now: v1's planned payment must not be posted behind its back."""
    _plan(db, [_entry(1, "100.00", kind="payment")])
    counts = _plan(db, [_entry(2, "100.00", kind="invoice")], judged={(AGR, BILL): 2}, run="run-2")
    assert counts == {"planned": 1, "superseded": 1}
    assert _rows(db) == [(1, "payment", "superseded"), (2, "invoice", "planned")]


def test_planning_touches_only_the_bills_at_hand(db):
    _plan(db, [_entry(1, "100.00", bill="bill_other")])
    _plan(db, [_entry(2, "120.00")], judged={(AGR, BILL): 2}, run="run-2")
    with session(db) as sess:
        other = sess.scalars(select(models.Posting.status).where(models.Posting.bill_id == "bill_other")).all()
    assert other == ["planned"]


def test_the_payload_hash_ignores_the_supplier_number_but_not_the_amount():
    """The supplier's number may only be known at load; a different number is the same voucher."""
    a, b = _entry(1, "100.00"), _entry(1, "100.00")
    b.voucher["entries"]["supplierInvoices"][0]["supplier"] = {"supplierNumber": 99}
    assert ledger.payload_hash(a) == ledger.payload_hash(b)
    assert ledger.payload_hash(a) != ledger.payload_hash(_entry(1, "100.01"))
