"""Everything one agreement's bills are judged and booked against, read once per run.

An :class:`AgreementContext` joins the agreement's setup (journals, policies,
mapping tables) with its master-data snapshots and the suppliers we have
already resolved, and offers the look-ups the rules need.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from roger_economic import masterdata, setup_rules
from roger_economic.db import models
from roger_economic.model import COLUMNS, Agreement
from roger_economic.periods import Calendar


def normalise_cvr(cvr: Any) -> str | None:
    """CVR compared as 8 digits: drop a ``DK`` prefix and spaces."""
    if not cvr:
        return None
    digits = re.sub(r"[^0-9]", "", str(cvr).upper().removeprefix("DK"))
    return digits if len(digits) == 8 else None


def normalise_name(name: Any) -> str:
    return " ".join(str(name or "").split()).casefold()


def vendor_key(name: Any, cvr: Any) -> str:
    """One vendor, one supplier: keyed by CVR when there is one, else by name."""
    norm = normalise_cvr(cvr)
    return f"cvr:{norm}" if norm else f"name:{normalise_name(name)}"


@dataclass
class AgreementContext:
    settings: Agreement  # its mapping tables are ``categories`` and ``methods`` below
    categories: dict[str, tuple[int, str | None]]
    methods: dict[str, int]
    snapshots: dict[str, Any]
    supplier_links: dict[str, int] = field(default_factory=dict)

    # The look-ups below are built when first asked for: a load or an extract reads an agreement's context
    # for its setup and supplier links, and most agreements never need the accounting calendar.
    @cached_property
    def accounts(self) -> dict[int, dict[str, Any]]:
        return {a["accountNumber"]: a for a in self.snapshots.get("accounts", [])}

    @cached_property
    def journals(self) -> dict[int, dict[str, Any]]:
        return {j["journalNumber"]: j for j in self.snapshots.get("journals", [])}

    @cached_property
    def vat_rates(self) -> dict[str, Decimal]:
        return {v["vatCode"]: Decimal(str(v.get("ratePercentage", 0))) for v in self.snapshots.get("vat_accounts", [])}

    @cached_property
    def currencies(self) -> set[str]:
        return {c["code"] for c in self.snapshots.get("currencies", [])}

    @cached_property
    def calendar(self) -> Calendar:
        return Calendar(self.snapshots.get("accounting_years", []))

    @cached_property
    def payment_types(self) -> frozenset[int] | None:
        return masterdata.payment_type_numbers(self.snapshots)

    @cached_property
    def base_currency(self) -> str:
        return ((self.snapshots.get("self") or {}).get("settings") or {}).get("baseCurrency", "DKK")

    @cached_property
    def _suppliers(self) -> tuple[dict[str, int], dict[str, int]]:
        """(by CVR, by name) of the agreement's suppliers in e-conomic, barred ones left out."""
        by_cvr: dict[str, int] = {}
        by_name: dict[str, int] = {}
        for sup in self.snapshots.get("suppliers", []):
            if sup.get("barred"):
                continue
            cvr = normalise_cvr(sup.get("corporateIdentificationNumber"))
            if cvr:
                by_cvr.setdefault(cvr, sup["supplierNumber"])
            by_name.setdefault(normalise_name(sup.get("name")), sup["supplierNumber"])
        return by_cvr, by_name

    @property
    def suppliers_by_cvr(self) -> dict[str, int]:
        return self._suppliers[0]

    @property
    def suppliers_by_name(self) -> dict[str, int]:
        return self._suppliers[1]

    @property
    def has_master_data(self) -> bool:
        return bool(self.accounts) and bool(self.journals)

    def supplier_for(self, name: Any, cvr: Any) -> tuple[int | None, str]:
        """(supplier number, how): matched by CVR, then by name; else what the policy says."""
        key = vendor_key(name, cvr)
        if key in self.supplier_links:
            return self.supplier_links[key], "matched"
        norm = normalise_cvr(cvr)
        if norm and norm in self.suppliers_by_cvr:
            return self.suppliers_by_cvr[norm], "matched"
        by_name = self.suppliers_by_name.get(normalise_name(name))
        if by_name is not None:
            return by_name, "matched"
        policy = self.settings.supplier_policy
        if policy == "create":
            return None, "create"
        if policy == "default" and self.settings.default_supplier is not None:
            return self.settings.default_supplier, "default"
        return None, "unresolved"

    def stop_reason(self) -> str | None:
        """Why the whole agreement cannot book now (None: it can)."""
        for problem in setup_rules.problems(
            setup_rules.values_of(self.settings), mapped=bool(self.categories), snapshots=self.snapshots
        ):
            if problem.kind is not setup_rules.Kind.POLICY:  # the policy was checked when the setup was stored
                return problem.message
        return None


def read_agreements(sess: Session, agreement_ids: list[str]) -> dict[str, Agreement]:
    """The stored setup of these agreements, read as plain rows: no ORM object is built for a read-only
    setup (an ORM instance costs more to build than the whole row costs to fetch)."""
    columns = [getattr(models.Agreement, name) for name in COLUMNS]
    rows = sess.execute(select(*columns).where(models.Agreement.id.in_(agreement_ids)))
    return {row.id: Agreement.from_row(row) for row in rows}


def load_contexts(
    sess: Session, agreement_ids: list[str], kinds: tuple[str, ...] | None = None
) -> dict[str, AgreementContext]:
    """Contexts for many agreements with a handful of queries (not a few per agreement), as plain rows.

    ``kinds`` restricts the master data read to those kinds: a context that only answers
    :meth:`AgreementContext.stop_reason` needs :data:`setup_rules.STOP_KINDS`, not every snapshot.
    """
    settings = read_agreements(sess, agreement_ids)
    cats: dict[str, dict[str, tuple[int, str | None]]] = {a: {} for a in agreement_ids}
    category = models.CategoryMapping
    for aid, category_id, account, vat in sess.execute(
        select(category.agreement_id, category.category_id, category.account_number, category.vat_code).where(
            category.agreement_id.in_(agreement_ids)
        )
    ):
        cats[aid][category_id] = (account, vat)
    methods: dict[str, dict[str, int]] = {a: {} for a in agreement_ids}
    method = models.PaymentMethodMapping
    for aid, method_id, account in sess.execute(
        select(method.agreement_id, method.method_id, method.account_number).where(
            method.agreement_id.in_(agreement_ids)
        )
    ):
        methods[aid][method_id] = account
    links: dict[str, dict[str, int]] = {a: {} for a in agreement_ids}
    link = models.SupplierLink
    for aid, key, number in sess.execute(
        select(link.agreement_id, link.vendor_key, link.supplier_number).where(
            link.agreement_id.in_(agreement_ids), link.supplier_number.is_not(None)
        )
    ):
        if number is not None:  # always (the query asks for made ones); for the type checker
            links[aid][key] = number
    snaps = masterdata.load(sess, agreement_ids, kinds)
    return {
        aid: AgreementContext(settings[aid], cats[aid], methods[aid], snaps[aid], links[aid])
        for aid in agreement_ids
        if aid in settings
    }
