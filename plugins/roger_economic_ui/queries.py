"""Read models (and the few writes) behind the "Roger → e-conomic" pages.

Everything here takes an open SQLAlchemy session of the project database
(``roger_economic.db.session()``) and returns plain dicts/lists, so the pages
only format. Queries are paged and aggregated in the database, so the overview
stays fast with 500+ agreements.

Re-sync (:func:`resync_bill`, :func:`resync_quarantined`) only sets a staged
bill's state back to ``new``: the next bills run re-judges its stored payload.
The posting ledger is left untouched on purpose: an entry that is already
booked keeps its ledger row, and the same bill version is never booked twice
(the ledger answers "already booked"); a booked entry whose setup was wrong
must be corrected in e-conomic by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, and_, case, cast, func, or_, select, update
from sqlalchemy.orm import Session

from roger_economic import masterdata
from roger_economic.config import check_setup, save_mappings
from roger_economic.db import models

OUTCOMES = ("ok", "failed", "stopped", "never")
BILL_STATES = ("new", "waiting", "waiting_attachment", "quarantined", "planned", "booked", "withdrawn", "review",
               "ignored")
BILLS_PHASES = ("validate", "load")
SETUP_LABELS = {
    "invoice_journal": "Invoice journal", "payment_journal": "Payment journal", "default_account": "Default account",
    "supplier_policy": "Supplier policy", "closed_period_policy": "Closed-period policy",
    "supplier_group": "Supplier group", "payment_terms": "Payment terms", "default_supplier": "Default supplier",
    "book_without_attachment": "Book without attachment",
}


# ------------------------------------------------------------------------------------------------ overview


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def overview(sess: Session, search: str = "", outcome: str = "", page: int = 1,
             per_page: int = 50) -> tuple[list[dict[str, Any]], int]:
    """One row per agreement (filtered, paged) and the number of matching agreements."""
    A, S = models.Agreement, models.AgreementStatus
    query = select(A, S).outerjoin(S, S.agreement_id == A.id)
    if search:
        pattern = _like(search.strip())
        query = query.where(or_(A.name.ilike(pattern, escape="\\"), A.id.ilike(pattern, escape="\\"),
                                cast(A.economic_agreement_number, String).ilike(pattern, escape="\\")))
    if outcome == "never":
        query = query.where(or_(S.agreement_id.is_(None), S.last_outcome.is_(None)))
    elif outcome:
        query = query.where(S.last_outcome == outcome)
    total = sess.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    page = max(1, page)
    rows = sess.execute(query.order_by(A.name, A.id).offset((page - 1) * per_page).limit(per_page)).all()
    ids = [a.id for a, _s in rows]
    booked, failed, quarantined = _posting_counts(sess, ids), _failed_counts(sess, ids), _open_quarantine(sess, ids)
    docs = _data_docs(sess, [(a.id, s.last_run_id) for a, s in rows if s is not None and s.last_run_id])
    out = []
    for agreement, status in rows:
        out.append({
            "id": agreement.id,
            "name": agreement.name,
            "active": agreement.active,
            "last_run_id": status.last_run_id if status else None,
            "last_run_at": status.last_run_at if status else None,
            "last_outcome": (status.last_outcome if status else None) or "never",
            "last_message": status.last_message if status else None,
            "last_counts": (status.last_counts if status else None) or {},
            "booked": booked.get(agreement.id, 0),
            "quarantined": quarantined.get(agreement.id, 0),
            "failed": failed.get(agreement.id, 0),
            "gaps": len((status.mapping_gaps if status else None) or []),
            "scanning_addon": status.scanning_addon if status else None,
            "api_access": status.api_access if status else None,
            "master_data_error": status.master_data_error if status else None,
            "master_data_at": status.master_data_at if status else None,
            "data_docs": docs.get(agreement.id),
        })
    return out, total


def _data_docs(sess: Session, last_runs: list[tuple[str, str]]) -> dict[str, str]:
    """The Great Expectations Data Docs page of each agreement's last validation (relative path)."""
    if not last_runs:
        return {}
    R = models.RunReport
    rows = sess.execute(select(R.agreement_id, R.run_id, R.counts).where(
        R.agreement_id.in_([a for a, _ in last_runs]), R.run_id.in_({r for _, r in last_runs}), R.phase == "validate"))
    wanted = dict(last_runs)
    return {aid: counts["data_docs"] for aid, run_id, counts in rows
            if wanted.get(aid) == run_id and (counts or {}).get("data_docs")}


def _posting_counts(sess: Session, ids: list[str]) -> dict[str, int]:
    if not ids:
        return {}
    P = models.Posting
    return dict(sess.execute(select(P.agreement_id, func.count()).where(
        P.agreement_id.in_(ids), P.status == "posted").group_by(P.agreement_id)).all())


