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


def _common(row: dict[str, Any], ctx: AgreementContext) -> tuple[dict[str, Any], dict[str, Any]]:
    supplier: dict[str, Any] = {}
    if row["supplier_number"] is not None:
        supplier = {"supplier": {"supplierNumber": int(row["supplier_number"])}}
    vendor = {
        "key": row["vendor_key"],
        "name": row["vendor_name"],
        "cvr": row["vendor_cvr"],
        "country": row["vendor_country"],
        "currency": row["currency"],
        "how": row["supplier_how"],
    }
    return supplier, vendor


def _invoice_number(row: dict[str, Any]) -> dict[str, Any]:
    number = row["invoice_number"]
    return {"supplierInvoiceNumber": str(number)[:INVOICE_NUMBER_MAX]} if number else {}


def _invoice(row: dict[str, Any], ctx: AgreementContext) -> PlannedEntry:
    supplier, vendor = _common(row, ctx)
    doc = row["document_type"]
    entry: dict[str, Any] = {
        **supplier,
        "amount": conventions.invoice_amount(doc, _d(row["amount"])),
        "contraAccount": {"accountNumber": int(row["contra_account"])},
        "currency": {"code": row["currency"]},
        "date": row["invoice_date"].isoformat(),
        "text": entry_text(row["vendor_name"], doc, _cut(row["invoice_number"]), str(row["bill_id"]), payment=False),
        **_invoice_number(row),
    }
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
    journal = ctx.settings.invoice_journal
    voucher = {
        "accountingYear": {"year": row["invoice_year"]},
        "journal": {"journalNumber": journal},
        "entries": {"supplierInvoices": [entry]},
    }
    return PlannedEntry(
        row["agreement_id"],
        str(row["bill_id"]),
        int(row["version"]),
        "invoice",
        journal,
        row["invoice_year"],
        voucher,
        vendor,
        bool(row["has_document"]),
    )


def _payment(row: dict[str, Any], ctx: AgreementContext) -> PlannedEntry:
    supplier, vendor = _common(row, ctx)
    doc = row["document_type"]
    entry: dict[str, Any] = {
        **supplier,
        "amount": conventions.payment_amount(doc, _d(row["pay_amount"])),
        "contraAccount": {"accountNumber": int(row["pay_account"])},
        "currency": {"code": row["pay_currency"]},
        "date": row["payment_date"].isoformat(),
        "text": entry_text(row["vendor_name"], doc, _cut(row["invoice_number"]), str(row["bill_id"]), payment=True),
        **_invoice_number(row),
    }
    if row["exchange_rate"] is not None:
        entry["exchangeRate"] = row["exchange_rate"]
    journal = ctx.settings.payment_journal
    voucher = {
        "accountingYear": {"year": row["payment_year"]},
        "journal": {"journalNumber": journal},
        "entries": {"supplierPayments": [entry]},
    }
    return PlannedEntry(
        row["agreement_id"],
        str(row["bill_id"]),
        int(row["version"]),
        "payment",
        journal,
        row["payment_year"],
        voucher,
        vendor,
        False,
    )


def _cut(number: Any) -> str | None:
    return str(number)[:INVOICE_NUMBER_MAX] if number else None
