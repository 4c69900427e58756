"""From a Roger bill to the exact e-conomic entries, one case per rule of docs/booking-rules.md.

Every case is one bill and the entries it must give, field by field. The
expected entries start from the base bill of ``tests/factories.py``
(Dansk Kontorforsyning ApS, 1 250,00 DKK incl. 250,00 VAT, category
Kontorartikler → account 2750, issued 2026-10-05, due 2026-10-20, FI code
+71) and name what the rule changes. Cases that share an agreement setup are
booked together in one batch, so the Great Expectations suite runs once per
setup, not once per case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest

from roger_economic.context import AgreementContext
from roger_economic.model import BillOutcome, PlannedEntry
from tests import factories as f
from tests.factories import pay

D = Decimal
INVOICE_JOURNAL, PAYMENT_JOURNAL = 2, 3
FI_71 = {"paymentType": {"fiSupplierNo": "85123456", "ocrLine": "000000001234567", "paymentTypeNumber": 1}}

# The standard setup, plus two categories that show where the VAT code comes from.
CATEGORIES = {
    **f.CATEGORIES,
    "cat_eu_software": (2760, "IEUY"),  # the category's own code wins over the account's I25
    "cat_transport": (2785, None),
}  # account 2785 has no VAT account: no VAT at all

CONTEXTS: dict[str, Callable[[], AgreementContext]] = {
    "standard": lambda: f.context(categories=CATEGORIES),
    "default supplier": lambda: f.context(supplier_policy="default", default_supplier=99),
    "split years": lambda: f.context(i=2),  # accounting years 2024/2025 (closed), 2025/2026, 2026/2027
    "next open date": lambda: f.context(closed_period_policy="next_open_date"),  # 2024 is closed
}


def invoice(bill_id: str, year: str = "2026", drop: tuple[str, ...] = (), **fields: Any) -> tuple:
    """The supplier invoice of the base bill, with ``fields`` changed and ``drop`` left out."""
    entry = {
        "supplier": {"supplierNumber": 1},
        "amount": D("-1250.00"),
        "contraAccount": {"accountNumber": 2750},
        "contraVatAccount": {"vatCode": "I25"},
        "contraVatAmount": D("-250.00"),
        "currency": {"code": "DKK"},
        "date": "2026-10-05",
        "dueDate": "2026-10-20",
        "supplierInvoiceNumber": "2026-0042",
        "text": f"Dansk Kontorforsyning ApS faktura 2026-0042 [{bill_id}]",
        "paymentDetails": FI_71,
    }
    entry.update(fields)
    return "invoice", INVOICE_JOURNAL, year, {k: v for k, v in entry.items() if k not in drop}


def payment(bill_id: str, year: str = "2026", drop: tuple[str, ...] = (), **fields: Any) -> tuple:
    """The supplier payment of the base bill paid from the bank account, with ``fields`` changed."""
    entry = {
        "supplier": {"supplierNumber": 1},
        "amount": D("1250.00"),
        "contraAccount": {"accountNumber": 5820},
        "currency": {"code": "DKK"},
        "date": "2026-10-18",
        "supplierInvoiceNumber": "2026-0042",
        "text": f"Dansk Kontorforsyning ApS betaling 2026-0042 [{bill_id}]",
    }
    entry.update(fields)
    return "payment", PAYMENT_JOURNAL, year, {k: v for k, v in entry.items() if k not in drop}


@dataclass
class Case:
    id: str
    bill: dict[str, Any]
    expect: list[tuple]
    state: str = "planned"
    setup: str = "standard"
    rules: list[str] = field(default_factory=list)  # findings the bill must carry (warnings here)


def case(
    case_id: str,
    expect: list[tuple],
    state: str = "planned",
    setup: str = "standard",
    rules: list[str] | None = None,
    **bill: Any,
) -> Case:
    return Case(case_id, f.bill(id=case_id, **bill), expect, state, setup, rules or [])


CASES = [
    # ------------------------------------------------------------------ which bills produce which entries
    case("bill_upcoming", [invoice("bill_upcoming")]),
    case("bill_initialized", [invoice("bill_initialized")], status="INITIALIZED"),
    case("bill_paid", [invoice("bill_paid"), payment("bill_paid")], status="PAID", payment=pay()),
    case(
        "bill_paid_credit_card",
        [invoice("bill_paid_credit_card"), payment("bill_paid_credit_card", contraAccount={"accountNumber": 6600})],
        status="PAID",
        payment=pay("pm_credit"),
    ),
    case(
        "bill_receipt",
        [
            invoice(
                "bill_receipt", date="2026-10-07", text="Dansk Kontorforsyning ApS kvittering 2026-0042 [bill_receipt]"
            ),
            payment("bill_receipt", date="2026-10-07", contraAccount={"accountNumber": 6600}),
        ],
        document_type="receipt",
        status="PAID",
        payment=pay("pm_credit", paid_date="2026-10-07"),
    ),
    case(
        "bill_credit_note",
        [
            invoice(
                "bill_credit_note",
                amount=D("1250.00"),
                contraVatAmount=D("250.00"),
                text="Dansk Kontorforsyning ApS kreditnota 2026-0042 [bill_credit_note]",
            )
        ],
        document_type="credit_note",
    ),
    case(
        "bill_credit_note_refunded",
        [
            invoice(
                "bill_credit_note_refunded",
                amount=D("1250.00"),
                contraVatAmount=D("250.00"),
                text="Dansk Kontorforsyning ApS kreditnota 2026-0042 [bill_credit_note_refunded]",
            ),
            payment("bill_credit_note_refunded", amount=D("-1250.00")),
        ],
        document_type="credit_note",
        status="PAID",
        payment=pay(),
    ),
    case(
        "bill_credit_note_paid_no_refund",
        [
            invoice(
                "bill_credit_note_paid_no_refund",
                amount=D("1250.00"),
                contraVatAmount=D("250.00"),
                text="Dansk Kontorforsyning ApS kreditnota 2026-0042 [bill_credit_note_paid_no_refund]",
            )
        ],
        document_type="credit_note",
        status="PAID",
        payment=None,
    ),
    case("bill_analyzing", [], "waiting", status="ANALYZING"),
    case("bill_awaiting_approval", [], "waiting", status="AWAITING_APPROVAL"),
    case("bill_pending", [], "waiting", status="PENDING"),
    case("bill_duplicate", [], "withdraw", status="DUPLICATE"),
    case("bill_deleted", [], "withdraw", deleted=True),
    case("bill_paid_deleted", [], "withdraw", deleted=True, status="PAID", payment=pay()),
    # ------------------------------------------------------------------ contra account and VAT
    case("bill_no_category", [invoice("bill_no_category", contraAccount={"accountNumber": 3990})], category_id=None),
    case(
        "bill_unmapped_category",
        [invoice("bill_unmapped_category", contraAccount={"accountNumber": 3990})],
        category_id="cat_not_mapped",
    ),
    case(
        "bill_category_vat_code",
        [
            invoice(
                "bill_category_vat_code", contraAccount={"accountNumber": 2760}, contraVatAccount={"vatCode": "IEUY"}
            )
        ],
        category_id="cat_eu_software",
    ),
    case(
        "bill_account_vat_code",
        [
            invoice(
                "bill_account_vat_code",
                contraAccount={"accountNumber": 2250},
                contraVatAccount={"vatCode": "REP"},
                contraVatAmount=D("-73.53"),
            )
        ],
        category_id="cat_meals",
        vat_amount="73.53",
    ),
    case(
        "bill_no_vat_code",
        [
            invoice(
                "bill_no_vat_code", contraAccount={"accountNumber": 2785}, drop=("contraVatAccount", "contraVatAmount")
            )
        ],
        category_id="cat_transport",
    ),
    case(
        "bill_vat_unknown_to_roger", [invoice("bill_vat_unknown_to_roger", drop=("contraVatAmount",))], vat_amount=None
    ),
    case(
        "bill_vat_not_fitting",
        [invoice("bill_vat_not_fitting", contraVatAmount=D("-100.00"))],
        rules=["vat_fits_rate"],
        vat_amount="100.00",
    ),
    # ------------------------------------------------------------------ currency and exchange rate
    case(
        "bill_eur_upcoming",
        [invoice("bill_eur_upcoming", amount=D("-100.00"), contraVatAmount=D("-20.00"), currency={"code": "EUR"})],
        currency="EUR",
        amount="100.00",
        vat_amount="20.00",
    ),
    case(
        "bill_eur_paid_base_known",
        [
            invoice(
                "bill_eur_paid_base_known",
                amount=D("-33.33"),
                drop=("contraVatAmount",),
                currency={"code": "EUR"},
                exchangeRate=D("745.604560"),
            ),
            payment(
                "bill_eur_paid_base_known", amount=D("33.33"), currency={"code": "EUR"}, exchangeRate=D("745.604560")
            ),
        ],
        currency="EUR",
        amount="33.33",
        vat_amount=None,
        status="PAID",
        payment=pay(amount="33.33", currency="EUR", base="248.51"),
    ),
    case(
        "bill_eur_paid_base_unknown",
        [
            invoice(
                "bill_eur_paid_base_unknown", amount=D("-100.00"), drop=("contraVatAmount",), currency={"code": "EUR"}
            ),
            payment("bill_eur_paid_base_unknown", amount=D("100.00"), currency={"code": "EUR"}),
        ],
        currency="EUR",
        amount="100.00",
        vat_amount=None,
        status="PAID",
        payment=pay(amount="100.00", currency="EUR"),
    ),
    case(
        "bill_dkk_paid_base_given",
        [invoice("bill_dkk_paid_base_given"), payment("bill_dkk_paid_base_given")],
        status="PAID",
        payment=pay(base="1250.00"),
    ),
    # ------------------------------------------------------------------ suppliers
    case(
        "bill_cvr_with_dk_prefix",
        [invoice("bill_cvr_with_dk_prefix", text="Kontorforsyningen faktura 2026-0042 [bill_cvr_with_dk_prefix]")],
        **{"vendor.cvr": "DK 31 24 58 71", "vendor.name": "Kontorforsyningen"},
    ),
    case(
        "bill_name_case_folded",
        [
            invoice(
                "bill_name_case_folded",
                supplier={"supplierNumber": 5},
                text="frugt til KONTORET aps faktura 2026-0042 [bill_name_case_folded]",
            )
        ],
        **{"vendor.cvr": None, "vendor.name": "  frugt til KONTORET aps "},
    ),
    case(
        "bill_cvr_unknown_name_known",
        [
            invoice(
                "bill_cvr_unknown_name_known",
                supplier={"supplierNumber": 5},
                text="Frugt til Kontoret ApS faktura 2026-0042 [bill_cvr_unknown_name_known]",
            )
        ],
        **{"vendor.cvr": "38112233", "vendor.name": "Frugt til Kontoret ApS"},
    ),
    case(
        "bill_unmatched_create",
        [
            invoice(
                "bill_unmatched_create",
                drop=("supplier",),
                text="Telenor A/S faktura 2026-0042 [bill_unmatched_create]",
            )
        ],
        **{"vendor.cvr": "19433692", "vendor.name": "Telenor A/S"},
    ),
    case(
        "bill_unmatched_default",
        [
            invoice(
                "bill_unmatched_default",
                supplier={"supplierNumber": 99},
                text="Telenor A/S faktura 2026-0042 [bill_unmatched_default]",
            )
        ],
        setup="default supplier",
        **{"vendor.cvr": "19433692", "vendor.name": "Telenor A/S"},
    ),
    # ------------------------------------------------------------------ missing values and cutting
    case("bill_no_due_date", [invoice("bill_no_due_date", drop=("dueDate",))], due_date=None),
    case(
        "bill_no_invoice_number",
        [
            invoice(
                "bill_no_invoice_number",
                drop=("supplierInvoiceNumber",),
                text="Dansk Kontorforsyning ApS faktura [bill_no_invoice_number]",
            ),
            payment(
                "bill_no_invoice_number",
                drop=("supplierInvoiceNumber",),
                text="Dansk Kontorforsyning ApS betaling [bill_no_invoice_number]",
            ),
        ],
        rules=["invoice_number_fits"],
        invoice_number=None,
        status="PAID",
        payment=pay(),
    ),
    case(
        "bill_long_invoice_number",
        [
            invoice(
                "bill_long_invoice_number",
                supplierInvoiceNumber="INV-2026-000000000000000000042",
                text="Dansk Kontorforsyning ApS faktura INV-2026-000000000000000000042 [bill_long_invoice_number]",
            ),
            payment(
                "bill_long_invoice_number",
                supplierInvoiceNumber="INV-2026-000000000000000000042",
                text="Dansk Kontorforsyning ApS betaling INV-2026-000000000000000000042 [bill_long_invoice_number]",
            ),
        ],
        rules=["invoice_number_fits"],
        invoice_number="INV-2026-000000000000000000042-EXTRA-SUFFIX",
        status="PAID",
        payment=pay(),
    ),
    case("bill_no_payment_code", [invoice("bill_no_payment_code", drop=("paymentDetails",))], payment_code=None),
    case(
        "bill_payment_code_not_parsing",
        [invoice("bill_payment_code_not_parsing", drop=("paymentDetails",))],
        rules=["payment_code_parses"],
        payment_code="+71<123+85123456<",
    ),
    # ------------------------------------------------------------------ accounting years
    case(
        "bill_split_year",
        [
            invoice("bill_split_year", year="2025/2026", date="2026-03-05", dueDate="2026-03-20"),
            payment("bill_split_year", year="2026/2027", date="2026-07-02"),
        ],
        setup="split years",
        issue_date="2026-03-05",
        due_date="2026-03-20",
        status="PAID",
        payment=pay(paid_date="2026-07-02"),
    ),
    case(
        "bill_moved_to_next_open_date",
        [
            invoice("bill_moved_to_next_open_date", year="2025", date="2025-01-01", dueDate="2024-12-20"),
            payment("bill_moved_to_next_open_date", year="2025", date="2025-01-15"),
        ],
        setup="next open date",
        issue_date="2024-12-10",
        due_date="2024-12-20",
        status="PAID",
        payment=pay(paid_date="2025-01-15"),
    ),
    case(
        "bill_both_moved",
        [
            invoice("bill_both_moved", year="2025", date="2025-01-01", dueDate="2024-12-20"),
            payment("bill_both_moved", year="2025", date="2025-01-01"),
        ],
        setup="next open date",
        issue_date="2024-12-10",
        due_date="2024-12-20",
        status="PAID",
        payment=pay(paid_date="2024-12-28"),
    ),
]


@pytest.fixture(scope="module")
def booked() -> Callable[[str], tuple[list[PlannedEntry], list[BillOutcome]]]:
    """All cases of one setup booked in one batch (computed once per setup)."""
    done: dict[str, tuple[list[PlannedEntry], list[BillOutcome]]] = {}

    def of(setup: str) -> tuple[list[PlannedEntry], list[BillOutcome]]:
        if setup not in done:
            done[setup] = f.book([c.bill for c in CASES if c.setup == setup], CONTEXTS[setup]())
        return done[setup]

    return of


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bill_gives_exactly_these_entries(case: Case, booked: Callable) -> None:
    entries, outcomes = booked(case.setup)
    got = [(e.kind, e.journal, e.year, e.entry) for e in entries if e.bill_id == case.id]
    assert got == case.expect
    [outcome] = [o for o in outcomes if o.bill_id == case.id]
    assert outcome.state == case.state
    assert sorted(x.rule for x in outcome.findings) == sorted(case.rules)


def test_voucher_carries_the_entry_year_and_journal(booked: Callable) -> None:
    entries, _ = booked("split years")
    inv = next(e for e in entries if e.bill_id == "bill_split_year" and e.kind == "invoice")
    assert inv.voucher["accountingYear"] == {"year": "2025/2026"}
    assert inv.voucher["journal"] == {"journalNumber": INVOICE_JOURNAL}
    assert list(inv.voucher["entries"]) == ["supplierInvoices"]


def test_unmatched_vendor_under_create_carries_what_the_new_supplier_needs(booked: Callable) -> None:
    entries, _ = booked("standard")
    inv = next(e for e in entries if e.bill_id == "bill_unmatched_create")
    assert inv.vendor == {
        "key": "cvr:19433692",
        "name": "Telenor A/S",
        "cvr": "19433692",
        "country": "DK",
        "currency": "DKK",
        "how": "create",
    }
