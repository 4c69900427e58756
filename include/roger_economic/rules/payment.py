"""Rules on the supplier payment entry, judged only when the bill is due one (a paid bill, a receipt)."""

from __future__ import annotations

from roger_economic import masterdata
from roger_economic.context import AgreementContext
from roger_economic.rules.base import NA, OK, Bill, Entry, Severity, placed, rule

STOP, PAYMENT = Severity.STOP, Entry.PAYMENT


def _due(bill: Bill) -> bool:
    return bool(bill["needs_payment"])


@rule("payment_present", STOP, PAYMENT, "chk_pay_present", "chk_pay_present")
def payment_present(bill: Bill, ctx: AgreementContext) -> str:
    """a paid bill carries its payment."""
    if not _due(bill):
        return NA
    missing = [
        name
        for name, value in (
            ("method_id", bill["method_id"]),
            ("paid_date", bill["paid_date"]),
            ("amount", bill["pay_amount"]),
            ("currency", bill["pay_currency"]),
        )
        if value in (None, "") or (name == "amount" and value <= 0)
    ]
    return OK if not missing else "payment missing or malformed: " + ", ".join(missing)


@rule("payment_method_mapped", STOP, PAYMENT, "chk_pay_method", "method_id")
def payment_method_mapped(bill: Bill, ctx: AgreementContext) -> str:
    """payment method mapped to an account."""
    if not _due(bill):
        return NA
    if bill["method_id"] and bill["pay_account"] is None:
        return f"payment method {bill['method_id']!r} is not mapped"
    return OK


@rule("payment_account_bookable", STOP, PAYMENT, "chk_pay_account", "pay_account")
def payment_account_bookable(bill: Bill, ctx: AgreementContext) -> str:
    """payment account bookable."""
    account = bill["pay_account"]
    if not _due(bill) or (bill["method_id"] and account is None):  # unmapped is payment_method_mapped's finding
        return NA
    problem = masterdata.account_problem(ctx.accounts, account) if account is not None else None
    return OK if problem is None else f"payment account {account} is {problem}"


@rule("payment_currency", STOP, PAYMENT, "chk_pay_currency", "pay_currency")
def payment_currency(bill: Bill, ctx: AgreementContext) -> str:
    """payment currency known and the bill's."""
    if not _due(bill):
        return NA
    pay_currency = bill["pay_currency"]
    if pay_currency and pay_currency not in ctx.currencies:
        return f"payment currency {pay_currency!r} unknown to e-conomic"
    if pay_currency and pay_currency != bill["currency"]:
        return f"payment currency {pay_currency} differs from the bill's {bill['currency']}"
    return OK


@rule("payment_date_open", STOP, PAYMENT, "chk_payment_date", "paid_date_raw")
def payment_date_open(bill: Bill, ctx: AgreementContext) -> str:
    """payment date in an open accounting year and period."""
    return placed(_due(bill), bill["payment_placement"], "payment date")


@rule("payment_amount_matches", STOP, PAYMENT, "chk_pay_amount", "pay_amount_raw")
def payment_amount_matches(bill: Bill, ctx: AgreementContext) -> str:
    """a payment in the bill's currency is the bill's amount.

    A payment in the bill's currency must be the bill's amount; a partial or over-payment waits for the
    accountant (booking-rules "Validation"). Another currency is ``payment_currency``'s business."""
    if not _due(bill):
        return NA
    paid, gross = bill["pay_amount"], bill["amount"]
    if paid is None or gross is None or paid <= 0 or bill["pay_currency"] != bill["currency"] or paid == gross:
        return OK
    kind = "partial payment" if paid < gross else "over-payment"
    return (
        f"payment {paid} {bill['pay_currency']} differs from the bill's amount {gross} {bill['currency']} "
        f"({kind}: the accountant decides)"
    )
