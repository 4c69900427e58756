"""Step 3 of a load: the e-conomic suppliers a ``create`` policy asks for, each created once.

A supplier is marked ``creating`` before its call: a crash after the creation leaves a link that says to
look the supplier up first, so it is never created twice.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select

from roger_economic.context import AgreementContext, normalise_cvr
from roger_economic.db import in_chunks, models
from roger_economic.economic.client import EconomicClient
from roger_economic.economic.conventions import filter_eq, vat_zone_for

if TYPE_CHECKING:
    from roger_economic.posting.work import Planned

SessionFactory = Callable[[], Any]


def create_missing(
    session: SessionFactory,
    ctx: AgreementContext,
    economic: EconomicClient,
    planned: list[Planned],
    counts: Counter,
    created: dict[str, int],
) -> None:
    """Create the suppliers of the vendors ``planned`` needs that ``ctx`` has none for (noted in
    ``ctx.supplier_links``; ``counts["suppliers_created"]`` counts them).

    Each one made is put in ``created`` (vendor key → supplier number) as soon as e-conomic answers, also
    when a later creation fails: the caller records them
    (:func:`~roger_economic.posting.records.save_suppliers`) in its next transaction, the one that marks
    the vouchers that need them. Until then their links say
    ``creating``, so a crash in between makes the next load look them up, never create them again.
    """
    aid = ctx.settings.id
    unknown: dict[str, dict[str, Any]] = {}  # vendors to create that the context has no supplier for
    for row in planned:
        vendor = row.payload.get("vendor") or {}
        if vendor.get("how") == "create" and vendor["key"] not in ctx.supplier_links:
            unknown.setdefault(vendor["key"], vendor)
    if not unknown:
        return
    link = models.SupplierLink
    with session() as sess:
        links: dict[str, int | None] = {  # vendor key → its supplier (None: ``creating``), as plain rows
            key: number
            for chunk in in_chunks(sorted(unknown))
            for key, number in sess.execute(
                select(link.vendor_key, link.supplier_number).where(
                    link.agreement_id == aid, link.vendor_key.in_(chunk)
                )
            )
        }
        vendors = {key: vendor for key, vendor in unknown.items() if links.get(key) is None}
        # Marked ``creating`` before any call, in the same transaction: a crash after a creation leaves
        # a link that says to look the supplier up first, so it is never created twice.
        marks = [
            {
                "agreement_id": aid,
                "vendor_key": key,
                "supplier_number": None,
                "how": "creating",
                "created_at": datetime.now(UTC),
            }
            for key in vendors
            if key not in links
        ]
        if marks:
            sess.execute(insert(models.SupplierLink), marks)
    for key, number in links.items():  # made by another run since this one read its context
        if number is not None:
            ctx.supplier_links[key] = number
    for key, vendor in vendors.items():
        # looked up first only when an earlier attempt was interrupted: a first creation is one call
        number = find(economic, vendor) if key in links else None
        if number is None:
            answer = economic.create_supplier(supplier_body(ctx, vendor), _supplier_key(aid, key))
            number = answer["supplierNumber"]
            counts["suppliers_created"] += 1
        created[key] = number
        ctx.supplier_links[key] = number


def _supplier_key(agreement_id: str, vendor_key: str) -> str:
    return "rs-" + hashlib.sha256(f"{agreement_id}|{vendor_key}".encode()).hexdigest()[:40]


def find(economic: EconomicClient, vendor: dict[str, Any]) -> int | None:
    """A supplier made by an earlier, interrupted attempt (looked up before creating again)."""
    cvr = normalise_cvr(vendor.get("cvr"))
    filter_ = filter_eq("corporateIdentificationNumber", cvr) if cvr else filter_eq("name", vendor.get("name"))
    found = economic.collection("/suppliers", filter_)
    return found[0]["supplierNumber"] if found else None


def supplier_body(ctx: AgreementContext, vendor: dict[str, Any]) -> dict[str, Any]:
    settings = ctx.settings
    body: dict[str, Any] = {
        "name": str(vendor.get("name"))[:255],
        "currency": vendor.get("currency") or ctx.base_currency,
        "supplierGroup": {"supplierGroupNumber": settings.supplier_group},
        "paymentTerms": {"paymentTermsNumber": settings.payment_terms},
        "vatZone": {"vatZoneNumber": vat_zone_for(vendor.get("country"))},
    }
    cvr = normalise_cvr(vendor.get("cvr"))
    if cvr:
        body["corporateIdentificationNumber"] = cvr
    if vendor.get("country"):
        body["country"] = vendor["country"]
    return body
