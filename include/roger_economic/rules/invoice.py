"""Rules on the supplier invoice entry: what it is booked to, when, and against which supplier."""

from __future__ import annotations

from roger_economic import masterdata
from roger_economic.context import AgreementContext
from roger_economic.economic.conventions import PAYMENT_TYPES
from roger_economic.money import vat_fits
from roger_economic.rules.base import NA, OK, Bill, Entry, Severity, booking, placed, rule
from roger_economic.texts import INVOICE_NUMBER_MAX

STOP, WARN, INVOICE = Severity.STOP, Severity.WARN, Entry.INVOICE


@rule("currency_known", STOP, INVOICE, "chk_currency", "currency")
def currency_known(bill: Bill, ctx: AgreementContext) -> str:
    """currency known to e-conomic."""
    if not booking(bill) or bill["currency"] in ctx.currencies:
        return OK
    return f"currency {bill['currency']!r} unknown to e-conomic"


@rule("category_mapped", STOP, INVOICE, "chk_category", "category_id")
def category_mapped(bill: Bill, ctx: AgreementContext) -> str:
    """category mapped, or a default account."""
    if not booking(bill):
        return NA
    if bill["contra_account"] is not None:
        return OK
    if bill["category_id"]:
        return f"category {bill['category_id']!r} is not mapped and there is no default account"
    return "the bill has no category and there is no default account"


@rule("contra_account_bookable", STOP, INVOICE, "chk_contra", "contra_account")
def contra_account_bookable(bill: Bill, ctx: AgreementContext) -> str:
    """contra account exists, not barred, not heading/sum, takes direct entries."""
    contra = bill["contra_account"]
    if not booking(bill) or contra is None:  # no account at all is category_mapped's finding
        return NA
    problem = masterdata.account_problem(ctx.accounts, contra)
    return OK if problem is None else f"{bill['contra_source']} account {contra} is {problem}"


@rule("invoice_date_open", STOP, INVOICE, "chk_invoice_date", "invoice_day")
def invoice_date_open(bill: Bill, ctx: AgreementContext) -> str:
    """invoice date in an open accounting year and period."""
    return placed(booking(bill), bill["invoice_placement"], "invoice date")


@rule("supplier_resolved", STOP, INVOICE, "chk_supplier", "vendor_name")
def supplier_resolved(bill: Bill, ctx: AgreementContext) -> str:
    """vendor resolves to a supplier under the agreement's policy."""
    if not booking(bill) or bill["supplier_how"] != "unresolved":
        return OK
    return (
        f"vendor {bill['vendor_name']!r} (CVR {bill['vendor_cvr']}) has no supplier and the policy is "
        f"{ctx.settings.supplier_policy}"
    )


@rule("payment_type_offered", STOP, INVOICE, "chk_payment_type", "payment_type_number")
def payment_type_offered(bill: Bill, ctx: AgreementContext) -> str:
    """the agreement offers the invoice's payment type.

    The agreement must list the payment type the invoice carries (README "Payment types": e-conomic refuses a
    type the agreement lacks), else the bill waits until it is added or the code changes."""
    number = bill["payment_type_number"]
    if not booking(bill):
        return NA
    if number is None:
        return OK
    name = PAYMENT_TYPES[number][0]
    if ctx.payment_types is None:
        return f"payment type {number} ({name}): the agreement's payment types are not read yet (run roger_master_data)"
    if number not in ctx.payment_types:
        listed = ", ".join(str(n) for n in sorted(ctx.payment_types)) or "none"
        return f"payment type {number} ({name}) is not among the agreement's payment types ({listed})"
    return OK


def _vat_implausible(bill: Bill) -> str | None:
    vat, gross = bill["vat_amount"], bill["amount"]
    if vat is None or gross is None or gross <= 0:
        return None
    if vat < 0:
        return f"VAT amount {vat} is of the other sign than the gross amount {gross}"
    if vat > gross:
        return f"VAT amount {vat} is larger than the gross amount {gross}"
    return None


@rule("vat_plausible", STOP, INVOICE, "chk_vat", "vat_raw")
def vat_plausible(bill: Bill, ctx: AgreementContext) -> str:
    """VAT amount not larger than the gross amount and of its sign.

    Plausibility (booking-rules "Validation"): a VAT amount is part of the gross, so never larger than it and
    never of the other sign. Checked on Roger's value, sent or not: a VAT of 500 on a 100 bill is a wrong record."""
    if not booking(bill):
        return NA
    return _vat_implausible(bill) or OK


@rule("due_after_issue", WARN, INVOICE, "w_due", "due_date_raw")
def due_after_issue(bill: Bill, ctx: AgreementContext) -> str:
    """due date not before issue date."""
    due, issue = bill["due_date"], bill["issue_date"]
    return f"due date {due} is before issue date {issue}" if booking(bill) and due and issue and due < issue else OK


@rule("vat_fits_rate", WARN, INVOICE, "w_vat", "vat_raw")
def vat_fits_rate(bill: Bill, ctx: AgreementContext) -> str:
    """VAT amount fits the code's rate."""
    vat, rate, amount = bill["vat_to_send"], bill["vat_rate"], bill["amount"]
    if not booking(bill) or vat is None or rate is None or amount is None or amount <= 0:
        return OK
    if _vat_implausible(bill):  # an implausible VAT stops the bill: no second finding that it misfits
        return OK
    return OK if vat_fits(amount, vat, rate) else f"VAT {vat} does not fit {bill['vat_code']} ({rate}%) on {amount}"


@rule("invoice_number_fits", WARN, INVOICE, "w_invoice_number", "invoice_number")
def invoice_number_fits(bill: Bill, ctx: AgreementContext) -> str:
    """invoice number present and at most 30 characters."""
    number = bill["invoice_number"]
    if not booking(bill):
        return OK
    if not number:
        return "no invoice number: entries carry no supplierInvoiceNumber"
    if len(str(number)) > INVOICE_NUMBER_MAX:
        return f"invoice number {number!r} cut to {INVOICE_NUMBER_MAX} characters"
    return OK


@rule("payment_code_parses", WARN, INVOICE, "w_payment_code", "payment_code")
def payment_code_parses(bill: Bill, ctx: AgreementContext) -> str:
    """FI payment code parses."""
    return bill["payment_code_warning"] if booking(bill) and bill["payment_code_warning"] else OK
