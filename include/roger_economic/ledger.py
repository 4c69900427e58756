"""The posting ledger: planning entries, and what counts as 'already booked'.

A bill version's entry is planned once (its idempotency key is derived from
agreement, bill, entry kind and version). An entry whose content did not
change since it was posted (a bill that went from UPCOMING to PAID keeps its
invoice) is not planned again.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from roger_economic.db import models
from roger_economic.economic.jsonnum import to_plain
from roger_economic.transform import PlannedEntry

LIVE = ("posting", "posted")


def entry_key(agreement_id: str, bill_id: str, kind: str, version: int) -> str:
    raw = f"{agreement_id}|{bill_id}|{kind}|{version}"
    return "re-" + hashlib.sha256(raw.encode()).hexdigest()[:40]


def payload_hash(entry: PlannedEntry) -> str:
    """What the entry says, with the supplier as the vendor (its number may only be known at load)."""
    voucher = to_plain(entry.voucher)
    for items in voucher["entries"].values():
        for item in items:
            item.pop("supplier", None)
    plain = {"voucher": voucher, "vendor": entry.vendor.get("key")}
    return hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()


def current(sess: Session, agreement_ids: list[str]) -> dict[tuple[str, str, str], models.Posting]:
    """The newest live (posting/posted) row per (agreement, bill, kind)."""
    rows = sess.scalars(
        select(models.Posting)
        .where(models.Posting.agreement_id.in_(agreement_ids), models.Posting.status.in_(LIVE))
        .order_by(models.Posting.id)
    )
    return {(r.agreement_id, r.bill_id, r.entry_kind): r for r in rows}


def plan(sess: Session, entries: list[PlannedEntry], run_id: str) -> dict[str, Counter]:
    """Write planned rows for entries not already booked as they are; returns counts per agreement."""
    counts: dict[str, Counter] = defaultdict(Counter)
    if not entries:
        return counts
    agreement_ids = sorted({e.agreement_id for e in entries})
    live = current(sess, agreement_ids)
    existing = {
        r.idempotency_key: r
        for r in sess.scalars(
            select(models.Posting).where(
                models.Posting.agreement_id.in_(agreement_ids), models.Posting.status.in_(("planned", "rejected"))
            )
        )
    }
    now = datetime.now(UTC)
    for entry in entries:
        digest = payload_hash(entry)
        booked = live.get((entry.agreement_id, entry.bill_id, entry.kind))
        if booked is not None and booked.payload_hash == digest:
            counts[entry.agreement_id]["already_booked"] += 1
            continue
        key = entry_key(entry.agreement_id, entry.bill_id, entry.kind, entry.version)
        if booked is not None and booked.idempotency_key == key:
            counts[entry.agreement_id]["already_booked"] += 1  # same version in flight: the loader finishes it
            continue
        row = existing.get(key) or models.Posting(
            agreement_id=entry.agreement_id, bill_id=entry.bill_id, bill_version=entry.version,
            entry_kind=entry.kind, idempotency_key=key, created_at=now,
        )
        row.status = "planned"
        row.journal_number = entry.journal
        row.accounting_year = entry.year
        row.payload = {"voucher": to_plain(entry.voucher), "vendor": entry.vendor, "has_document": entry.has_document}
        row.payload_hash = digest
        row.error = None
        row.run_id = run_id
        row.attachment = "none"
        sess.add(row)
        counts[entry.agreement_id]["replacing" if booked is not None else "planned"] += 1
    return counts
