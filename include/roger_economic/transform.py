"""Prepared bills and their findings into e-conomic vouchers (supplier invoices and payments).

Per entry, not per bill: a paid bill whose payment fails its own rules gets
its invoice booked and its payment quarantined; an invoice that fails holds
its payment back; a receipt is one event (both or neither).
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

import pandas as pd

from roger_economic.context import AgreementContext
from roger_economic.economic import conventions
from roger_economic.model import BillOutcome, Finding, PlannedEntry
from roger_economic.prepare import records
from roger_economic.rules import Severity, entries_to_book
from roger_economic.states import BillState
from roger_economic.texts import INVOICE_NUMBER_MAX, entry_text


def _d(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def build(
    frame: pd.DataFrame, findings: list[Finding], contexts: dict[str, AgreementContext]
) -> tuple[list[PlannedEntry], list[BillOutcome]]:
    by_bill: dict[tuple[str, str], list[Finding]] = defaultdict(list)
    for f in findings:
        by_bill[(f.agreement_id, f.bill_id)].append(f)
    entries: list[PlannedEntry] = []
    outcomes: list[BillOutcome] = []
    for row in records(frame):
        key = (row["agreement_id"], str(row["bill_id"]))
        found = by_bill.get(key, [])
        version = int(row["version"]) if row["version"] is not None else None
        if row["action"] != "book":
            outcomes.append(BillOutcome(*key, version, row["action"], found))
            continue
        invoice_ok, payment_ok = entries_to_book(found, bool(row["is_receipt"]), bool(row["needs_payment"]))
        ctx = contexts[row["agreement_id"]]
        if invoice_ok:
            entries.append(_invoice(row, ctx))
        if payment_ok:
            entries.append(_payment(row, ctx))
        stopped = any(f.severity == Severity.STOP for f in found)
        outcomes.append(BillOutcome(*key, version, BillState.QUARANTINED if stopped else BillState.PLANNED, found))
    return entries, outcomes


def _entry(row: dict[str, Any], kind: str, amount: Decimal, account: Any, currency: str) -> dict[str, Any]:
    """What an invoice and a payment entry both carry: supplier, amount, account, currency, date and texts."""
    supplier = (
        {"supplier": {"supplierNumber": int(row["supplier_number"])}} if row["supplier_number"] is not None else {}
    )
    return {
        **supplier,
        "amount": amount,
        "contraAccount": {"accountNumber": int(account)},
        "currency": {"code": currency},
        "date": row[f"{kind}_date"].isoformat(),
        "text": entry_text(
            row["vendor_name"],
            row["document_type"],
            _cut(row["invoice_number"]),
            str(row["bill_id"]),
            payment=kind == "payment",
        ),
        **_invoice_number(row),
    }


def _vendor(row: dict[str, Any]) -> dict[str, Any]:
    """The vendor as the loader creates it as a supplier under the ``create`` policy."""
    return {
        "key": row["vendor_key"],
        "name": row["vendor_name"],
        "cvr": row["vendor_cvr"],
        "country": row["vendor_country"],
        "currency": row["currency"],
        "how": row["supplier_how"],
    }


def _invoice_number(row: dict[str, Any]) -> dict[str, Any]:
    number = row["invoice_number"]
    return {"supplierInvoiceNumber": str(number)[:INVOICE_NUMBER_MAX]} if number else {}


def _planned(
    row: dict[str, Any], kind: str, journal: int, entry: dict[str, Any], has_document: bool = False
) -> PlannedEntry:
    """The voucher holding one entry: ``kind`` (invoice | payment) names its year column and its list."""
    year = row[f"{kind}_year"]
    entries = "supplierInvoices" if kind == "invoice" else "supplierPayments"
    voucher = {"accountingYear": {"year": year}, "journal": {"journalNumber": journal}, "entries": {entries: [entry]}}
    return PlannedEntry(
        row["agreement_id"],
        str(row["bill_id"]),
        int(row["version"]),
        kind,
        journal,
        year,
        voucher,
        _vendor(row),
        has_document,
    )


def _invoice(row: dict[str, Any], ctx: AgreementContext) -> PlannedEntry:
    doc = row["document_type"]
    amount = conventions.invoice_amount(doc, _d(row["amount"]))
    entry = _entry(row, "invoice", amount, row["contra_account"], row["currency"])
    if row["vat_code"]:
        entry["contraVatAccount"] = {"vatCode": row["vat_code"]}
        if row["vat_to_send"] is not None:
            entry["contraVatAmount"] = conventions.invoice_amount(doc, _d(row["vat_to_send"]))
    if row["exchange_rate"] is not None and row["currency"] != ctx.base_currency:
        entry["exchangeRate"] = row["exchange_rate"]
    if row["due_date"] is not None:
        entry["dueDate"] = row["due_date"].isoformat()
    if row["payment_details"]:
        entry["paymentDetails"] = row["payment_details"]
    return _planned(row, "invoice", ctx.settings.invoice_journal, entry, bool(row["has_document"]))


def _payment(row: dict[str, Any], ctx: AgreementContext) -> PlannedEntry:
    amount = conventions.payment_amount(row["document_type"], _d(row["pay_amount"]))
    entry = _entry(row, "payment", amount, row["pay_account"], row["pay_currency"])
    if row["exchange_rate"] is not None:
        entry["exchangeRate"] = row["exchange_rate"]
    return _planned(row, "payment", ctx.settings.payment_journal, entry)


def _cut(number: Any) -> str | None:
    return str(number)[:INVOICE_NUMBER_MAX] if number else None
