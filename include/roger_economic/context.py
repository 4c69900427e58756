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
from roger_economic.model import Agreement
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


def load_contexts(
    sess: Session, agreement_ids: list[str], kinds: tuple[str, ...] | None = None
) -> dict[str, AgreementContext]:
    """Contexts for many agreements with a handful of queries (not a few per agreement).

    ``kinds`` restricts the master data read to those kinds: a context that only answers
    :meth:`AgreementContext.stop_reason` needs :data:`setup_rules.STOP_KINDS`, not every snapshot.
    """
    rows = {a.id: a for a in sess.scalars(select(models.Agreement).where(models.Agreement.id.in_(agreement_ids)))}
    cats: dict[str, dict[str, tuple[int, str | None]]] = {a: {} for a in agreement_ids}
    for m in sess.scalars(select(models.CategoryMapping).where(models.CategoryMapping.agreement_id.in_(agreement_ids))):
        cats[m.agreement_id][m.category_id] = (m.account_number, m.vat_code)
    methods: dict[str, dict[str, int]] = {a: {} for a in agreement_ids}
    for p in sess.scalars(
        select(models.PaymentMethodMapping).where(models.PaymentMethodMapping.agreement_id.in_(agreement_ids))
    ):
        methods[p.agreement_id][p.method_id] = p.account_number
    links: dict[str, dict[str, int]] = {a: {} for a in agreement_ids}
    for link in sess.scalars(select(models.SupplierLink).where(models.SupplierLink.agreement_id.in_(agreement_ids))):
        if link.supplier_number is not None:
            links[link.agreement_id][link.vendor_key] = link.supplier_number
    snaps = masterdata.load(sess, agreement_ids, kinds)
    return {
        aid: AgreementContext(Agreement.from_row(rows[aid]), cats[aid], methods[aid], snaps[aid], links[aid])
        for aid in agreement_ids
        if aid in rows
    }
