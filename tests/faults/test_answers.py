"""An answer to a voucher POST that does not account for what was posted is a lost answer, not a booking.

A proxy or a broken deployment may answer 200 with a list of objects that are not vouchers. Recording them
would mark the rows ``posted`` with no voucher number, and the vouchers e-conomic did create would never
be linked (nor get their PDF). Instead the rows stay ``posting`` and the next load looks them up.
"""

from __future__ import annotations

import pytest

from roger_economic import pipeline
from roger_economic.economic.client import unusable_answer
from tests.faults.helpers import arm, disarm, endpoints, fired, ledger_rows, prepare, state_of
from tests.integration.helpers import live_entries

VOUCHERS = r"^/journals/\d+/vouchers$"


def _sent(entries: int = 1) -> dict:
    return {"accountingYear": {"year": "2026"}, "entries": {"supplierInvoices": [{"amount": -1}] * entries}}


def _created(**overrides) -> dict:
    voucher = {
        "voucherNumber": 7,
        "accountingYear": {"year": "2026"},
        "entries": {"supplierInvoices": [{"journalEntryNumber": 12}]},
    }
    voucher.update(overrides)
    return {k: v for k, v in voucher.items() if v is not None}


@pytest.mark.parametrize(
    ("created", "why"),
    [
        ([], "0 came back"),
        ([{"id": 0, "status": "ok"}], "no voucher number"),
        ([_created(voucherNumber="7")], "no voucher number"),
        ([_created(voucherNumber=True)], "no voucher number"),
        ([_created(accountingYear=None)], "no accounting year"),
        ([_created(entries=None)], "no entries"),
        ([_created(entries={"supplierPayments": [{"journalEntryNumber": 12}]})], "supplierInvoices"),
        ([_created(entries={"supplierInvoices": [{"text": "x"}]})], "without a journal entry number"),
        (["a string"], "not a voucher"),
    ],
)
def test_an_answer_that_does_not_match_what_was_sent_is_unusable(created, why):
    assert why in (unusable_answer([_sent()], created) or "")


def test_an_answer_that_matches_is_usable():
    assert unusable_answer([_sent()], [_created()]) is None


def test_a_junk_answer_leaves_the_rows_posting_and_the_next_load_recovers_them(demo):
    _roger, economic = demo
    prepare(["agr_0001"])
    planned = sum(1 for r in ledger_rows("agr_0001") if r.status == "planned")
    arm(economic, kind="junk", scope="700001", method="POST", path=VOUCHERS, times=1)

    with pytest.raises(pipeline.AgreementsFailed, match=r"agr_0001.*treated as a lost answer"):
        pipeline.load(["agr_0001"], endpoints(), "run-junk")

    assert [f["kind"] for f in fired(economic)] == ["junk"]
    rows = ledger_rows("agr_0001")
    assert not [r.bill_id for r in rows if r.status == "posted" and r.voucher_number is None]
    in_flight = [r for r in rows if r.status == "posting"]
    assert in_flight, "the batch whose answer was junk is still to be looked up"
    assert sum(1 for v in state_of(economic, 1)["vouchers"]) == len(in_flight)  # e-conomic made them
    disarm(economic)

    result = pipeline.load(["agr_0001"], endpoints(), "run-after-junk")

    assert result["agr_0001"]["outcome"] == "ok", result
    assert result["agr_0001"]["recovered"] == len(in_flight)
    rows = ledger_rows("agr_0001")
    assert {r.status for r in rows} == {"posted"} and len(rows) == planned
    state = state_of(economic, 1)
    vouchers = {(v["accountingYear"], v["voucherNumber"]) for v in state["vouchers"] if v["status"] != "deleted"}
    assert {(r.accounting_year, r.voucher_number) for r in rows} == vouchers  # each row names its real voucher
    assert max(live_entries(state).values()) == 1
