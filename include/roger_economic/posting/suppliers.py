"""Step 3 of a load: the e-conomic suppliers a ``create`` policy asks for, each created once.

A supplier is marked ``creating`` before its call: a crash after the creation leaves a link that says to
look the supplier up first, so it is never created twice.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, tuple_
from sqlalchemy.orm import Session

from roger_economic.context import AgreementContext, normalise_cvr
from roger_economic.db import in_chunks, models
from roger_economic.economic.client import EconomicClient
from roger_economic.economic.conventions import filter_eq, vat_zone_for

if TYPE_CHECKING:
    from roger_economic.posting.work import Planned

SessionFactory = Callable[[], Any]
Vendors = dict[str, dict[str, Any]]  # vendor key → the vendor, as a planned row's payload names it
LookUp = dict[str, bool]  # vendor key → True: an earlier, interrupted attempt marked it, look it up first


@dataclass
class Marks:
    """The vendors an agreement's group marked ``creating`` for it at its start (:func:`mark_creating`),
    trusted only while ``lease_kept()`` says the group's lease on the agreement has not lapsed since: another
    run that took the agreement over meanwhile may have made and linked those suppliers."""

    look_up: LookUp
    lease_kept: Callable[[], bool]


def create_missing(
    session: SessionFactory,
    ctx: AgreementContext,
    economic: EconomicClient,
    planned: list[Planned],
    counts: Counter,
    created: dict[str, int],
    *,
    marks: Marks | None = None,
) -> None:
    """Create the suppliers of the vendors ``planned`` needs that ``ctx`` has none for (noted in
    ``ctx.supplier_links``; ``counts["suppliers_created"]`` counts them).

    Each one made is put in ``created`` (vendor key → supplier number) as soon as e-conomic answers, also
    when a later creation fails: the caller records them
    (:func:`~roger_economic.posting.records.save_suppliers`) in its next transaction, the one that marks
    the vouchers that need them. Until then their links say
    ``creating``, so a crash in between makes the next load look them up, never create them again.
    ``marks``: what the group marked for this agreement at its start; a vendor they do not name (or all, once
    the lease has lapsed) is marked here, in a transaction of its own.
    """
    unknown = unknown_vendors(ctx, planned)
    if not unknown:
        return
    look_up: LookUp = {}
    if marks is not None and marks.lease_kept():
        look_up = {key: first for key, first in marks.look_up.items() if key in unknown}
    rest = {key: vendor for key, vendor in unknown.items() if key not in look_up}
    if rest:
        with session() as sess:
            look_up |= mark_creating(sess, {ctx.settings.id: (ctx, rest)})[ctx.settings.id]
    for key, vendor in unknown.items():  # in the order the bills name them
        if key not in look_up:  # another run made it since this one read its context (now in ``ctx``)
            continue
        # looked up first only when an earlier attempt was interrupted: a first creation is one call
        number = find(economic, vendor) if look_up[key] else None
        if number is None:
            answer = economic.create_supplier(supplier_body(ctx, vendor), _supplier_key(ctx.settings.id, key))
            number = answer["supplierNumber"]
            counts["suppliers_created"] += 1
        created[key] = number
        ctx.supplier_links[key] = number


def unknown_vendors(ctx: AgreementContext, planned: list[Planned]) -> Vendors:
    """The vendors to create that ``ctx`` has no supplier for."""
    unknown: Vendors = {}
    for row in planned:
        vendor = row.payload.get("vendor") or {}
        if vendor.get("how") == "create" and vendor["key"] not in ctx.supplier_links:
            unknown.setdefault(vendor["key"], vendor)
    return unknown


def mark_creating(sess: Session, vendors: dict[str, tuple[AgreementContext, Vendors]]) -> dict[str, LookUp]:
    """Mark the vendors to create (agreement → its context and vendors) ``creating`` before any of them is
    created, for many agreements in a few statements (a read and an INSERT per 500; the caller commits); a link
    another run completed since a context was read goes into that context's ``supplier_links`` instead.

    One left ``creating`` by an interrupted attempt is marked already and says to look its supplier up first.
    A crash after a creation leaves a link that says to look the supplier up, so it is never created twice; a
    mark whose supplier is never created costs a later load that look-up.
    """
    link = models.SupplierLink
    pairs = sorted((aid, key) for aid, (_ctx, wanted) in vendors.items() for key in wanted)
    links: dict[tuple[str, str], int | None] = {  # (agreement, vendor key) → its supplier (None: ``creating``)
        (aid, key): number
        for chunk in in_chunks(pairs)
        for aid, key, number in sess.execute(
            select(link.agreement_id, link.vendor_key, link.supplier_number).where(
                tuple_(link.agreement_id, link.vendor_key).in_(chunk)
            )
        )
    }
    out: dict[str, LookUp] = {aid: {} for aid in vendors}
    now = datetime.now(UTC)
    new_links = []
    for aid, key in pairs:
        ctx = vendors[aid][0]
        if (aid, key) not in links:
            new_links.append({"agreement_id": aid, "vendor_key": key, "supplier_number": None, "how": "creating"})
            out[aid][key] = False
        elif (number := links[(aid, key)]) is not None:
            ctx.supplier_links[key] = number
        else:
            out[aid][key] = True
    for chunk in in_chunks(new_links):
        sess.execute(insert(models.SupplierLink), [{**new, "created_at": now} for new in chunk])
    return out


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
