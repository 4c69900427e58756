"""Rules on the bill as Roger sent it: the contract kept, the required fields present, a positive amount."""

from __future__ import annotations

from datetime import date
from typing import Any

from roger_economic.context import AgreementContext
from roger_economic.rules.base import OK, Bill, Entry, Rule, Severity, rule

DOCUMENT_TYPES = frozenset({"bill", "receipt", "credit_note"})
STOP, INVOICE = Severity.STOP, Entry.INVOICE
REQUIRED = ("bill_id", "vendor_name", "issue_date_raw", "currency", "amount_raw", "document_type")


def parse_day(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


@rule("roger_contract", STOP, INVOICE, "chk_contract", "contract_value")
def roger_contract(bill: Bill, ctx: AgreementContext) -> str:
    """the record keeps the Roger contract (openapi Bill schema).

    A bill that breaks the contract is judged by that alone (see :func:`roger_economic.rules.judge`)."""
    return bill["contract_break"] or OK


@rule("required_fields", STOP, INVOICE, "chk_required", "chk_required")
def required_fields(bill: Bill, ctx: AgreementContext) -> str:
    """required fields present and well-formed.

    ok, or which required fields are missing or malformed (an unknown document type is malformed)."""
    bad = [
        name
        for name in REQUIRED
        if bill[name] in (None, "")
        or (name == "issue_date_raw" and parse_day(bill[name]) is None)
        or (name == "document_type" and bill[name] not in DOCUMENT_TYPES)
    ]
    return OK if not bad else "missing or malformed: " + ", ".join(bad)


@rule("amount_positive_2_decimals", STOP, INVOICE, "chk_amount", "amount_raw")
def amount_positive(bill: Bill, ctx: AgreementContext) -> str:
    """amount positive with at most 2 decimals."""
    amount = bill["amount"]
    return (
        OK
        if amount is not None and amount > 0
        else f"amount {bill['amount_raw']!r} is not positive with at most 2 decimals"
    )


UNIQUE_IN_BATCH = Rule("unique_in_batch", STOP, INVOICE, "bill_key", "bill_id", "each bill once in a batch", check=None)
