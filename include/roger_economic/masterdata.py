"""Master data of both sides, read once per refresh and kept per agreement.

The bills run reads these snapshots from the database instead of calling
e-conomic per bill, which is what keeps it at a few calls per agreement.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from roger_economic.db import models
from roger_economic.economic.client import EconomicClient
from roger_economic.economic.conventions import BOOKABLE_ACCOUNT_TYPES, SCANNING_MODULE_NAMES
from roger_economic.economic.jsonnum import to_plain
from roger_economic.roger.client import RogerClient

ECONOMIC_KINDS = (
    "self",
    "accounts",
    "journals",
    "accounting_years",
    "vat_accounts",
    "currencies",
    "suppliers",
    "payment_types",
)
ROGER_KINDS = ("roger_company", "roger_categories", "roger_payment_methods")


def fetch(economic: EconomicClient, roger: RogerClient) -> dict[str, Any]:
    years = economic.collection("/accounting-years")
    for year in years:  # "periods" is a link in e-conomic's answer; keep the periods themselves
        year["periods"] = [] if year.get("closed") else economic.accounting_year_periods(year["year"])
    return {
        "self": economic.self_(),
        "accounts": economic.collection("/accounts"),
        "journals": economic.collection("/journals"),
        "accounting_years": years,
        "vat_accounts": economic.collection("/vat-accounts"),
        "currencies": economic.collection("/currencies"),
        "suppliers": economic.collection("/suppliers"),
        # what this agreement offers: a bill whose FI code maps to a type not listed here is quarantined
        "payment_types": economic.collection("/payment-types"),
        "roger_company": roger.company(),
        "roger_categories": roger.categories(),
        "roger_payment_methods": roger.payment_methods(),
    }


def save(sess: Session, agreement_id: str, snapshots: dict[str, Any]) -> None:
    """Store the snapshots; e-conomic's decimals as their exact text (a JSON column takes no ``Decimal``)."""
    now = datetime.now(UTC)
    for kind, payload in snapshots.items():
        row = sess.get(models.MasterData, (agreement_id, kind))
        if row is None:
            row = models.MasterData(agreement_id=agreement_id, kind=kind)
        row.payload = to_plain(payload)
        row.fetched_at = now
        sess.add(row)


class Snapshots(dict[str, Any]):
    """One agreement's master data by kind. Read for some kinds only, it refuses to answer for the others:
    an empty answer would read as "e-conomic has none" (no accounts, no suppliers) and judge wrongly."""

    def __init__(self, kinds: tuple[str, ...] | None = None) -> None:
        super().__init__()
        self.kinds = None if kinds is None else frozenset(kinds)

    def _readable(self, kind: str) -> None:
        if self.kinds is not None and kind not in self.kinds:
            raise LookupError(f"master data {kind!r} was not read here (only {', '.join(sorted(self.kinds))})")

    def get(self, kind: str, default: Any = None) -> Any:
        self._readable(kind)
        return super().get(kind, default)

    def __getitem__(self, kind: str) -> Any:
        self._readable(kind)
        return super().__getitem__(kind)


def load(sess: Session, agreement_ids: list[str], kinds: tuple[str, ...] | None = None) -> dict[str, Snapshots]:
    """{agreement_id: {kind: payload}} for many agreements in one query (only ``kinds``, when given)."""
    out = {a: Snapshots(kinds) for a in agreement_ids}
    query = select(models.MasterData.agreement_id, models.MasterData.kind, models.MasterData.payload).where(
        models.MasterData.agreement_id.in_(agreement_ids)
    )
    rows = sess.execute(query if kinds is None else query.where(models.MasterData.kind.in_(kinds)))
    for aid, kind, payload in rows:
        out[aid][kind] = payload
    return out


def modules(snapshots: dict[str, Any]) -> set[str]:
    return {str(m.get("name", "")).lower() for m in (snapshots.get("self") or {}).get("modules", [])}


def has_scanning(snapshots: dict[str, Any]) -> bool:
    return bool(modules(snapshots) & SCANNING_MODULE_NAMES)


def payment_type_numbers(snapshots: dict[str, Any]) -> frozenset[int] | None:
    """The payment type numbers the agreement lists (``GET /payment-types``); ``None`` before they were read."""
    types = snapshots.get("payment_types")
    if types is None:
        return None
    return frozenset(int(t["paymentTypeNumber"]) for t in types if t.get("paymentTypeNumber") is not None)


def account_problem(accounts: dict[int, dict[str, Any]], number: int | None) -> str | None:
    """Why an account cannot take a direct entry, or ``None`` when it can."""
    if number is None:
        return "missing"
    acc = accounts.get(int(number))
    if acc is None:
        return "unknown"
    if acc.get("barred"):
        return "barred"
    if acc.get("accountType") not in BOOKABLE_ACCOUNT_TYPES:
        return f"{acc.get('accountType')} account"
    if acc.get("blockDirectEntries"):
        return "blocks direct entries"
    return None


def journal_problem(journals: dict[int, dict[str, Any]], number: int, entry_type: str) -> str | None:
    journal = journals.get(int(number))
    if journal is None:
        return f"journal {number} does not exist"
    restricted = (journal.get("settings") or {}).get("entryTypeRestrictedTo")
    if restricted and restricted != entry_type:
        return f"journal {number} ({journal.get('name')}) only takes {restricted} entries, not {entry_type}"
    return None


def mapping_gaps(
    agreement: Any,
    categories: dict[str, tuple[int, str | None]],
    methods: dict[str, int],
    snapshots: dict[str, Any],
) -> list[dict[str, Any]]:
    """What in the agreement's setup cannot be booked as it stands, one item per gap."""
    from roger_economic import setup_rules  # it reads this module's look-ups

    accounts = {a["accountNumber"]: a for a in snapshots.get("accounts", [])}
    vat_codes = {v["vatCode"] for v in snapshots.get("vat_accounts", [])}
    gaps: list[dict[str, Any]] = []

    def gap(kind: str, item: str, message: str, stops: str = "bills") -> None:
        gaps.append({"kind": kind, "item": item, "message": message, "stops": stops})

    setup = setup_rules.values_of(agreement)
    for rule in setup_rules.problems(setup, mapped=bool(categories), snapshots=snapshots):
        if rule.kind in (setup_rules.Kind.JOURNAL, setup_rules.Kind.MAPPING):
            gap(str(rule.kind), rule.item, rule.message, "agreement")
    if agreement.default_account is not None:
        problem = account_problem(accounts, agreement.default_account)
        if problem:
            gap("default_account", str(agreement.default_account), f"default account is {problem}")
    for cat in snapshots.get("roger_categories", []):
        if cat.get("archived") or cat["id"] in categories:
            continue
        if agreement.default_account is None:
            gap("category", cat["id"], f"category '{cat.get('name')}' is not mapped and there is no default account")
    for cat_id, (account, vat) in categories.items():
        problem = account_problem(accounts, account)
        if problem:
            gap("category", cat_id, f"category {cat_id} maps to account {account}, which is {problem}")
        if vat and vat not in vat_codes:
            gap("category", cat_id, f"category {cat_id} uses VAT code {vat}, which e-conomic does not know")
    for method in snapshots.get("roger_payment_methods", []):
        if not method.get("archived") and method["id"] not in methods:
            gap("payment_method", method["id"], f"payment method '{method.get('name')}' is not mapped")
    for method_id, account in methods.items():
        problem = account_problem(accounts, account)
        if problem:
            gap(
                "payment_method", method_id, f"payment method {method_id} maps to account {account}, which is {problem}"
            )
    return gaps
