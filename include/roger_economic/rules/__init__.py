"""The booking rules, each declared once with its check, name, severity and effect (:class:`Rule`).

:mod:`roger_economic.prepare` resolves each bill's look-ups and runs every check (:func:`judge`), writing
one column per rule; :mod:`roger_economic.validation` turns the rules into one Great Expectations suite
over those columns; :mod:`roger_economic.transform` books what the findings' effects allow
(:func:`entries_to_book`). The rules are listed in the order findings are reported.
"""

from __future__ import annotations

from collections.abc import Iterable

from roger_economic.context import AgreementContext
from roger_economic.model import Finding
from roger_economic.rules import invoice, payment, record
from roger_economic.rules.base import NA, OK, Bill, Effect, Entry, Rule, Severity

__all__ = ["NA", "OK", "RULES", "RULES_BY_NAME", "Effect", "Entry", "Rule", "Severity", "entries_to_book", "judge"]

RULES: tuple[Rule, ...] = (
    record.roger_contract,
    record.required_fields,
    record.amount_positive,
    invoice.currency_known,
    invoice.category_mapped,
    invoice.contra_account_bookable,
    invoice.invoice_date_open,
    invoice.supplier_resolved,
    record.UNIQUE_IN_BATCH,
    payment.payment_present,
    payment.payment_method_mapped,
    payment.payment_account_bookable,
    payment.payment_currency,
    payment.payment_date_open,
    invoice.payment_type_offered,
    invoice.vat_plausible,
    payment.payment_amount_matches,
    invoice.due_after_issue,
    invoice.vat_fits_rate,
    invoice.invoice_number_fits,
    invoice.payment_code_parses,
)
RULES_BY_NAME = {r.name: r for r in RULES}
CHECKED = tuple(r for r in RULES if r.check is not None)  # judged bill by bill (the others across the batch)


def judge(bill: Bill, ctx: AgreementContext) -> dict[str, str]:
    """Every rule's column for one prepared bill. A bill that breaks the Roger contract is judged by that
    alone: its other rules read ``n/a`` (they would only repeat, as "missing", what the break says)."""
    if bill["contract_break"]:
        return {r.column: (bill["contract_break"] if r is record.roger_contract else NA) for r in CHECKED}
    return {r.column: r.check(bill, ctx) for r in CHECKED if r.check is not None}


def entries_to_book(findings: Iterable[Finding], is_receipt: bool, needs_payment: bool) -> tuple[bool, bool]:
    """(book the invoice?, book the payment?) given a bill's findings and each rule's :attr:`Rule.effect`.

    A payment needs its invoice; a receipt is one event, so a held payment holds its invoice too.
    """
    effects = {_effect(f) for f in findings}
    invoice_ok = Effect.HOLD_BILL not in effects and not (is_receipt and Effect.HOLD_PAYMENT in effects)
    return invoice_ok, invoice_ok and needs_payment and Effect.HOLD_PAYMENT not in effects


def _effect(finding: Finding) -> Effect:
    known = RULES_BY_NAME.get(finding.rule)
    if known is not None:
        return known.effect
    return Rule(finding.rule, Severity(finding.severity), Entry(finding.entry), "", "", "").effect
