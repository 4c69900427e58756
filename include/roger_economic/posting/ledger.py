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

from sqlalchemy import Table, insert, select, text, update
from sqlalchemy.orm import Session

from roger_economic.db import in_chunks, models
from roger_economic.economic.jsonnum import to_plain
from roger_economic.model import PlannedEntry
from roger_economic.states import Attachment, PostingStatus

LIVE = (PostingStatus.POSTING, PostingStatus.POSTED)


def entry_key(agreement_id: str, bill_id: str, kind: str, version: int) -> str:
    raw = f"{agreement_id}|{bill_id}|{kind}|{version}"
    return "re-" + hashlib.sha256(raw.encode()).hexdigest()[:40]


def payload_hash(entry: PlannedEntry, voucher: dict[str, Any] | None = None) -> str:
    """What the entry says, with the supplier as the vendor (its number may only be known at load).

    ``voucher`` is the entry's voucher already made plain (``to_plain``), when the caller has it.
    """
    plain_voucher = voucher if voucher is not None else to_plain(entry.voucher)
    without_supplier = {
        **plain_voucher,
        "entries": {
            kind: [{k: v for k, v in item.items() if k != "supplier"} for item in items]
            for kind, items in plain_voucher["entries"].items()
        },
    }
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
            select(
                posting.agreement_id, posting.bill_id, posting.entry_kind, posting.idempotency_key, posting.payload_hash
            )
            .where(posting.agreement_id.in_(agreement_ids), posting.bill_id.in_(bills), posting.status.in_(LIVE))
            .order_by(posting.id)
        )
        for aid, bill, kind, key, digest in rows:
            if (aid, bill) in wanted:
                out[(aid, bill, kind)] = (key, digest)
    return out


REPLANNABLE = (
    PostingStatus.PLANNED,
    PostingStatus.REJECTED,
    PostingStatus.HELD,
)  # not in e-conomic: planned again (or superseded) when judged again


def _rows_of_bills(sess: Session, bills: set[tuple[str, str]]) -> list[Any]:
    """Every ledger row of the bills at hand (the columns planning needs: no payload)."""
    agreement_ids = sorted({aid for aid, _bill in bills})
    posting = models.Posting
    out = []
    for chunk in in_chunks(sorted({bill for _aid, bill in bills})):
        for row in sess.execute(
            select(
                posting.id,
                posting.agreement_id,
                posting.bill_id,
                posting.entry_kind,
                posting.bill_version,
                posting.status,
                posting.idempotency_key,
                posting.payload_hash,
            )
            .where(posting.agreement_id.in_(agreement_ids), posting.bill_id.in_(chunk))
            .order_by(posting.id)
        ):
            if (row.agreement_id, row.bill_id) in bills:
                out.append(row)
    return out


def _take_turns(sess: Session, agreement_ids: list[str]) -> None:
    """Plans of the same agreements (overlapping runs) take turns: each reads what the one before wrote.

    Taken as the transaction's first statement, held until it commits. On PostgreSQL a transaction-level
    advisory lock per agreement, in a fixed order (not the agreements' rows: a load settling its bills and
    giving its leases back writes staged bills, then agreements, and planning writes the other way round).
    On SQLite a write to the agreements' rows, which takes the database's write lock: its reads otherwise
    run before any lock, so two plans could both read the ledger, then both plan.
    """
    if sess.get_bind().dialect.name == "postgresql":
        keys = sorted(
            int.from_bytes(hashlib.sha256(f"plan|{aid}".encode()).digest()[:8], "big", signed=True)
            for aid in agreement_ids
        )
        sess.execute(
            text(
                "SELECT pg_advisory_xact_lock(k) FROM (SELECT unnest(CAST(:keys AS bigint[])) AS k "
                "ORDER BY 1) AS ordered"
            ),
            {"keys": keys},
        )
        return
    agreement = models.Agreement
    for chunk in in_chunks(agreement_ids):
        sess.execute(
            update(agreement)
            .where(agreement.id.in_(chunk))
            .values(updated_at=agreement.updated_at)
            .execution_options(synchronize_session=False)
        )