def _failed_counts(sess: Session, ids: list[str]) -> dict[str, int]:
    """Entries e-conomic refused (``rejected``) or that wait for an accountant (``review``)."""
    if not ids:
        return {}
    P = models.Posting
    return dict(sess.execute(select(P.agreement_id, func.count()).where(
        P.agreement_id.in_(ids), P.status.in_(("rejected", "review"))).group_by(P.agreement_id)).all())


def _open_quarantine(sess: Session, ids: list[str]) -> dict[str, int]:
    """Bills with at least one open stop-rule record, per agreement."""
    if not ids:
        return {}
    Q = models.Quarantine
    return dict(sess.execute(select(Q.agreement_id, func.count(func.distinct(Q.bill_id))).where(
        Q.agreement_id.in_(ids), Q.released_at.is_(None), Q.severity == "stop").group_by(Q.agreement_id)).all())


def run_chart(sess: Session, limit: int = 30) -> list[dict[str, Any]]:
    """The last ``limit`` bills runs (oldest first): bills booked and quarantined per run, over all agreements."""
    R = models.RunReport
    finished = func.max(R.finished_at)
    recent = sess.execute(select(R.run_id, finished).where(R.phase.in_(BILLS_PHASES)).group_by(R.run_id)
                          .order_by(finished.desc()).limit(limit)).all()
    if not recent:
        return []
    runs = {run_id: {"run_id": run_id, "finished_at": at, "booked": 0, "quarantined": 0, "failed": 0}
            for run_id, at in recent}
    for run_id, phase, outcome, counts in sess.execute(
            select(R.run_id, R.phase, R.outcome, R.counts).where(R.run_id.in_(list(runs)), R.phase.in_(BILLS_PHASES))):
        counts = counts or {}
        run = runs[run_id]
        if phase == "load":
            run["booked"] += _int(counts.get("invoices_booked")) + _int(counts.get("payments_booked"))
        else:
            run["quarantined"] += _int(counts.get("quarantined"))
        if outcome != "ok":
            run["failed"] += 1
    return sorted(runs.values(), key=lambda r: (r["finished_at"] is None, r["finished_at"]))


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


# ------------------------------------------------------------------------------------------------ setup


@dataclass
class Setup:
    """One agreement's setup as the form shows it, with the master data to choose from."""

    agreement: models.Agreement
    status: models.AgreementStatus | None
    snapshots: dict[str, Any]
    categories: dict[str, tuple[int, str | None]]
    methods: dict[str, int]
    accounts: list[dict[str, Any]] = field(default_factory=list)  # bookable only
    journals: list[dict[str, Any]] = field(default_factory=list)
    vat_codes: list[dict[str, Any]] = field(default_factory=list)
    suppliers: list[dict[str, Any]] = field(default_factory=list)
    roger_categories: list[dict[str, Any]] = field(default_factory=list)
    roger_methods: list[dict[str, Any]] = field(default_factory=list)


def bookable_accounts(snapshots: dict[str, Any]) -> list[dict[str, Any]]:
    """Accounts a direct entry can go to: profitAndLoss/status, not barred, not blocking direct entries."""
    accounts = {a["accountNumber"]: a for a in snapshots.get("accounts") or [] if "accountNumber" in a}
    return [accounts[n] for n in sorted(accounts) if masterdata.account_problem(accounts, n) is None]


def load_setup(sess: Session, agreement_id: str) -> Setup | None:
    agreement = sess.get(models.Agreement, agreement_id)
    if agreement is None:
        return None
    snapshots = masterdata.load(sess, [agreement_id])[agreement_id]
    categories = {m.category_id: (m.account_number, m.vat_code) for m in sess.scalars(
        select(models.CategoryMapping).where(models.CategoryMapping.agreement_id == agreement_id))}
    methods = {m.method_id: m.account_number for m in sess.scalars(
        select(models.PaymentMethodMapping).where(models.PaymentMethodMapping.agreement_id == agreement_id))}
    roger_categories = [c for c in snapshots.get("roger_categories") or [] if not c.get("archived")]
    known = {c["id"] for c in roger_categories}
    missing = "(not in Roger's master data)"
    roger_categories += [{"id": c, "name": missing} for c in sorted(categories) if c not in known]
    roger_methods = [m for m in snapshots.get("roger_payment_methods") or [] if not m.get("archived")]
    known = {m["id"] for m in roger_methods}
    roger_methods += [{"id": m, "name": missing} for m in sorted(methods) if m not in known]
    return Setup(
        agreement=agreement,
        status=sess.get(models.AgreementStatus, agreement_id),
        snapshots=snapshots,
        categories=categories,
        methods=methods,
        accounts=bookable_accounts(snapshots),
        journals=sorted(snapshots.get("journals") or [], key=lambda j: j.get("journalNumber", 0)),
        vat_codes=sorted(snapshots.get("vat_accounts") or [], key=lambda v: str(v.get("vatCode"))),
        suppliers=sorted(snapshots.get("suppliers") or [], key=lambda s: s.get("supplierNumber", 0)),
        roger_categories=roger_categories,
        roger_methods=roger_methods,
    )


