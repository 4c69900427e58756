"""The project's own tables (SQLAlchemy 2). Alembic migrations in ``roger_economic_migrations/`` create them.

Nothing here holds a token: agreements keep *references* (``env:VAR`` or
``conn:ID``) that are resolved at run time.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Agreement(Base):
    """One e-conomic company paired with one Roger business account, and its setup."""

    __tablename__ = "agreements"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    roger_company_id: Mapped[str] = mapped_column(String(64))
    roger_token_ref: Mapped[str] = mapped_column(String(255))
    economic_agreement_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    economic_token_ref: Mapped[str] = mapped_column(String(255))
    invoice_journal: Mapped[int] = mapped_column(Integer)
    payment_journal: Mapped[int] = mapped_column(Integer)
    default_account: Mapped[int | None] = mapped_column(Integer, nullable=True)
    supplier_policy: Mapped[str] = mapped_column(String(16), default="quarantine")
    supplier_group: Mapped[int | None] = mapped_column(Integer, nullable=True)
    payment_terms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    default_supplier: Mapped[int | None] = mapped_column(Integer, nullable=True)
    closed_period_policy: Mapped[str] = mapped_column(String(16), default="quarantine")
    book_without_attachment: Mapped[bool] = mapped_column(Boolean, default=False)
    lease_owner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CategoryMapping(Base):
    __tablename__ = "category_mappings"
    agreement_id: Mapped[str] = mapped_column(ForeignKey("agreements.id", ondelete="CASCADE"), primary_key=True)
    category_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_number: Mapped[int] = mapped_column(Integer)
    vat_code: Mapped[str | None] = mapped_column(String(8), nullable=True)


class PaymentMethodMapping(Base):
    __tablename__ = "payment_method_mappings"
    agreement_id: Mapped[str] = mapped_column(ForeignKey("agreements.id", ondelete="CASCADE"), primary_key=True)
    method_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_number: Mapped[int] = mapped_column(Integer)


class MasterData(Base):
    """The latest snapshot of one kind of master data of one agreement (both sides)."""

    __tablename__ = "master_data"
    agreement_id: Mapped[str] = mapped_column(ForeignKey("agreements.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    payload: Mapped[Any] = mapped_column(JSON)
    fetched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AgreementStatus(Base):
    """What the master-data refresh and the last bills run learned about an agreement."""

    __tablename__ = "agreement_status"
    agreement_id: Mapped[str] = mapped_column(ForeignKey("agreements.id", ondelete="CASCADE"), primary_key=True)
    scanning_addon: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    api_access: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    mapping_gaps: Mapped[list[Any]] = mapped_column(JSON, default=list)
    master_data_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    master_data_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # the end of the last window extracted in full: the next run starts here at the latest, so a
    # failed night leaves no gap
    extracted_until: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # what the open bills were last judged against (see steps.validate.setup_fingerprint)
    judged_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_run_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    last_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


def fold(text: str) -> str:
    """Text as the bill log's search compares it: NFKC-normalised and case-folded (Æ = æ, Ø = ø, Å = å).

    Done in Python, not with the database's ``lower()``/``ILIKE``: those follow the database's locale
    (PostgreSQL under the C collation leaves Æ/Ø/Å as they are; SQLite folds ASCII only).
    """
    return unicodedata.normalize("NFKC", text).casefold()


def bill_search_text(payload: Any) -> str:
    """What a bill is found by in the bill log: id, vendor, invoice number, amount (as Roger and as Danes write it)."""
    if not isinstance(payload, dict):
        return ""
    vendor: dict[str, Any] = payload["vendor"] if isinstance(payload.get("vendor"), dict) else {}
    parts = [payload.get("id"), vendor.get("name"), vendor.get("cvr"), payload.get("invoice_number")]
    try:
        amount = Decimal(str(payload.get("amount")))
    except (InvalidOperation, ValueError):
        amount = None
    if amount is not None and amount.is_finite():
        plain = f"{amount:.2f}"
        danish = f"{amount:,.2f}".replace(",", "_").replace(".", ",").replace("_", ".")
        parts += [plain, plain.replace(".", ","), danish]
    return fold(" ".join(str(p) for p in parts if p not in (None, "")))


def _search_text_default(context: Any) -> str:
    return bill_search_text(context.get_current_parameters().get("payload"))


class StagedBill(Base):
    """The newest version of a Roger bill we have seen, and where it stands."""

    __tablename__ = "staged_bills"
    agreement_id: Mapped[str] = mapped_column(ForeignKey("agreements.id", ondelete="CASCADE"), primary_key=True)
    bill_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[str] = mapped_column(String(40))
    # a states.BillState, written through states.move (its diagram is in roger_economic.states), or ``new`` by staging
    state: Mapped[str] = mapped_column(String(16), default="new")
    staged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    run_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # bill_search_text(payload): filled on insert; staging passes it with every new version
    search_text: Mapped[str | None] = mapped_column(Text, nullable=True, default=_search_text_default)

    __table_args__ = (
        Index("ix_staged_state", "agreement_id", "state"),
        Index("ix_staged_updated", "agreement_id", "updated_at"),  # what a window already holds (steps.extract)
    )


class _EntryOfABill:
    """The columns naming one entry of one bill version, first in each table about one (quarantine, postings,
    review items)."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True, sort_order=-1)
    agreement_id: Mapped[str] = mapped_column(ForeignKey("agreements.id", ondelete="CASCADE"), sort_order=-1)
    bill_id: Mapped[str] = mapped_column(String(64), sort_order=-1)
    bill_version: Mapped[int] = mapped_column(Integer, sort_order=-1)
    entry_kind: Mapped[str] = mapped_column(String(16), sort_order=-1)  # invoice | payment (a finding: or bill)


