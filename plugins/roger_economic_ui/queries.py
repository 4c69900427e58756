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

SAVE never loses a stored value: what the form cannot offer (an account barred
since, a journal gone from the master data) is kept (:func:`parse_with_kept`)
and named on the page; a form opened before someone else's save is refused
(:func:`save_setup` compares the agreement's ``updated_at``). Every save,
re-sync and refresh is written to ``setup_audit`` (:func:`record`) in the same
unit of work as the change itself.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, case, exists, func, or_, select, update
from sqlalchemy.orm import Session

from roger_economic import masterdata, suggest
from roger_economic.config import SETUP_CHANGES, changed, check_setup, mapping_pairs, record, save_mappings
from roger_economic.db import models
from roger_economic.economic.conventions import BOOKABLE_ACCOUNT_TYPES

OUTCOMES = ("ok", "incomplete", "failed", "stopped", "never")
BILL_STATES = (
    "new",
    "waiting",
    "waiting_attachment",
    "quarantined",
    "planned",
    "booked",
    "withdrawn",
    "review",
    "ignored",
)
BILLS_PHASES = ("validate", "load")
SETUP_LABELS = {
    "invoice_journal": "Invoice journal",
    "payment_journal": "Payment journal",
    "default_account": "Default account",
    "supplier_policy": "Supplier policy",
    "closed_period_policy": "Closed-period policy",
    "supplier_group": "Supplier group",
    "payment_terms": "Payment terms",
    "default_supplier": "Default supplier",
    "book_without_attachment": "Book without attachment",
}
# the states in which "re-sync" changes something: the next run would not judge the bill again on its own
# (a waiting, planned, booked or withdrawn bill is re-judged, posted or left alone whatever its state says)
RESYNC_STATES = ("quarantined",)
STATE_EXPLAINED = {
    "new": "staged from Roger, not judged yet: the next bills run judges it",
    "waiting": "not ready to book in Roger yet (being analysed, awaiting approval or pending)",
    "waiting_attachment": "waits for its document before it is booked",
    "quarantined": "held back by the rule shown: fix the cause, then re-sync it",
    "planned": "its entries are planned: the next bills run posts them to e-conomic",
    "booked": "posted to e-conomic: the vouchers are listed",
    "withdrawn": "deleted or a duplicate in Roger: nothing of it is booked (any earlier entry was withdrawn)",
    "review": "a booked entry changed in Roger: correct it in e-conomic by hand",
    "ignored": "not something to book",
}


# ------------------------------------------------------------------------------------------------ overview


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# posting statuses that need an accountant: refused by e-conomic, held back with a refused invoice, to review
FAILED_STATUSES = ("rejected", "held", "review")
FAILED_TEXT = {
    "rejected": "rejected by e-conomic",
    "held": "held back (not posted)",
    "review": "waiting for review",
}
REASON_CHARS = 200  # of an entry's error, inline in the overview (the bill log shows it whole)


def _attention_rank() -> Any:
    """0 = broken (last run failed or stopped, no API access), 1 = held back (quarantine, rejected, held or
    review entries, mapping gaps), 2 = not started (never run), 3 = fine: the overview lists the lowest first."""
    A, S, Q, P = models.Agreement, models.AgreementStatus, models.Quarantine, models.Posting
    quarantined = exists().where(Q.agreement_id == A.id, Q.released_at.is_(None), Q.severity == "stop")
    failed = exists().where(P.agreement_id == A.id, P.status.in_(FAILED_STATUSES))
    gaps = func.coalesce(func.json_array_length(S.mapping_gaps), 0) > 0
    return case(
        (or_(S.last_outcome.in_(("failed", "stopped")), S.api_access.is_(False), S.master_data_error.is_not(None)), 0),
        (or_(quarantined, failed, gaps), 1),
        (or_(S.agreement_id.is_(None), S.last_outcome.is_(None)), 2),
        else_=3,
    )


def attention(row: dict[str, Any]) -> list[str]:
    """Why an agreement needs attention, in the words the overview shows next to it (empty: it does not)."""
    reasons = []
    if row["last_outcome"] in ("failed", "stopped"):
        reasons.append(f"last run {row['last_outcome']}" + (f": {row['last_message']}" if row["last_message"] else ""))
    if row["api_access"] is False or row["master_data_error"]:
        reasons.append("no access to e-conomic" + (f": {row['master_data_error']}" if row["master_data_error"] else ""))
    if row["quarantined"]:
        reasons.append(f"{row['quarantined']} bill(s) quarantined")
    for status, (count, error) in row["failed_by"].items():
        text = f"{count} entr(y/ies) {FAILED_TEXT[status]}"
        reasons.append(text + (f": {_clip(error)}" if error else ""))
    if not row["has_master_data"]:
        reasons.append("no master data yet: refresh it")
    elif row["gaps"]:
        reasons.append(f"{row['gaps']} mapping gap(s)")
    if row["last_outcome"] == "never":
        reasons.append("never run")
    return reasons


def overview(
    sess: Session, search: str = "", outcome: str = "", page: int = 1, per_page: int = 50
) -> tuple[list[dict[str, Any]], int]:
    """One row per agreement (filtered, paged; needing attention first) and the number of matching agreements."""
    A, S = models.Agreement, models.AgreementStatus
    query = select(A, S).outerjoin(S, S.agreement_id == A.id)
    if search.strip():
        query = query.where(A.id.in_(_agreements_matching(sess, search)))
    if outcome == "never":
        query = query.where(or_(S.agreement_id.is_(None), S.last_outcome.is_(None)))
    elif outcome:
        query = query.where(S.last_outcome == outcome)
    total = sess.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    page = max(1, page)
    rows = sess.execute(
        query.order_by(_attention_rank(), A.name, A.id).offset((page - 1) * per_page).limit(per_page)
    ).all()
    ids = [a.id for a, _s in rows]
    booked, failed, quarantined = _posting_counts(sess, ids), _failed_entries(sess, ids), _open_quarantine(sess, ids)
    docs = _data_docs(sess, ids)
    with_master_data = (
        set(
            sess.scalars(
                select(models.MasterData.agreement_id).where(models.MasterData.agreement_id.in_(ids)).distinct()
            )
        )
        if ids
        else set()
    )
    out = []
    for agreement, status in rows:
        row = {
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
            "failed": sum(count for count, _ in failed.get(agreement.id, {}).values()),
            "failed_by": failed.get(agreement.id, {}),
            "gaps": len((status.mapping_gaps if status else None) or []),
            "has_master_data": agreement.id in with_master_data,
            "scanning_addon": status.scanning_addon if status else None,
            "api_access": status.api_access if status else None,
            "master_data_error": status.master_data_error if status else None,
            "master_data_at": status.master_data_at if status else None,
            "data_docs": docs.get(agreement.id, (None, None))[0],
            "data_docs_at": docs.get(agreement.id, (None, None))[1],
        }
        row["attention"] = attention(row)
        out.append(row)
    return out, total


def _data_docs(sess: Session, ids: list[str]) -> dict[str, tuple[str, datetime]]:
    """The Data Docs page of each agreement's last validation that actually ran, and when it finished.

    Not the last run's: a quiet night (nothing new, the validation skipped) writes a report without a
    page, and the link must still lead to the last real validation.
    """
    if not ids:
        return {}
    R = models.RunReport
    page = R.counts["data_docs"].as_string()
    latest = (
        select(R.agreement_id, func.max(R.finished_at).label("at"))
        .where(R.agreement_id.in_(ids), R.phase == "validate", page.is_not(None), page != "")
        .group_by(R.agreement_id)
        .subquery()
    )
    rows = sess.execute(
        select(R.agreement_id, R.counts, R.finished_at)
        .join(latest, and_(R.agreement_id == latest.c.agreement_id, R.finished_at == latest.c.at))
        .where(R.phase == "validate", page.is_not(None))
    )
    return {aid: ((counts or {})["data_docs"], at) for aid, counts, at in rows if (counts or {}).get("data_docs")}


def _posting_counts(sess: Session, ids: list[str]) -> dict[str, int]:
    if not ids:
        return {}
    P = models.Posting
    return dict(
        sess.execute(
            select(P.agreement_id, func.count())
            .where(P.agreement_id.in_(ids), P.status == "posted")
            .group_by(P.agreement_id)
        ).all()
    )


def _failed_entries(sess: Session, ids: list[str]) -> dict[str, dict[str, tuple[int, str | None]]]:
    """Per agreement and :data:`FAILED_STATUSES` status (in that order): how many entries, and one of their
    reasons (the entries' ``error``)."""
    if not ids:
        return {}
    P = models.Posting
    found: dict[str, dict[str, tuple[int, str | None]]] = {}
    rows = sess.execute(
        select(P.agreement_id, P.status, func.count(), func.max(P.error))
        .where(P.agreement_id.in_(ids), P.status.in_(FAILED_STATUSES))
        .group_by(P.agreement_id, P.status)
    ).all()
    for aid, status, count, error in sorted(rows, key=lambda r: FAILED_STATUSES.index(r[1])):
        found.setdefault(aid, {})[status] = (count, error)
    return found


def _clip(text: str) -> str:
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"


def _agreements_matching(sess: Session, search: str) -> list[str]:
    """Agreements whose name, id or e-conomic agreement number contains ``search``, compared folded
    (:func:`models.fold`: case, Æ/Ø/Å) in Python, as the bill log's search, so both databases agree.

    Reads every agreement's three fields: a firm has hundreds of clients, not millions."""
    A = models.Agreement
    needle = models.fold(search.strip())
    return [
        aid
        for aid, name, number in sess.execute(select(A.id, A.name, A.economic_agreement_number))
        if any(needle in models.fold(str(v)) for v in (name, aid, number) if v is not None)
    ]


def _open_quarantine(sess: Session, ids: list[str]) -> dict[str, int]:
    """Bills with at least one open stop-rule record, per agreement."""
    if not ids:
        return {}
    Q = models.Quarantine
    return dict(
        sess.execute(
            select(Q.agreement_id, func.count(func.distinct(Q.bill_id)))
            .where(Q.agreement_id.in_(ids), Q.released_at.is_(None), Q.severity == "stop")
            .group_by(Q.agreement_id)
        ).all()
    )


def run_chart(sess: Session, limit: int = 30) -> list[dict[str, Any]]:
    """The last ``limit`` bills runs (oldest first): bills booked and quarantined per run, over all agreements."""
    R = models.RunReport
    finished = func.max(R.finished_at)
    recent = sess.execute(
        select(R.run_id, finished)
        .where(R.phase.in_(BILLS_PHASES))
        .group_by(R.run_id)
        .order_by(finished.desc())
        .limit(limit)
    ).all()
    if not recent:
        return []
    runs: dict[str, dict[str, Any]] = {
        run_id: {"run_id": run_id, "finished_at": at, "booked": 0, "quarantined": 0, "failed": 0}
        for run_id, at in recent
    }
    for run_id, phase, outcome, counts in sess.execute(
        select(R.run_id, R.phase, R.outcome, R.counts).where(R.run_id.in_(list(runs)), R.phase.in_(BILLS_PHASES))
    ):
        counts = counts or {}
        run = runs[run_id]
        if phase == "load":
            run["booked"] += _int(counts.get("invoices_booked")) + _int(counts.get("payments_booked"))
        else:
            run["quarantined"] += _int(counts.get("quarantined"))
        if outcome != "ok":
            run["failed"] += 1
    return sorted(runs.values(), key=lambda r: (r["finished_at"] is None, r["finished_at"]))


def _rowcount(result: Any) -> int:
    """The rows an UPDATE changed (SQLAlchemy types ``execute``'s answer as a plain ``Result``)."""
    return int(result.rowcount or 0)


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
    # form field → roger_economic.suggest.Suggestion, for unmapped items only (:func:`with_suggestions`): shown and
    # preselected on the page, never stored but by the accountant's SAVE
    suggested: dict[str, Any] = field(default_factory=dict)


def with_suggestions(sess: Session, setup: Setup) -> Setup:
    """The setup with a suggested account for each unmapped category and payment method (:mod:`roger_economic.suggest`).

    Only read here: a suggestion reaches the mapping tables when the accountant SAVEs the form that shows it,
    and the pipeline reads the mapping tables only.
    """
    mapped = {f"cat_account__{c}" for c in setup.categories} | {f"pm_account__{m}" for m in setup.methods}
    found = suggest.for_agreement(sess, setup.agreement.id, setup.snapshots).first() if setup.snapshots else {}
    setup.suggested = {key: s for key, s in found.items() if key not in mapped}
    return setup


def bookable_accounts(snapshots: dict[str, Any]) -> list[dict[str, Any]]:
    """Accounts a direct entry can go to: profitAndLoss/status, not barred, not blocking direct entries."""
    accounts = {a["accountNumber"]: a for a in snapshots.get("accounts") or [] if "accountNumber" in a}
    return [accounts[n] for n in sorted(accounts) if masterdata.account_problem(accounts, n) is None]


def load_setup(sess: Session, agreement_id: str) -> Setup | None:
    agreement = sess.get(models.Agreement, agreement_id)
    if agreement is None:
        return None
    snapshots = masterdata.load(sess, [agreement_id])[agreement_id]
    categories = {
        m.category_id: (m.account_number, m.vat_code)
        for m in sess.scalars(select(models.CategoryMapping).where(models.CategoryMapping.agreement_id == agreement_id))
    }
    methods = {
        m.method_id: m.account_number
        for m in sess.scalars(
            select(models.PaymentMethodMapping).where(models.PaymentMethodMapping.agreement_id == agreement_id)
        )
    }
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
    for key, entry_type, label in (
        ("invoice_journal", "supplierInvoice", "Invoice journal"),
        ("payment_journal", "supplierPayment", "Payment journal"),
    ):
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


KEEP = "__keep__"  # the form's option "keep the stored value it cannot offer"


@dataclass
class Kept:
    """A stored value the form cannot offer as a choice (barred account, journal gone from master data, …)."""

    key: str  # the form field
    value: str  # the stored value, as the form would submit it
    text: str  # "category Marketing (cat_marketing) → account 1234 (barred in e-conomic)"
    reason: str  # "barred in e-conomic"


def _account_reason(accounts: dict[int, dict[str, Any]], number: int) -> str:
    problem = masterdata.account_problem(accounts, number)
    if problem == "unknown":
        return "not in e-conomic's chart of accounts"
    return f"{problem} in e-conomic"


def unshowable(setup: Setup) -> dict[str, Kept]:
    """Form field → the stored value it cannot show, for every such field of the setup.

    The form offers only what can be booked to now; a value stored earlier that no longer qualifies
    would otherwise be submitted as "not mapped" and deleted by a SAVE nobody meant to make.
    """
    snaps = setup.snapshots
    accounts = {a["accountNumber"]: a for a in snaps.get("accounts") or [] if "accountNumber" in a}
    bookable = {a["accountNumber"] for a in setup.accounts}
    journals = {j.get("journalNumber") for j in setup.journals}
    vat_codes = {v.get("vatCode") for v in setup.vat_codes}
    suppliers = {s.get("supplierNumber") for s in setup.suppliers}
    names = {c["id"]: c.get("name") or c["id"] for c in setup.roger_categories}
    methods = {m["id"]: m.get("name") or m["id"] for m in setup.roger_methods}
    out: dict[str, Kept] = {}

    def keep(key: str, value: Any, text: str) -> None:
        out[key] = Kept(key, str(value), text, text[text.rindex("(") + 1 : -1])

    a = setup.agreement
    for key, label in (
        ("invoice_journal", "supplier invoice journal"),
        ("payment_journal", "supplier payment journal"),
    ):
        number = getattr(a, key)
        if number is not None and number not in journals:
            keep(key, number, f"{label} {number} (not in e-conomic's master data)")
    if a.default_account is not None and a.default_account not in bookable:
        keep(
            "default_account",
            a.default_account,
            f"default account {a.default_account} ({_account_reason(accounts, a.default_account)})",
        )
    if a.default_supplier is not None and a.default_supplier not in suppliers:
        keep("default_supplier", a.default_supplier, f"default supplier {a.default_supplier} (not in e-conomic)")
    for cid, (account, vat) in setup.categories.items():
        label = f"category {names.get(cid, cid)} ({cid})"
        if account not in bookable:
            keep(f"cat_account__{cid}", account, f"{label} → account {account} ({_account_reason(accounts, account)})")
        if vat and vat not in vat_codes:
            keep(f"cat_vat__{cid}", vat, f"{label} → VAT code {vat} (unknown to e-conomic)")
    for mid, account in setup.methods.items():
        if account not in bookable:
            keep(
                f"pm_account__{mid}",
                account,
                f"payment method {methods.get(mid, mid)} ({mid}) → account {account} "
                f"({_account_reason(accounts, account)})",
            )
    return out


def parse_with_kept(setup: Setup, form: dict[str, str]) -> tuple[SetupForm, list[Kept]]:
    """:func:`parse_setup_form`, except that a stored value the form could not offer is kept as it is.

    A field that submits :data:`KEEP` (the form's default for such a value) or nothing at all keeps
    its stored value, which is not validated again: this SAVE does not change it. The page says what
    was kept; choosing another value (or "not mapped") changes or removes it explicitly. A category
    whose account is kept cannot get a new VAT code in the same SAVE (and the other way round).
    """
    unshown = unshowable(setup)
    kept = [k for key, k in unshown.items() if form.get(key) in (None, KEEP)]
    if not kept or not setup.snapshots:
        return parse_setup_form(setup, {k: v for k, v in form.items() if v != KEEP}), kept
    kept_keys = {k.key for k in kept}
    form = dict(form)
    errors: list[str] = []
    skip_categories: set[str] = set()
    for cid, (account, vat) in setup.categories.items():
        acc_key, vat_key = f"cat_account__{cid}", f"cat_vat__{cid}"
        if acc_key not in kept_keys and vat_key not in kept_keys:
            continue
        account_same = acc_key in kept_keys or form.get(acc_key) == str(account)
        vat_same = vat_key in kept_keys or (form.get(vat_key) or "") == (vat or "")
        if account_same and vat_same:
            skip_categories.add(cid)
        else:
            held = unshown[acc_key if acc_key in kept_keys else vat_key]
            errors.append(f"{held.text} is kept: change both its account and its VAT code (or unmap it) to change it")
    skip_methods = {mid for mid in setup.methods if f"pm_account__{mid}" in kept_keys}
    snaps = {kind: list(payload) if isinstance(payload, list) else payload for kind, payload in setup.snapshots.items()}
    a = setup.agreement
    for key in ("invoice_journal", "payment_journal"):
        if key in kept_keys:  # validated as it was when stored: this SAVE leaves it as it is
            snaps.setdefault("journals", []).append({"journalNumber": getattr(a, key), "name": "(kept)"})
            form[key] = str(getattr(a, key))
    if "default_account" in kept_keys:
        snaps["accounts"] = [x for x in snaps.get("accounts") or [] if x.get("accountNumber") != a.default_account]
        snaps["accounts"].append(
            {"accountNumber": a.default_account, "name": "(kept)", "accountType": sorted(BOOKABLE_ACCOUNT_TYPES)[0]}
        )
        form["default_account"] = str(a.default_account)
    if "default_supplier" in kept_keys:
        snaps.setdefault("suppliers", []).append({"supplierNumber": a.default_supplier, "name": "(kept)"})
        form["default_supplier"] = str(a.default_supplier)
    view = dataclasses.replace(
        setup,
        snapshots=snaps,
        roger_categories=[c for c in setup.roger_categories if c["id"] not in skip_categories],
        roger_methods=[m for m in setup.roger_methods if m["id"] not in skip_methods],
    )
    parsed = parse_setup_form(view, {k: v for k, v in form.items() if v != KEEP})
    parsed.categories.update({cid: setup.categories[cid] for cid in skip_categories})
    parsed.methods.update({mid: setup.methods[mid] for mid in skip_methods})
    parsed.errors.extend(errors)
    if parsed.errors and skip_categories and any(e.startswith("Map at least one category") for e in parsed.errors):
        parsed.errors = [e for e in parsed.errors if not e.startswith("Map at least one category")]
    return parsed, kept


class SetupChanged(Exception):
    """The setup was saved by someone else after this form was opened: nothing was stored."""

    def __init__(self, changes: list[dict[str, Any]], current: str) -> None:
        super().__init__("the setup changed since the form was opened")
        self.changes = changes  # audit rows of the saves in between (newest first)
        self.current = current  # the version the setup is at now


def setup_version(agreement: models.Agreement) -> str:
    """The version a form carries (the agreement's ``updated_at``, exactly as the database returns it)."""
    return agreement.updated_at.isoformat() if agreement.updated_at is not None else ""


def describe(
    values: dict[str, Any], categories: dict[str, tuple[int, str | None]], methods: dict[str, int]
) -> dict[str, Any]:
    """A setup as flat "what → value" pairs, so two setups can be compared field by field."""
    return {key: values.get(key) for key in SETUP_FIELDS} | mapping_pairs(categories, methods)


SETUP_FIELDS = (
    "invoice_journal",
    "payment_journal",
    "default_account",
    "supplier_policy",
    "supplier_group",
    "payment_terms",
    "default_supplier",
    "closed_period_policy",
    "book_without_attachment",
)


def stored_description(setup: Setup) -> dict[str, Any]:
    return describe({key: getattr(setup.agreement, key) for key in SETUP_FIELDS}, setup.categories, setup.methods)


def save_setup(
    sess: Session, setup: Setup, parsed: SetupForm, *, actor: str = "unknown", version: str | None = None
) -> list[dict[str, Any]]:
    """Store a validated setup (agreement columns + mapping tables) and audit it; returns the mapping gaps left.

    With ``version`` (the one the form was rendered with) the write only happens if nobody saved in
    between: the agreement row is updated on condition that its ``updated_at`` is still that version,
    so of two concurrent saves exactly one wins; the other gets :class:`SetupChanged`.
    """
    if parsed.errors:
        raise ValueError("refusing to store a setup with errors")
    A = models.Agreement
    now = datetime.now(UTC)
    stored = stored_description(setup)  # before the update below refreshes setup.agreement
    condition = [A.id == setup.agreement.id]
    seen: datetime | None = None
    if version is not None:
        try:
            seen = datetime.fromisoformat(version)
        except ValueError:
            seen = None
        if seen is None:
            raise SetupChanged(changes_since(sess, setup.agreement.id, None), setup_version(setup.agreement))
        condition.append(A.updated_at == seen)
    result = sess.execute(
        update(A).where(*condition).values(**parsed.values, updated_at=now).execution_options(synchronize_session=False)
    )
    if _rowcount(result) != 1:
        current = sess.scalar(select(A.updated_at).where(A.id == setup.agreement.id))
        raise SetupChanged(changes_since(sess, setup.agreement.id, seen), current.isoformat() if current else "")
    agreement = sess.get(A, setup.agreement.id)
    assert agreement is not None
    sess.refresh(agreement)
    save_mappings(sess, agreement.id, parsed.categories, parsed.methods)
    before, after = changed(stored, describe(parsed.values, parsed.categories, parsed.methods))
    record(
        sess,
        agreement.id,
        actor,
        "save_setup",
        before=before,
        after=after,
        at=now,
        note=None if before or after else "saved without changes",
    )
    gaps = masterdata.mapping_gaps(agreement, parsed.categories, parsed.methods, setup.snapshots)
    status = sess.get(models.AgreementStatus, agreement.id) or models.AgreementStatus(agreement_id=agreement.id)
    status.mapping_gaps = gaps
    sess.add(status)
    return gaps


# ------------------------------------------------------------------------------------------------ audit


def audit_log(sess: Session, agreement_id: str, limit: int = 50) -> list[models.SetupAudit]:
    """The agreement's audit trail, latest first."""
    T = models.SetupAudit
    return list(
        sess.scalars(select(T).where(T.agreement_id == agreement_id).order_by(T.at.desc(), T.id.desc()).limit(limit))
    )


def changes_since(sess: Session, agreement_id: str, since: datetime | None) -> list[dict[str, Any]]:
    """The setup changes (UI saves, file loads) after ``since`` (all of them without it), latest first, for a
    refused save."""
    T = models.SetupAudit
    query = select(T).where(T.agreement_id == agreement_id, T.action.in_(SETUP_CHANGES))
    if since is not None:
        query = query.where(T.at > since)
    return [
        {"at": row.at, "actor": row.actor, "before": row.before or {}, "after": row.after or {}}
        for row in sess.scalars(query.order_by(T.at.desc(), T.id.desc()).limit(20))
    ]


def current_gaps(setup: Setup) -> list[dict[str, Any]]:
    """Gaps of the stored setup against the stored master data (what the next refresh would report)."""
    if not setup.snapshots:
        return list((setup.status.mapping_gaps if setup.status else None) or [])
    return masterdata.mapping_gaps(setup.agreement, setup.categories, setup.methods, setup.snapshots)


# ------------------------------------------------------------------------------------------------ bill log


def bill_log(
    sess: Session, agreement_id: str, state: str = "", search: str = "", page: int = 1, per_page: int = 50
) -> tuple[list[dict[str, Any]], int, dict[str, int]]:
    """Bills of one agreement (newest first, paged) with postings, open quarantine and review items."""
    B = models.StagedBill
    query = select(B).where(B.agreement_id == agreement_id)
    if state:
        query = query.where(B.state == state)
    if search.strip():  # both sides folded in Python (models.fold): the same on SQLite and PostgreSQL
        query = query.where(B.search_text.like(_like(models.fold(search.strip())), escape="\\"))
    total = sess.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    page = max(1, page)
    bills = list(
        sess.scalars(query.order_by(B.staged_at.desc(), B.bill_id).offset((page - 1) * per_page).limit(per_page))
    )
    states = dict(
        sess.execute(select(B.state, func.count()).where(B.agreement_id == agreement_id).group_by(B.state)).all()
    )
    ids = [b.bill_id for b in bills]
    postings: dict[str, list[models.Posting]] = {}
    quarantine: dict[str, list[models.Quarantine]] = {}
    reviews: dict[str, list[models.ReviewItem]] = {}
    if ids:
        for p in sess.scalars(
            select(models.Posting)
            .where(models.Posting.agreement_id == agreement_id, models.Posting.bill_id.in_(ids))
            .order_by(models.Posting.id)
        ):
            postings.setdefault(p.bill_id, []).append(p)
        for q in sess.scalars(
            select(models.Quarantine)
            .where(
                models.Quarantine.agreement_id == agreement_id,
                models.Quarantine.bill_id.in_(ids),
                models.Quarantine.released_at.is_(None),
            )
            .order_by(case((models.Quarantine.severity == "stop", 0), else_=1), models.Quarantine.id)
        ):
            quarantine.setdefault(q.bill_id, []).append(q)
        for r in sess.scalars(
            select(models.ReviewItem)
            .where(
                models.ReviewItem.agreement_id == agreement_id,
                models.ReviewItem.bill_id.in_(ids),
                models.ReviewItem.resolved_at.is_(None),
            )
            .order_by(models.ReviewItem.id)
        ):
            reviews.setdefault(r.bill_id, []).append(r)
    rows = []
    for b in bills:
        payload = b.payload or {}
        rows.append(
            {
                "bill_id": b.bill_id,
                "version": b.version,
                "state": b.state,
                "staged_at": b.staged_at,
                "vendor": (payload.get("vendor") or {}).get("name"),
                "invoice_number": payload.get("invoice_number"),
                "amount": payload.get("amount"),
                "currency": payload.get("currency"),
                "category": payload.get("category_id"),
                "status": payload.get("status"),
                "issue_date": payload.get("issue_date"),
                "due_date": payload.get("due_date"),
                "paid_date": (payload.get("payment") or {}).get("paid_date")
                if isinstance(payload.get("payment"), dict)
                else None,
                "document_type": payload.get("document_type"),
                "postings": postings.get(b.bill_id, []),
                "quarantine": quarantine.get(b.bill_id, []),
                "reviews": reviews.get(b.bill_id, []),
            }
        )
    return rows, total, states


def resync_bill(sess: Session, agreement_id: str, bill_id: str, actor: str = "unknown") -> str | None:
    """Set one quarantined bill back to ``new`` (re-judged by the next run) and audit it; the ledger is not touched.

    Returns the bill's state before (``None``: no such bill). A bill in another state is left as it is
    (re-sync would change nothing for it), so the caller can say so.
    """
    B = models.StagedBill
    state = sess.scalar(select(B.state).where(B.agreement_id == agreement_id, B.bill_id == bill_id))
    if state is None or state not in RESYNC_STATES:
        return state
    result = sess.execute(
        update(B).where(B.agreement_id == agreement_id, B.bill_id == bill_id, B.state == state).values(state="new")
    )
    if _rowcount(result):
        record(
            sess, agreement_id, actor, "resync_bill", target=bill_id, before={"state": state}, after={"state": "new"}
        )
    return state


def resync_quarantined(sess: Session, agreement_id: str, actor: str = "unknown") -> int:
    """Set every quarantined bill of the agreement back to ``new`` and audit it; returns how many."""
    B = models.StagedBill
    ids = list(
        sess.scalars(
            select(B.bill_id).where(B.agreement_id == agreement_id, B.state == "quarantined").order_by(B.bill_id)
        )
    )
    result = sess.execute(
        update(B).where(and_(B.agreement_id == agreement_id, B.state == "quarantined")).values(state="new")
    )
    count = _rowcount(result)
    if count:
        record(
            sess,
            agreement_id,
            actor,
            "resync_quarantined",
            target=f"{count} bill(s)",
            before={"state": "quarantined", "bills": ids},
            after={"state": "new"},
        )
    return count
