"""What stops a bill and what only warns (docs/booking-rules.md, "Validation").

Each case is one bill that breaks one rule, booked in a batch beside a good
neighbour. The case names the finding(s) it must get (rule, severity, which
entry it guards, the offending value) and which of its entries still go to
e-conomic (per entry, not per bill). The neighbour is always booked: one bad
bill never stops the others. Cases that share an agreement setup share one
batch, so the Great Expectations suite runs once per setup.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from roger_economic.context import AgreementContext
from roger_economic.model import BillOutcome, Finding, PlannedEntry
from tests import factories as f
from tests.factories import pay

NEIGHBOUR = "bill_good_neighbour"

CONTEXTS: dict[str, Callable[[], AgreementContext]] = {
    "standard": lambda: f.context(),
    "no default account": lambda: f.context(default_account=None),
    "barred default account": lambda: f.context(default_account=2795),
    "quarantine suppliers": lambda: f.context(supplier_policy="quarantine"),
    "default supplier not set": lambda: f.context(supplier_policy="default", default_supplier=None),
    "next open date": lambda: f.context(closed_period_policy="next_open_date"),
    "agreement without +75": lambda: f.context(snapshots=without_payment_types(17)),
}


def without_payment_types(*numbers: int) -> dict[str, Any]:
    """Master data of an agreement whose ``GET /payment-types`` lacks these numbers."""
    snaps = f.snapshots(1)
    snaps["payment_types"] = [t for t in snaps["payment_types"] if t["paymentTypeNumber"] not in numbers]
    return snaps


@dataclass
class Case:
    id: str
    bill: dict[str, Any]
    findings: set[tuple[str, str, str, str | None]]  # (rule, severity, entry, offending value)
    booked: list[str]  # the bill's entries that still go to e-conomic
    state: str
    setup: str


def stops(
    case_id: str, findings: set[tuple], booked: tuple[str, ...] = (), setup: str = "standard", **bill: Any
) -> Case:
    return Case(case_id, f.bill(id=case_id, **bill), findings, list(booked), "quarantined", setup)


def warns(case_id: str, findings: set[tuple], booked: tuple[str, ...] = ("invoice",), **bill: Any) -> Case:
    return Case(case_id, f.bill(id=case_id, **bill), findings, list(booked), "planned", "standard")


def stop(rule: str, value: str | None, entry: str = "invoice") -> tuple:
    return rule, "stop", entry, value


def warn(rule: str, value: str | None) -> tuple:
    return rule, "warn", "invoice", value


CASES = [
    # ------------------------------------------------------------------ missing or malformed required fields
    stops(
        "bill_no_vendor_name", {stop("required_fields", "missing or malformed: vendor_name")}, **{"vendor.name": None}
    ),
    stops(
        "bill_malformed_issue_date",
        {stop("required_fields", "missing or malformed: issue_date_raw")},
        issue_date="2026-02-30",
    ),
    stops(
        "bill_no_currency",
        {stop("required_fields", "missing or malformed: currency"), stop("currency_known", None)},
        currency=None,
    ),
    stops(
        "bill_unknown_document_type",
        {stop("required_fields", "missing or malformed: document_type")},
        document_type="invoice",
    ),
    # ------------------------------------------------------------------ amount
    stops("bill_amount_3_decimals", {stop("amount_positive_2_decimals", "1250.005")}, amount="1250.005"),
    stops("bill_amount_zero", {stop("amount_positive_2_decimals", "0.00")}, amount="0.00"),
    stops("bill_amount_negative", {stop("amount_positive_2_decimals", "-1250.00")}, amount="-1250.00"),
    stops(
        "bill_amount_missing",
        {stop("required_fields", "missing or malformed: amount_raw"), stop("amount_positive_2_decimals", None)},
        amount=None,
    ),
    stops("bill_amount_with_comma", {stop("amount_positive_2_decimals", "1250,00")}, amount="1250,00"),
    # ------------------------------------------------------------------ currency, mapping, accounts
    stops("bill_unknown_currency", {stop("currency_known", "XYZ")}, currency="XYZ"),
    stops(
        "bill_category_unmapped_no_default",
        {stop("category_mapped", "cat_not_mapped")},
        setup="no default account",
        category_id="cat_not_mapped",
    ),
    stops("bill_no_category_no_default", {stop("category_mapped", None)}, setup="no default account", category_id=None),
    stops("bill_category_on_barred_account", {stop("contra_account_bookable", "2795")}, category_id="cat_barred"),
    stops("bill_category_on_heading", {stop("contra_account_bookable", "2700")}, category_id="cat_heading"),
    stops("bill_category_on_blocking_account", {stop("contra_account_bookable", "2796")}, category_id="cat_blocked"),
    stops(
        "bill_default_account_barred",
        {stop("contra_account_bookable", "2795")},
        setup="barred default account",
        category_id=None,
    ),
    # ------------------------------------------------------------------ dates
    stops("bill_in_closed_year", {stop("invoice_date_open", "2024-03-01")}, issue_date="2024-03-01"),
    stops("bill_in_no_year", {stop("invoice_date_open", "2031-03-01")}, issue_date="2031-03-01", due_date=None),
    stops(
        "bill_no_later_open_period",
        {stop("invoice_date_open", "2031-03-01")},
        setup="next open date",
        issue_date="2031-03-01",
        due_date=None,
    ),
    stops(
        "receipt_paid_in_closed_year",
        {stop("invoice_date_open", "2024-12-30"), stop("payment_date_open", "2024-12-30", "payment")},
        document_type="receipt",
        status="PAID",
        issue_date="2025-01-02",
        payment=pay(paid_date="2024-12-30"),
    ),
    # ------------------------------------------------------------------ suppliers
    stops(
        "bill_supplier_unresolved",
        {stop("supplier_resolved", "Telenor A/S")},
        setup="quarantine suppliers",
        **{"vendor.name": "Telenor A/S", "vendor.cvr": "19433692"},
    ),
    stops(
        "bill_default_supplier_missing",
        {stop("supplier_resolved", "Telenor A/S")},
        setup="default supplier not set",
        **{"vendor.name": "Telenor A/S", "vendor.cvr": "19433692"},
    ),
    # ------------------------------------------------------------------ per entry: the payment's own rules
    stops(
        "bill_paid_unmapped_method",
        {stop("payment_method_mapped", "pm_unknown", "payment")},
        ("invoice",),
        status="PAID",
        payment=pay("pm_unknown"),
    ),
    stops(
        "bill_paid_barred_account",
        {stop("payment_account_bookable", "2795", "payment")},
        ("invoice",),
        status="PAID",
        payment=pay("pm_barred"),
    ),
    stops(
        "bill_paid_other_currency",
        {stop("payment_currency", "EUR", "payment")},
        ("invoice",),
        status="PAID",
        payment=pay(currency="EUR", base="9300.00"),
    ),
    stops(
        "bill_paid_unknown_currency",
        {stop("payment_currency", "XYZ", "payment")},
        ("invoice",),
        status="PAID",
        payment=pay(currency="XYZ"),
    ),
    stops(
        "bill_paid_in_closed_year",
        {stop("payment_date_open", "2024-12-30", "payment")},
        ("invoice",),
        status="PAID",
        issue_date="2025-01-02",
        due_date=None,
        payment=pay(paid_date="2024-12-30"),
    ),
    stops(
        "bill_paid_without_payment",
        {stop("payment_present", "payment missing or malformed: method_id, paid_date, amount, currency", "payment")},
        ("invoice",),
        status="PAID",
        payment=None,
    ),
    stops(
        "bill_paid_zero",
        {stop("payment_present", "payment missing or malformed: amount", "payment")},
        ("invoice",),
        status="PAID",
        payment=pay(amount="0.00"),
    ),
    stops(
        "bill_invoice_fails_holds_payment",
        {stop("contra_account_bookable", "2795")},
        category_id="cat_barred",
        status="PAID",
        payment=pay(),
    ),
    stops(
        "receipt_payment_fails_holds_invoice",
        {stop("payment_method_mapped", "pm_unknown", "payment")},
        document_type="receipt",
        status="PAID",
        payment=pay("pm_unknown"),
    ),
    # ------------------------------------------------------------------ plausibility (booking-rules "Validation")
    stops("bill_vat_larger_than_gross", {stop("vat_plausible", "500.00")}, amount="100.00", vat_amount="500.00"),
    stops("bill_vat_negative", {stop("vat_plausible", "-20.00")}, amount="100.00", vat_amount="-20.00"),
    stops(
        "bill_paid_vat_larger_holds_payment",
        {stop("vat_plausible", "500.00")},
        amount="100.00",
        vat_amount="500.00",
        status="PAID",
        payment=pay(amount="100.00"),
    ),
    stops(
        "bill_partly_paid",
        {stop("payment_amount_matches", "600.00", "payment")},
        ("invoice",),
        status="PAID",
        payment=pay(amount="600.00"),
    ),
    stops(
        "bill_over_paid",
        {stop("payment_amount_matches", "24688.48", "payment")},
        ("invoice",),
        amount="100.00",
        vat_amount="20.00",
        status="PAID",
        payment=pay(amount="24688.48"),
    ),
    stops(
        "receipt_payment_differs_holds_both",
        {stop("payment_amount_matches", "24688.48", "payment")},
        document_type="receipt",
        status="PAID",
        amount="100.00",
        vat_amount="20.00",
        payment=pay(amount="24688.48"),
    ),
    # ------------------------------------------------------------------ payment types the agreement offers
    stops(
        "bill_75_agreement_lacks_it",
        {stop("payment_type_offered", "17")},
        setup="agreement without +75",
        payment_code="+75<0000000012345678+87654321<",
    ),
    stops(
        "bill_75_paid_agreement_lacks_it",
        {stop("payment_type_offered", "17")},
        setup="agreement without +75",
        payment_code="+75<0000000012345678+87654321<",
        status="PAID",
        payment=pay(),
    ),
    # ------------------------------------------------------------------ only warns: the bill is booked
    warns("bill_due_before_issue", {warn("due_after_issue", "2026-10-01")}, due_date="2026-10-01"),
    warns("bill_vat_not_fitting", {warn("vat_fits_rate", "100.00")}, vat_amount="100.00"),
    warns(
        "bill_invoice_number_cut",
        {warn("invoice_number_fits", "INV-2026-000000000000000000042-EXTRA")},
        invoice_number="INV-2026-000000000000000000042-EXTRA",
    ),
    warns("bill_no_invoice_number", {warn("invoice_number_fits", None)}, invoice_number=None),
    warns("bill_blank_invoice_number", {warn("invoice_number_fits", None)}, invoice_number="   "),
    warns(
        "bill_payment_code_not_parsing",
        {warn("payment_code_parses", "+71<12345+85123456<")},
        payment_code="+71<12345+85123456<",
    ),
]
# The same bill id twice in one batch stops both copies.
DUPLICATES = [
    f.bill(id="bill_twice", amount="100.00", vat_amount="20.00"),
    f.bill(id="bill_twice", amount="200.00", vat_amount="40.00"),
]


@pytest.fixture(scope="module")
def booked() -> Callable[[str], tuple[list[PlannedEntry], list[BillOutcome]]]:
    """Each setup's cases in one batch, with the good neighbour in it too."""
    done: dict[str, tuple[list[PlannedEntry], list[BillOutcome]]] = {}

    def of(setup: str) -> tuple[list[PlannedEntry], list[BillOutcome]]:
        if setup not in done:
            bills = [c.bill for c in CASES if c.setup == setup] + [f.bill(id=NEIGHBOUR)]
            if setup == "standard":
                bills += DUPLICATES
            done[setup] = f.book(bills, CONTEXTS[setup]())
        return done[setup]

    return of


