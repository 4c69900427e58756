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
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from roger_economic.db import in_chunks, models
from roger_economic.economic.jsonnum import to_plain
from roger_economic.transform import PlannedEntry

LIVE = ("posting", "posted")


def entry_key(agreement_id: str, bill_id: str, kind: str, version: int) -> str:
    raw = f"{agreement_id}|{bill_id}|{kind}|{version}"
    return "re-" + hashlib.sha256(raw.encode()).hexdigest()[:40]


def payload_hash(entry: PlannedEntry, voucher: dict[str, Any] | None = None) -> str:
    """What the entry says, with the supplier as the vendor (its number may only be known at load).

    ``voucher`` is the entry's voucher already made plain (``to_plain``), when the caller has it.
    """
    plain_voucher = voucher if voucher is not None else to_plain(entry.voucher)
    without_supplier = {**plain_voucher, "entries": {
        kind: [{k: v for k, v in item.items() if k != "supplier"} for item in items]
        for kind, items in plain_voucher["entries"].items()}}
    plain = {"voucher": without_supplier, "vendor": entry.vendor.get("key")}
    return hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()


def current(sess: Session, entries: list[PlannedEntry]) -> dict[tuple[str, str, str], tuple[str, str]]:
    """(agreement, bill, kind) → (idempotency key, payload hash) of the newest live (posting/posted) row.

    Only for the bills at hand, and only the two columns: an agreement's booked history grows every
    night, and a night must not read (and decode) all of it.
    """
    wanted = {(e.agreement_id, e.bill_id) for e in entries}
    agreement_ids = sorted({aid for aid, _bill in wanted})
    posting = models.Posting
    out: dict[tuple[str, str, str], tuple[str, str]] = {}
    for bills in in_chunks(sorted({bill for _aid, bill in wanted})):
        rows = sess.execute(
            select(posting.agreement_id, posting.bill_id, posting.entry_kind, posting.idempotency_key,
                   posting.payload_hash)
            .where(posting.agreement_id.in_(agreement_ids), posting.bill_id.in_(bills), posting.status.in_(LIVE))
            .order_by(posting.id))
        for aid, bill, kind, key, digest in rows:
            if (aid, bill) in wanted:
                out[(aid, bill, kind)] = (key, digest)
    return out


def plan(sess: Session, entries: list[PlannedEntry], run_id: str) -> dict[str, Counter]:
    """Write planned rows for entries not already booked as they are; returns counts per agreement."""
    counts: dict[str, Counter] = defaultdict(Counter)
    if not entries:
        return counts
    agreement_ids = sorted({e.agreement_id for e in entries})
    live = current(sess, entries)
    existing = {
        r.idempotency_key: r
        for r in sess.scalars(
            select(models.Posting).where(
                models.Posting.agreement_id.in_(agreement_ids), models.Posting.status.in_(("planned", "rejected"))
            )
        )
    }
    now = datetime.now(UTC)
    new_rows: list[dict] = []
    for entry in entries:
        voucher = to_plain(entry.voucher)
        digest = payload_hash(entry, voucher)
        booked = live.get((entry.agreement_id, entry.bill_id, entry.kind))
        if booked is not None and booked[1] == digest:
            counts[entry.agreement_id]["already_booked"] += 1
            continue
        key = entry_key(entry.agreement_id, entry.bill_id, entry.kind, entry.version)
        if booked is not None and booked[0] == key:
            counts[entry.agreement_id]["already_booked"] += 1  # same version in flight: the loader finishes it
            continue
        values = {
            "status": "planned", "journal_number": entry.journal, "accounting_year": entry.year,
            "payload": {"voucher": voucher, "vendor": entry.vendor, "has_document": entry.has_document},
            "payload_hash": digest, "error": None, "run_id": run_id, "attachment": "none",
        }
        row = existing.get(key)
        if row is None:
            new_rows.append({"agreement_id": entry.agreement_id, "bill_id": entry.bill_id,
                             "bill_version": entry.version, "entry_kind": entry.kind, "idempotency_key": key,
                             "created_at": now, **values})
        else:
            for name, value in values.items():
                setattr(row, name, value)
        counts[entry.agreement_id]["replacing" if booked is not None else "planned"] += 1
    if new_rows:  # one multi-row INSERT into the table: the ORM's bulk path costs more than the database
        sess.execute(insert(cast(Table, models.Posting.__table__)), new_rows)
    return counts