@dataclass
class SetupForm:
    """What SAVE submitted, parsed; ``errors`` lists what stops it from being stored."""

    values: dict[str, Any]
    categories: dict[str, tuple[int, str | None]]
    methods: dict[str, int]
    errors: list[str]


def _opt_int(raw: Any, label: str, errors: list[str]) -> int | None:
    text = str(raw or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        errors.append(f"{label}: '{text}' is not a number")
        return None


def parse_setup_form(setup: Setup, form: dict[str, str]) -> SetupForm:
    """Validate a submitted setup against the agreement's master data; nothing is stored here."""
    errors: list[str] = []
    snaps = setup.snapshots
    accounts = {a["accountNumber"]: a for a in snaps.get("accounts") or [] if "accountNumber" in a}
    journals = {j["journalNumber"]: j for j in snaps.get("journals") or [] if "journalNumber" in j}
    vat_codes = {v.get("vatCode") for v in snaps.get("vat_accounts") or []}
    suppliers = {s.get("supplierNumber") for s in snaps.get("suppliers") or []}
    if not snaps:
        errors.append("no master data yet for this agreement: refresh master data first")

    def account(raw: Any, label: str, required: bool = False) -> int | None:
        number = _opt_int(raw, label, errors)
        if number is None:
            if required:
                errors.append(f"{label}: choose an account")
            return None
        problem = masterdata.account_problem(accounts, number)
        if problem:
            errors.append(f"{label}: account {number} is {problem} and cannot be booked to")
        return number

    values: dict[str, Any] = {}
    for key, entry_type, label in (("invoice_journal", "supplierInvoice", "Invoice journal"),
                                   ("payment_journal", "supplierPayment", "Payment journal")):
        number = _opt_int(form.get(key), label, errors)
        if number is not None:
            problem = masterdata.journal_problem(journals, number, entry_type)
            if problem:
                errors.append(f"{label}: {problem}")
        values[key] = number
    values["default_account"] = account(form.get("default_account"), "Default account")
    values["supplier_policy"] = str(form.get("supplier_policy") or "")
    values["closed_period_policy"] = str(form.get("closed_period_policy") or "")
    values["supplier_group"] = _opt_int(form.get("supplier_group"), "Supplier group", errors)
    values["payment_terms"] = _opt_int(form.get("payment_terms"), "Payment terms", errors)
    values["default_supplier"] = _opt_int(form.get("default_supplier"), "Default supplier", errors)
    values["book_without_attachment"] = str(form.get("book_without_attachment") or "") in ("1", "on", "true")
    # the agreements file's rules (one schema, roger_economic.config.SetupFields); master data is checked here
    errors += check_setup({k: v for k, v in values.items() if v is not None}, SETUP_LABELS)
    supplier = values["default_supplier"]
    if values["supplier_policy"] == "default" and supplier is not None and supplier not in suppliers:
        errors.append(f"Default supplier {supplier} does not exist in e-conomic")

    categories: dict[str, tuple[int, str | None]] = {}
    for cat in setup.roger_categories:
        cid = cat["id"]
        label = f"Category {cat.get('name') or cid} ({cid})"
        number = account(form.get(f"cat_account__{cid}"), label)
        vat = str(form.get(f"cat_vat__{cid}") or "").strip() or None
        if vat is not None and vat not in vat_codes:
            errors.append(f"{label}: VAT code {vat} is not known to e-conomic")
        if number is not None:
            categories[cid] = (number, vat)
        elif vat is not None:
            errors.append(f"{label}: a VAT code needs an account")
    methods: dict[str, int] = {}
    for method in setup.roger_methods:
        mid = method["id"]
        number = account(form.get(f"pm_account__{mid}"), f"Payment method {method.get('name') or mid} ({mid})")
        if number is not None:
            methods[mid] = number
    if not categories and values["default_account"] is None:
        errors.append("Map at least one category or choose a default account")
    return SetupForm(values, categories, methods, errors)


def save_setup(sess: Session, setup: Setup, parsed: SetupForm) -> list[dict[str, Any]]:
    """Store a validated setup (agreement columns + mapping tables); returns the mapping gaps left."""
    if parsed.errors:
        raise ValueError("refusing to store a setup with errors")
    agreement = sess.get(models.Agreement, setup.agreement.id)
    assert agreement is not None
    for key, value in parsed.values.items():
        setattr(agreement, key, value)
    agreement.updated_at = datetime.now(UTC)
    sess.flush()
    save_mappings(sess, agreement.id, parsed.categories, parsed.methods)
    gaps = masterdata.mapping_gaps(agreement, parsed.categories, parsed.methods, setup.snapshots)
    status = sess.get(models.AgreementStatus, agreement.id) or models.AgreementStatus(agreement_id=agreement.id)
    status.mapping_gaps = gaps
    sess.add(status)
    return gaps


def current_gaps(setup: Setup) -> list[dict[str, Any]]:
    """Gaps of the stored setup against the stored master data (what the next refresh would report)."""
    if not setup.snapshots:
        return list((setup.status.mapping_gaps if setup.status else None) or [])
    return masterdata.mapping_gaps(setup.agreement, setup.categories, setup.methods, setup.snapshots)


# ------------------------------------------------------------------------------------------------ bill log


def bill_log(sess: Session, agreement_id: str, state: str = "", search: str = "", page: int = 1,
             per_page: int = 50) -> tuple[list[dict[str, Any]], int, dict[str, int]]:
    """Bills of one agreement (newest first, paged) with postings, open quarantine and review items."""
    B = models.StagedBill
    query = select(B).where(B.agreement_id == agreement_id)
    if state:
        query = query.where(B.state == state)
    if search:
        query = query.where(B.bill_id.ilike(_like(search.strip()), escape="\\"))
    total = sess.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    page = max(1, page)
    bills = list(sess.scalars(query.order_by(B.staged_at.desc(), B.bill_id).offset((page - 1) * per_page)
                              .limit(per_page)))
    states = dict(sess.execute(select(B.state, func.count()).where(B.agreement_id == agreement_id)
                               .group_by(B.state)).all())
    ids = [b.bill_id for b in bills]
    postings: dict[str, list[models.Posting]] = {}
    quarantine: dict[str, list[models.Quarantine]] = {}
    reviews: dict[str, list[models.ReviewItem]] = {}
    if ids:
        for p in sess.scalars(select(models.Posting).where(
                models.Posting.agreement_id == agreement_id, models.Posting.bill_id.in_(ids))
                .order_by(models.Posting.id)):
            postings.setdefault(p.bill_id, []).append(p)
        for q in sess.scalars(select(models.Quarantine).where(
                models.Quarantine.agreement_id == agreement_id, models.Quarantine.bill_id.in_(ids),
                models.Quarantine.released_at.is_(None)).order_by(
                    case((models.Quarantine.severity == "stop", 0), else_=1), models.Quarantine.id)):
            quarantine.setdefault(q.bill_id, []).append(q)
        for r in sess.scalars(select(models.ReviewItem).where(
                models.ReviewItem.agreement_id == agreement_id, models.ReviewItem.bill_id.in_(ids),
                models.ReviewItem.resolved_at.is_(None)).order_by(models.ReviewItem.id)):
            reviews.setdefault(r.bill_id, []).append(r)
    rows = []
    for b in bills:
        payload = b.payload or {}
        rows.append({
            "bill_id": b.bill_id, "version": b.version, "state": b.state, "staged_at": b.staged_at,
            "vendor": (payload.get("vendor") or {}).get("name"), "invoice_number": payload.get("invoice_number"),
            "amount": payload.get("amount"), "currency": payload.get("currency"),
            "category": payload.get("category_id"), "status": payload.get("status"),
            "postings": postings.get(b.bill_id, []), "quarantine": quarantine.get(b.bill_id, []),
            "reviews": reviews.get(b.bill_id, []),
        })
    return rows, total, states


def resync_bill(sess: Session, agreement_id: str, bill_id: str) -> bool:
    """Set one staged bill back to ``new`` (re-judged by the next run); the ledger is not touched."""
    result = sess.execute(update(models.StagedBill).where(
        models.StagedBill.agreement_id == agreement_id, models.StagedBill.bill_id == bill_id).values(state="new"))
    return bool(result.rowcount)


def resync_quarantined(sess: Session, agreement_id: str) -> int:
    """Set every quarantined bill of the agreement back to ``new``; returns how many."""
    result = sess.execute(update(models.StagedBill).where(
        and_(models.StagedBill.agreement_id == agreement_id, models.StagedBill.state == "quarantined"))
        .values(state="new"))
    return int(result.rowcount or 0)