def as_tuple(finding: Finding) -> tuple[str, str, str, str | None]:
    return finding.rule, finding.severity, finding.entry, finding.value


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rule_is_applied_to_the_bill_and_its_neighbour_is_booked(case: Case, booked: Callable) -> None:
    entries, outcomes = booked(case.setup)
    [outcome] = [o for o in outcomes if o.bill_id == case.id]
    assert {as_tuple(x) for x in outcome.findings} == case.findings
    assert outcome.state == case.state
    assert [e.kind for e in entries if e.bill_id == case.id] == case.booked
    assert all(x.message for x in outcome.findings)
    neighbour = [o for o in outcomes if o.bill_id == NEIGHBOUR]
    assert [(o.state, o.findings) for o in neighbour] == [("planned", [])]
    assert [e.kind for e in entries if e.bill_id == NEIGHBOUR] == ["invoice"]


def test_same_bill_twice_in_a_batch_stops_both_copies_with_one_finding(booked: Callable) -> None:
    entries, outcomes = booked("standard")
    twice = [o for o in outcomes if o.bill_id == "bill_twice"]
    assert [o.state for o in twice] == ["quarantined", "quarantined"]
    for o in twice:
        assert [as_tuple(x) for x in o.findings] == [stop("unique_in_batch", "bill_twice")]
    assert not [e for e in entries if e.bill_id == "bill_twice"]


