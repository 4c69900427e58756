"""Rules on the bill as Roger sent it: the contract kept, the required fields present, a positive amount."""

from __future__ import annotations

from datetime import date
from typing import Any

from roger_economic.context import AgreementContext
from roger_economic.rules.base import OK, Bill, Entry, Rule, Severity, rule

DOCUMENT_TYPES = frozenset({"bill", "receipt", "credit_note"})
REQUIRED = ("bill_id", "vendor_name", "issue_date_raw", "currency", "amount_raw", "document_type")


def parse_day(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


@rule(
    "roger_contract",
    Severity.STOP,
    Entry.INVOICE,
    column="chk_contract",
    value="contract_value",
    description="the record keeps the Roger contract (openapi Bill schema)",
)
def roger_contract(bill: Bill, ctx: AgreementContext) -> str:
    """A bill that breaks the contract is judged by that alone (see :func:`roger_economic.rules.judge`)."""
    return bill["contract_break"] or OK


@rule(
    "required_fields",
    Severity.STOP,
    Entry.INVOICE,
    column="chk_required",
    value="chk_required",
    description="required fields present and well-formed",
)
def required_fields(bill: Bill, ctx: AgreementContext) -> str:
    """ok, or which required fields are missing or malformed (an unknown document type is malformed)."""
    bad = [
        name
        for name in REQUIRED
        if bill[name] in (None, "")
        or (name == "issue_date_raw" and parse_day(bill[name]) is None)
        or (name == "document_type" and bill[name] not in DOCUMENT_TYPES)
    ]
    return OK if not bad else "missing or malformed: " + ", ".join(bad)


@rule(
    "amount_positive_2_decimals",
    Severity.STOP,
    Entry.INVOICE,
    column="chk_amount",
    value="amount_raw",
    description="amount positive with at most 2 decimals",
)
def amount_positive(bill: Bill, ctx: AgreementContext) -> str:
    amount = bill["amount"]
    return (
        OK
        if amount is not None and amount > 0
        else f"amount {bill['amount_raw']!r} is not positive with at most 2 decimals"
    )


UNIQUE_IN_BATCH = Rule(
    "unique_in_batch", Severity.STOP, Entry.INVOICE, "bill_key", "bill_id", "each bill once in a batch", check=None
)