class Quarantine(_EntryOfABill, Base):
    """One failing rule of one bill (or of one of its entries), with the offending value."""

    __tablename__ = "quarantine"
    rule: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(8))  # stop | warn
    value: Mapped[str | None] = mapped_column(Text, nullable=True)
    message: Mapped[str] = mapped_column(Text)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    release_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    run_id: Mapped[str | None] = mapped_column(String(255), nullable=True)

    __table_args__ = (Index("ix_quarantine_open", "agreement_id", "bill_id", "released_at"),)


class Posting(_EntryOfABill, Base):
    """The posting ledger: which bill version became which voucher in which journal and year.

    A row is written (``posting``) before the POST, with a deterministic
    idempotency key, and completed (``posted``) from the answer; so a crash at
    any point leaves a row that tells what to look for in e-conomic.
    """

    __tablename__ = "postings"
    idempotency_key: Mapped[str] = mapped_column(String(80), unique=True)
    # a states.PostingStatus
    status: Mapped[str] = mapped_column(String(16))
    journal_number: Mapped[int] = mapped_column(Integer)
    accounting_year: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    payload_hash: Mapped[str] = mapped_column(String(64))
    batch_key: Mapped[str | None] = mapped_column(String(80), nullable=True)
    voucher_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    entry_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    attachment: Mapped[str] = mapped_column(String(16), default="none")  # a states.Attachment
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    run_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    posted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (
        Index("ix_postings_bill", "agreement_id", "bill_id", "entry_kind"),
        Index("ix_postings_status", "agreement_id", "status"),
    )


class SupplierLink(Base):
    """A Roger vendor resolved to an e-conomic supplier (matched or created by us, once)."""

    __tablename__ = "supplier_links"
    agreement_id: Mapped[str] = mapped_column(ForeignKey("agreements.id", ondelete="CASCADE"), primary_key=True)
    vendor_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    supplier_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    how: Mapped[str] = mapped_column(String(16))  # matched | created | creating
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReviewItem(_EntryOfABill, Base):
    """Something an accountant must do by hand (a booked entry whose bill changed in Roger)."""

    __tablename__ = "review_items"
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (UniqueConstraint("agreement_id", "bill_id", "bill_version", "entry_kind"),)


class RunReport(Base):
    """One bills run's outcome per agreement, as JSON (the run report and the chart read it)."""

    __tablename__ = "run_reports"
    run_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    agreement_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    phase: Mapped[str] = mapped_column(String(16), primary_key=True)  # extract | validate | load
    outcome: Mapped[str] = mapped_column(String(16))  # a states.Outcome
    counts: Mapped[dict[str, Any]] = mapped_column(JSON)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SetupAudit(Base):
    """Who changed what on the UI page: a setup saved, bills re-synced, a master-data refresh started.

    ``before``/``after`` hold only what changed (a setup's changed fields and mappings, a bill's
    state). Not tied to the agreement by a foreign key: the history outlives the agreement's row.
    """

    __tablename__ = "setup_audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agreement_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(32))  # save_setup | resync_bill | resync_quarantined | refresh
    target: Mapped[str | None] = mapped_column(String(255), nullable=True)  # a bill id, a DAG run id
    before: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    after: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ix_setup_audit_agreement", "agreement_id", "at"),)