def test_finding_says_why_in_words(booked: Callable) -> None:
    _, outcomes = booked("standard")
    messages = {o.bill_id: [x.message for x in o.findings] for o in outcomes}
    assert messages["bill_in_closed_year"] == ["invoice date 2024-03-01 is in closed accounting year 2024"]
    assert messages["bill_category_on_barred_account"] == ["category account 2795 is barred"]
    assert messages["bill_paid_other_currency"] == ["payment currency EUR differs from the bill's DKK"]


def test_plausibility_findings_name_both_amounts(booked: Callable) -> None:
    _, outcomes = booked("standard")
    messages = {o.bill_id: [x.message for x in o.findings] for o in outcomes}
    assert messages["bill_vat_larger_than_gross"] == ["VAT amount 500.00 is larger than the gross amount 100.00"]
    assert messages["bill_vat_negative"] == ["VAT amount -20.00 is of the other sign than the gross amount 100.00"]
    assert messages["bill_over_paid"] == [
        "payment 24688.48 DKK differs from the bill's amount 100.00 DKK (over-payment: the accountant decides)"
    ]
    assert messages["bill_partly_paid"] == [
        "payment 600.00 DKK differs from the bill's amount 1250.00 DKK (partial payment: the accountant decides)"
    ]


def test_a_payment_type_the_agreement_lacks_is_named_with_the_types_it_has(booked: Callable) -> None:
    entries, outcomes = booked("agreement without +75")
    [outcome] = [o for o in outcomes if o.bill_id == "bill_75_agreement_lacks_it"]
    assert [x.message for x in outcome.findings] == [
        "payment type 17 (+75) is not among the agreement's payment types (1, 2, 5, 7, 10, 14)"
    ]
    # the neighbour's +71 is one the agreement has: it is booked with e-conomic's number for +71
    [neighbour] = [e.entry for e in entries if e.bill_id == NEIGHBOUR]
    assert neighbour["paymentDetails"]["paymentType"]["paymentTypeNumber"] == 1


