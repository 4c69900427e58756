"""Test data built from the sandbox world: agreement contexts and Roger bills, by value."""

from __future__ import annotations

import copy
from typing import Any

from roger_economic.context import AgreementContext
from roger_economic.model import Agreement, BillOutcome, PlannedEntry
from sandboxes import world
from sandboxes.economic.validation import payment_types


def snapshots(i: int = 1, scanning: bool = True) -> dict[str, Any]:
    """Master data shaped as e-conomic and Roger answer it, for sandbox agreement ``i``."""
    years = []
    for year, start, end, closed in world.accounting_years(i):
        years.append(
            {"year": year, "fromDate": start, "toDate": end, **({"closed": True} if closed else {}), "periods": []}
        )
    accounts = []
    for a in world.CHART_OF_ACCOUNTS:
        acc: dict[str, Any] = {"accountNumber": a.number, "name": a.name, "accountType": a.account_type}
        if a.vat_code:
            acc["vatAccount"] = {"vatCode": a.vat_code}
        if a.barred:
            acc["barred"] = True
        if a.block_direct_entries:
            acc["blockDirectEntries"] = True
        accounts.append(acc)
    journals = [
        {
            "journalNumber": n,
            "name": name,
            "settings": {
                **({"entryTypeRestrictedTo": r} if r else {}),
                "voucherNumbers": {"minimumVoucherNumber": lo, "maximumVoucherNumber": hi},
            },
        }
        for n, name, r, lo, hi in world.JOURNALS
    ]
    suppliers = []
    for n, v in enumerate(world.VENDORS, start=1):
        if v.in_economic == "cvr":
            suppliers.append({"supplierNumber": n, "name": v.name, "corporateIdentificationNumber": v.cvr})
        elif v.in_economic == "name":
            suppliers.append({"supplierNumber": n, "name": v.name.upper()})
    modules = [{"moduleNumber": 1, "name": world.API_MODULE}]
    if scanning:
        modules.append({"moduleNumber": 2, "name": world.SCANNING_MODULE})
    return {
        "self": {"agreementNumber": world.agreement_number(i), "settings": {"baseCurrency": "DKK"}, "modules": modules},
        "accounts": accounts,
        "journals": journals,
        "accounting_years": years,
        "vat_accounts": [
            {"vatCode": c, "name": n, "ratePercentage": float(r)} for c, n, r, _a, _c in world.VAT_ACCOUNTS
        ],
        "currencies": [{"code": c, "name": n} for c, n in world.CURRENCIES],
        "suppliers": suppliers,
        "payment_types": [{"paymentTypeNumber": n, "name": t.name} for n, t in payment_types().items()],
        "roger_categories": [{"id": c, "name": n, "archived": a} for c, n, a in world.CATEGORIES],
        "roger_payment_methods": [
            {"id": p, "name": n, "kind": k, "archived": a} for p, n, k, _m, a in world.PAYMENT_METHODS
        ],
    }


CATEGORIES = {
    "cat_office": (2750, None),
    "cat_software": (2760, "I25"),
    "cat_meals": (2250, "REP"),
    "cat_rent": (3400, None),
    "cat_services": (2800, None),
    "cat_barred": (2795, None),
    "cat_heading": (2700, None),
    "cat_blocked": (2796, None),
}
METHODS = {"pm_bank": 5820, "pm_credit": 6600, "pm_barred": 2795}


def context(agreement_id: str = "agr_0001", i: int = 1, **overrides: Any) -> AgreementContext:
    settings: dict[str, Any] = {
        "id": agreement_id,
        "name": agreement_id,
        "roger_company_id": world.company_id(i),
        "roger_token_ref": "env:X",
        "economic_token_ref": "env:Y",
        "invoice_journal": 2,
        "payment_journal": 3,
        "default_account": 3990,
        "supplier_policy": "create",
        "supplier_group": 1,
        "payment_terms": 1,
        "default_supplier": None,
        "closed_period_policy": "quarantine",
        "book_without_attachment": False,
    }
    snaps = overrides.pop("snapshots", None) or snapshots(i)
    categories = overrides.pop("categories", CATEGORIES)
    methods = overrides.pop("methods", METHODS)
    settings.update(overrides)
    return AgreementContext(Agreement(**settings), dict(categories), dict(methods), snaps)


BASE_BILL: dict[str, Any] = {
    "id": "bill_01J9ZK3X4Q",
    "company_id": "cmp_0001",
    "version": 1,
    "status": "UPCOMING",
    "deleted": False,
    "document_type": "bill",
    "vendor": {"name": "Dansk Kontorforsyning ApS", "cvr": "31245871", "country": "DK"},
    "invoice_number": "2026-0042",
    "issue_date": "2026-10-05",
    "due_date": "2026-10-20",
    "currency": "DKK",
    "amount": "1250.00",
    "vat_amount": "250.00",
    "category_id": "cat_office",
    "payment_code": "+71<000000001234567+85123456<",
    "payment": None,
    "has_document": True,
    "created_at": "2026-10-05T08:00:00Z",
    "updated_at": "2026-10-05T09:00:00Z",
}


def bill(**changes: Any) -> dict[str, Any]:
    """The base bill with changes; dotted keys (``vendor.cvr``) reach inside."""
    out = copy.deepcopy(BASE_BILL)
    for key, value in changes.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return out


def paid(
    method: str = "pm_bank",
    paid_date: str = "2026-10-18",
    amount: str | None = None,
    currency: str = "DKK",
    base: str | None = None,
    **changes: Any,
) -> dict[str, Any]:
    b = bill(status="PAID", **changes)
    b["payment"] = pay(method, paid_date, amount or b["amount"], currency, base)
    return b


def pay(
    method: str = "pm_bank",
    paid_date: str = "2026-10-18",
    amount: str = "1250.00",
    currency: str = "DKK",
    base: str | None = None,
) -> dict[str, Any]:
    """A Roger payment object (what a PAID bill carries)."""
    return {
        "method_id": method,
        "paid_date": paid_date,
        "amount": amount,
        "currency": currency,
        "amount_base_currency": base,
    }


def book(bills: list[dict[str, Any]], ctx: AgreementContext) -> tuple[list[PlannedEntry], list[BillOutcome]]:
    """Prepare, validate and transform one agreement's bills in one batch, as the pipeline does."""
    from roger_economic import transform, validation
    from roger_economic.prepare import prepare

    contexts = {ctx.settings.id: ctx}
    frame = prepare([(ctx.settings.id, b) for b in bills], contexts)
    return transform.build(frame, validation.run(frame), contexts)