def plan(
    sess: Session, entries: list[PlannedEntry], run_id: str, judged: dict[tuple[str, str], int] | None = None
) -> dict[str, Counter]:
    """Write planned rows for entries not already booked as they are; returns counts per agreement.

    Versions only move forward, and at most one version of each entry is live:
    - an entry of a version older than one the ledger already has for it is not planned (an
      overlapping run judged an older copy of the bill);
    - a newer version supersedes every older row not yet in e-conomic (``planned``, ``rejected``,
      ``held``); an older row still ``posting`` (its answer lost) is left to the loader, which finds it
      in e-conomic or rules it out before anything of the bill is posted again;
    - ``judged`` ((agreement, bill) → the version judged this run) supersedes older rows of a bill even
      when the new version plans no entry of that kind (its payment now quarantined, say).
    """
    counts: dict[str, Counter] = defaultdict(Counter)
    bills = {(e.agreement_id, e.bill_id) for e in entries} | set(judged or {})
    if not bills:
        return counts
    _take_turns(sess, sorted({aid for aid, _bill in bills}))
    rows = _rows_of_bills(sess, bills)
    newest: dict[tuple[str, str, str], int] = {}  # the highest version the ledger has per entry
    live: dict[tuple[str, str, str], tuple[str, str]] = {}  # newest posting/posted row: (key, payload hash)
    by_key = {}
    for row in rows:
        entry_id = (row.agreement_id, row.bill_id, row.entry_kind)
        newest[entry_id] = max(newest.get(entry_id, row.bill_version), row.bill_version)
        if row.status in LIVE:
            live[entry_id] = (row.idempotency_key, row.payload_hash)
        by_key[row.idempotency_key] = row
    supersede_below: dict[tuple[str, str, str], int] = {}
    for (aid, bill), version in (judged or {}).items():
        for kind in ("invoice", "payment"):
            supersede_below[(aid, bill, kind)] = version
    now = datetime.now(UTC)
    new_rows: list[dict] = []
    updates: list[tuple[int, dict[str, Any]]] = []
    for entry in entries:
        entry_id = (entry.agreement_id, entry.bill_id, entry.kind)
        if entry.version < newest.get(entry_id, entry.version):
            counts[entry.agreement_id]["older_version"] += 1  # a newer version is known: never go back
            continue
        supersede_below[entry_id] = max(supersede_below.get(entry_id, entry.version), entry.version)
        voucher = to_plain(entry.voucher)
        digest = payload_hash(entry, voucher)
        booked = live.get(entry_id)
        if booked is not None and booked[1] == digest:
            counts[entry.agreement_id]["already_booked"] += 1
            continue
        key = entry_key(entry.agreement_id, entry.bill_id, entry.kind, entry.version)
        if booked is not None and booked[0] == key:
            counts[entry.agreement_id]["already_booked"] += 1  # same version in flight: the loader finishes it
            continue
        row = by_key.get(key)
        if row is not None and row.status not in REPLANNABLE:
            counts[entry.agreement_id]["already_booked"] += 1  # this version is retired or waits for review
            continue
        values = {
            "status": PostingStatus.PLANNED,
            "journal_number": entry.journal,
            "accounting_year": entry.year,
            "payload": {"voucher": voucher, "vendor": entry.vendor, "has_document": entry.has_document},
            "payload_hash": digest,
            "error": None,
            "run_id": run_id,
            "attachment": Attachment.NONE,
        }
        if row is None:
            new_rows.append(
                {
                    "agreement_id": entry.agreement_id,
                    "bill_id": entry.bill_id,
                    "bill_version": entry.version,
                    "entry_kind": entry.kind,
                    "idempotency_key": key,
                    "created_at": now,
                    **values,
                }
            )
        else:
            updates.append((row.id, values))
        counts[entry.agreement_id]["replacing" if booked is not None else "planned"] += 1
    stale = [
        row
        for row in rows
        if row.status in REPLANNABLE
        and row.bill_version < supersede_below.get((row.agreement_id, row.bill_id, row.entry_kind), -1)
    ]
    posting = models.Posting
    for chunk in in_chunks([row.id for row in stale]):
        sess.execute(
            update(posting)
            .where(posting.id.in_(chunk), posting.status.in_(REPLANNABLE))
            .values(status=PostingStatus.SUPERSEDED, error=None)
            .execution_options(synchronize_session=False)
        )
    for row in stale:
        counts[row.agreement_id]["superseded"] += 1
    for row_id, values in updates:
        sess.execute(
            update(posting).where(posting.id == row_id).values(**values).execution_options(synchronize_session=False)
        )
    if new_rows:  # one multi-row INSERT into the table: the ORM's bulk path costs more than the database
        sess.execute(insert(cast(Table, models.Posting.__table__)), new_rows)
    return counts