def test_payment_types_not_read_yet_hold_a_bill_with_a_code_and_say_what_to_do() -> None:
    snaps = f.snapshots(1)
    del snaps["payment_types"]  # master data read before the payment types were
    entries, outcomes = f.book(
        [f.bill(id="bill_code"), f.bill(id="bill_no_code", payment_code=None)], f.context(snapshots=snaps)
    )
    state = {o.bill_id: (o.state, [x.message for x in o.findings]) for o in outcomes}
    assert state["bill_code"] == (
        "quarantined",
        ["payment type 1 (+71): the agreement's payment types are not read yet (run roger_master_data)"],
    )
    assert state["bill_no_code"] == ("planned", [])
    assert [e.bill_id for e in entries] == ["bill_no_code"]


def test_warned_entries_still_carry_roger_values(booked: Callable) -> None:
    entries, _ = booked("standard")
    invoices = {e.bill_id: e.entry for e in entries if e.kind == "invoice"}
    assert invoices["bill_vat_not_fitting"]["contraVatAmount"] == Decimal("-100.00")
    assert invoices["bill_invoice_number_cut"]["supplierInvoiceNumber"] == "INV-2026-000000000000000000042"
    assert "supplierInvoiceNumber" not in invoices["bill_no_invoice_number"]
    assert "supplierInvoiceNumber" not in invoices["bill_blank_invoice_number"]
    assert "paymentDetails" not in invoices["bill_payment_code_not_parsing"]
    assert invoices["bill_due_before_issue"]["dueDate"] == "2026-10-01"


def test_invoice_booked_without_a_rate_taken_from_a_payment_in_another_currency(booked: Callable) -> None:
    entries, _ = booked("standard")
    [inv] = [e.entry for e in entries if e.bill_id == "bill_paid_other_currency"]
    assert "exchangeRate" not in inv
    assert inv["currency"] == {"code": "DKK"}
