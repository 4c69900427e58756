"""Steps 1, 2, 4 and 5 of one agreement's load (see :mod:`roger_economic.posting`): recovery, changes
after booking, vouchers and documents."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import CursorResult, select, tuple_, update
from sqlalchemy.orm import Session

from roger_economic import states
from roger_economic.context import AgreementContext
from roger_economic.db import in_chunks, models
from roger_economic.economic.client import EconomicClient, fits_one_request
from roger_economic.errors import IntegrationError, NotFound, ValidationRejected
from roger_economic.posting import records, suppliers
from roger_economic.posting.leases import release, still_held
from roger_economic.posting.work import LOADER_RULES, Planned, Work, read_work
from roger_economic.roger.client import RogerClient
from roger_economic.settings import environment
from roger_economic.states import Attachment, BillState, PostingStatus
from roger_economic.texts import bill_id_in

log = logging.getLogger(__name__)

ATTACHED_WRITE_EVERY = 50  # attachments recorded per commit
BATCH_SIZE = 200  # vouchers per POST at most (``ROGER_ECONOMIC_BATCH_SIZE`` may make it smaller)


def batch_size() -> int:
    asked = environment().batch_size
    return BATCH_SIZE if asked is None else max(1, min(BATCH_SIZE, asked))


DECIMAL_FIELDS = ("amount", "contraVatAmount", "exchangeRate")
SessionFactory = Callable[[], Any]


@dataclass
class LoadResult:
    counts: Counter = field(default_factory=Counter)


def _voucher(payload: dict[str, Any]) -> dict[str, Any]:
    """The stored voucher with its amounts as exact decimals again."""
    voucher = payload["voucher"]
    out = {**voucher, "entries": {}}
    for kind, items in voucher["entries"].items():
        fixed = []
        for item in items:
            item = dict(item)
            for name in DECIMAL_FIELDS:
                if name in item:
                    item[name] = Decimal(str(item[name]))
            fixed.append(item)
        out["entries"][kind] = fixed
    return out


def newest_only(
    planned: list[Planned], live: dict[tuple[str, str], models.Posting]
) -> tuple[list[Planned], list[Planned]]:
    """The planned rows to post, and the stale ones: at most one version of each entry goes out, the newest,
    and never one older than the entry's booked version (versions only move forward)."""
    newest: dict[tuple[str, str], Planned] = {}
    for row in planned:
        best = newest.get((row.bill_id, row.kind))
        if best is None or (row.bill_version, row.id) > (best.bill_version, best.id):
            newest[(row.bill_id, row.kind)] = row
    keep: list[Planned] = []
    stale: list[Planned] = []
    for row in planned:
        old = live.get((row.bill_id, row.kind))
        behind = old is not None and old.id != row.id and old.bill_version > row.bill_version
        (stale if behind or newest[(row.bill_id, row.kind)] is not row else keep).append(row)
    return keep, stale


def _kind_of(entry: dict[str, Any]) -> str:
    return "payment" if entry.get("entryType") == "supplierPayment" else "invoice"


def _batch_key(agreement_id: str, journal: int, rows: list[Planned]) -> str:
    raw = "|".join([agreement_id, str(journal), *sorted(r.idempotency_key for r in rows)])
    return "rb-" + hashlib.sha256(raw.encode()).hexdigest()[:40]


class Loader:
    """One agreement's load. ``work``: what it starts from, when the caller read it for a whole group;
    ``owner``: the lease this load holds, given back in its last transaction; ``group``: where a load of a
    group leaves its last records and its lease instead, for the group's next write (:meth:`_finish`);
    ``marks``: the vendors its group marked ``creating`` for it (:class:`~roger_economic.posting.suppliers.Marks`)."""

    def __init__(
        self,
        session: SessionFactory,
        ctx: AgreementContext,
        economic: EconomicClient,
        roger: RogerClient,
        run_id: str,
        work: Work | None = None,
        owner: str | None = None,
        group: records.GroupRecords | None = None,
        marks: suppliers.Marks | None = None,
    ) -> None:
        self.session = session
        self.ctx = ctx
        self.aid = ctx.settings.id
        self.economic = economic
        self.roger = roger
        self.run_id = run_id
        self.work = work
        self.owner = owner
        self.group = group
        self.marks = marks
        self.result = LoadResult()
        self.to_attach: list[tuple[int, str, int, str, int | None]] = []
        self.refused: set[str] = set()  # bills whose invoice e-conomic refused in this load
        self.why_refused: dict[str, str] = {}  # bill → e-conomic's error codes and messages for it
        self.work_refused: set[str] = set()  # bills with an open refusal (``LOADER_RULES``) from an earlier run
        # what e-conomic answered and the ledger does not hold yet: written first in the load's next transaction
        # (:meth:`_transaction`), else when it ends (:meth:`_finish`: with its group's next write); a crash
        # before that leaves rows ``posting`` and links ``creating``, which the next load looks up in e-conomic
        # before it sends anything again
        self.suppliers_unsaved: dict[str, int] = {}  # created suppliers (vendor key → supplier number)
        self.posted_unsaved: list[dict[str, Any]] = []  # posted vouchers' rows (:meth:`_post_batch`)
        self.attached_unsaved: list[int] = []  # uploaded, recorded every few uploads and when the load ends

    # ------------------------------------------------------------------ entry point
    def run(self) -> LoadResult:
        """Steps 1–5 (the bill states are settled for the whole group: :func:`settle_bill_states`)."""
        try:
            work = self.work or self._read()
            if work.stuck:  # rows left ``posting`` by a crash or a lost answer: sort them out, then read again
                self.recover()
                work = self._read()
            self.to_attach = list(work.to_attach)
            self.work_refused = set(work.refused)
            planned = self.withdraw_and_replace(work)
            self.create_suppliers(planned)
            self.post_planned(planned)
            self.attach_documents()
        finally:
            self._finish()
        return self.result

    def _read(self) -> Work:
        with self._transaction() as sess:
            return read_work(sess, [self.aid])[self.aid]

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        """A transaction of this load, which first writes what e-conomic answered since the last one (suppliers
        created, vouchers posted): every later read and write of the load sees them, and a voucher's record
        costs no transaction of its own. Forgotten only once committed (written again after a rollback, they
        change nothing twice). Never nested: a second connection would wait on the first one's row locks."""
        created, posted = dict(self.suppliers_unsaved), len(self.posted_unsaved)
        with self.session() as sess:
            records.save_suppliers(sess, {self.aid: created})
            records.save_posted(sess, self.posted_unsaved[:posted])
            yield sess
        for key in created:
            self.suppliers_unsaved.pop(key, None)
        del self.posted_unsaved[:posted]

    def _finish(self) -> None:
        """What is not yet recorded (vouchers posted, the last attachments, suppliers) written and the lease
        given back (also on failure): handed to the group's next write when the load is one of a group
        (:class:`~roger_economic.posting.records.GroupRecords`), else in a transaction of its own."""
        unsaved = records.Unsaved(self.suppliers_unsaved, self.posted_unsaved, self.attached_unsaved)
        if self.group is not None and self.group.add(self.aid, unsaved):
            self.suppliers_unsaved, self.posted_unsaved, self.attached_unsaved = {}, [], []  # the group's now
            return
        if not (self.attached_unsaved or self.suppliers_unsaved or self.posted_unsaved or self.owner):
            return
        with self._transaction() as sess:
            records.save_attached(sess, self.attached_unsaved)
            if self.owner:
                release(sess, self.aid, self.owner)
        self.attached_unsaved.clear()

    def _rows(self, sess: Session, *statuses: str) -> list[models.Posting]:
        return list(
            sess.scalars(
                select(models.Posting)
                .where(models.Posting.agreement_id == self.aid, models.Posting.status.in_(statuses))
                .order_by(models.Posting.id)
            )
        )

    # ------------------------------------------------------------------ 1. recovery
    def recover(self) -> None:
        """Find each entry left ``posting`` where it can be: the journal's drafts, or (the accountant booked the
        journal meanwhile) the booked entries of its accounting year. Found: posted (a booked one keeps no
        journal entry number: a later change of its bill becomes a review item). Not found: planned again,
        unless a newer version of the bill is in the ledger: then it is superseded (versions only move forward).
        """
        with self._transaction() as sess:
            stuck = self._rows(sess, PostingStatus.POSTING)
            if not stuck:
                return
            known = {
                number
                for number in sess.scalars(
                    select(models.Posting.entry_number).where(
                        models.Posting.agreement_id == self.aid, models.Posting.entry_number.is_not(None)
                    )
                )
                if number is not None
            }
            drafts = self._drafts_of(stuck, known)
            booked = self._booked_of(sess, stuck)
            newer = self._newer_versions(sess, stuck)
            gone = set(
                sess.scalars(
                    select(models.StagedBill.bill_id).where(  # deleted in Roger since
                        models.StagedBill.agreement_id == self.aid,
                        models.StagedBill.bill_id.in_({r.bill_id for r in stuck}),
                        models.StagedBill.state.in_((BillState.WITHDRAW, BillState.WITHDRAWN)),
                    )
                )
            )
            for row in stuck:
                hit = drafts.get((row.journal_number, row.bill_id, row.entry_kind))
                if hit is None:
                    hit = booked.get((row.accounting_year, row.bill_id, row.entry_kind))
                if hit is not None:
                    self._found(row, hit)
                elif row.bill_id in gone:
                    row.status = (
                        PostingStatus.WITHDRAWN
                    )  # never posted, and the bill is deleted in Roger: nothing to post
                    row.batch_key = None
                    self.result.counts["withdrawn"] += 1
                elif (row.bill_id, row.entry_kind) in newer.get(row.bill_version, set()):
                    row.status = (
                        PostingStatus.SUPERSEDED
                    )  # never posted, and a newer version of the bill is in the ledger
                    row.batch_key = None
                    self.result.counts["superseded"] += 1
                else:
                    row.status = PostingStatus.PLANNED
                    row.batch_key = None
                    self.result.counts["requeued"] += 1
            log.info(
                "agreement %s: recovered %d entries (%d booked meanwhile), requeued %d, superseded %d",
                self.aid,
                self.result.counts["recovered"],
                self.result.counts["recovered_booked"],
                self.result.counts["requeued"],
                self.result.counts["superseded"],
            )

    def _drafts_of(self, stuck: list[models.Posting], known: set[int]) -> dict[tuple[int, str, str], dict]:
        """(journal, bill, kind) → a draft entry no ledger row owns yet, in the stuck rows' journals."""
        found: dict[tuple[int, str, str], dict[str, Any]] = {}
        looked_for = {row.bill_id for row in stuck}
        for journal in sorted({row.journal_number for row in stuck}):
            for entry in self.economic.entries(journal):
                bill = bill_id_in(entry.get("text", ""), looked_for)
                if bill and entry.get("journalEntryNumber") not in known:
                    found[(journal, bill, _kind_of(entry))] = {**entry, "booked": False}
        return found

    def _booked_of(self, sess: Session, stuck: list[models.Posting]) -> dict[tuple[str, str, str], dict]:
        """(year, bill, kind) → a booked entry no posted ledger row owns, among the stuck rows' years.

        Read by the entries' dates (the stuck rows' date range of each year), never by Roger text in a
        filter; booked entries of posted rows of the same bills (same voucher) are not theirs.
        """
        posting = models.Posting
        bills = sorted({row.bill_id for row in stuck})
        owned = {
            tuple(r)
            for chunk in in_chunks(bills)
            for r in sess.execute(
                select(posting.accounting_year, posting.bill_id, posting.entry_kind, posting.voucher_number).where(
                    posting.agreement_id == self.aid,
                    posting.bill_id.in_(chunk),
                    posting.status == PostingStatus.POSTED,
                    posting.voucher_number.is_not(None),
                )
            )
        }
        dates: dict[str, list[str]] = defaultdict(list)
        for row in stuck:
            for items in (row.payload.get("voucher") or {}).get("entries", {}).values():
                dates[row.accounting_year] += [str(item["date"]) for item in items if item.get("date")]
        found: dict[tuple[str, str, str], dict[str, Any]] = {}
        looked_for = set(bills)
        for year, days in sorted(dates.items()):
            try:
                entries = self.economic.booked_entries(year, f"date$gte:{min(days)}$and:date$lte:{max(days)}")
            except NotFound:  # no such year in e-conomic: nothing of it can be booked
                continue
            for entry in entries:
                bill = bill_id_in(entry.get("text", ""), looked_for)
                kind = _kind_of(entry)
                if bill and (year, bill, kind, entry.get("voucherNumber")) not in owned:
                    found[(year, bill, kind)] = {**entry, "booked": True}
        return found

    def _newer_versions(self, sess: Session, stuck: list[models.Posting]) -> dict[int, set[tuple[str, str]]]:
        """Stuck row version → the (bill, kind) of those stuck rows that have a newer version in the ledger."""
        posting = models.Posting
        highest: dict[tuple[str, str], int] = {}
        for chunk in in_chunks(sorted({row.bill_id for row in stuck})):
            for bill, kind, version in sess.execute(
                select(posting.bill_id, posting.entry_kind, posting.bill_version).where(
                    posting.agreement_id == self.aid, posting.bill_id.in_(chunk)
                )
            ):
                highest[(bill, kind)] = max(highest.get((bill, kind), version), version)
        out: dict[int, set[tuple[str, str]]] = defaultdict(set)
        for row in stuck:
            if highest.get((row.bill_id, row.entry_kind), row.bill_version) > row.bill_version:
                out[row.bill_version].add((row.bill_id, row.entry_kind))
        return out

    def _found(self, row: models.Posting, hit: dict[str, Any]) -> None:
        row.status = PostingStatus.POSTED
        row.posted_at = datetime.now(UTC)
        row.run_id = self.run_id  # the run that found it in e-conomic counts it (as on main, for the report)
        if hit["booked"]:  # booked by the accountant since: its voucher stays, its journal entry is gone
            row.voucher_number = hit.get("voucherNumber")
            row.entry_number = None
            self.result.counts["recovered_booked"] += 1
        else:
            row.voucher_number = (hit.get("voucher") or {}).get("voucherNumber")
            row.entry_number = hit.get("journalEntryNumber")
            row.accounting_year = (hit.get("accountingYear") or {}).get("year", row.accounting_year)
        if row.entry_kind == "invoice":  # its PDF is still to be attached
            row.attachment = Attachment.PENDING if row.payload.get("has_document") else Attachment.NONE
        self.result.counts["recovered"] += 1
        self.result.counts[f"{row.entry_kind}s_booked"] += 1

    # ------------------------------------------------------------------ 2. changes after booking
    def withdraw_and_replace(self, work: Work) -> list[Planned]:
        """Retire booked entries whose bill changed or went away; returns the planned rows still to post."""
        live, withdrawn_bills = work.live, work.withdrawn
        planned, stale = newest_only(work.planned, live)
        held: set[int] = set()
        to_retire: list[tuple[models.Posting, Planned | None]] = []
        for row in planned:
            old = live.get((row.bill_id, row.kind))
            if old is not None and old.id != row.id:
                to_retire.append((old, row))
        for (bill_id, _kind), old in live.items():
            if bill_id in withdrawn_bills:
                to_retire.append((old, None))
        if not to_retire and not withdrawn_bills and not stale:  # the usual night: nothing to write
            return planned
        with self._transaction() as sess:
            if stale:  # an overlapping run planned two versions of an entry: only the newest may go out
                sess.execute(
                    update(models.Posting)
                    .where(models.Posting.id.in_([r.id for r in stale]), models.Posting.status == PostingStatus.PLANNED)
                    .values(status=PostingStatus.SUPERSEDED)
                    .execution_options(synchronize_session=False)
                )
                self.result.counts["superseded"] += len(stale)
            for old, _new in to_retire:
                sess.add(old)  # read by :func:`read_work`; its changes below are written here
            for old, new in to_retire:
                # still a draft? One recovered from the booked entries has no journal entry number; one that
                # is no longer among the drafts, or that the DELETE no longer finds, was booked meanwhile
                # (the accountant may book the journal at any moment): a review item, never "gone"
                still_draft = (
                    old.entry_number is not None
                    and self.economic.entry(old.journal_number, old.entry_number) is not None
                )
                if still_draft and old.entry_number is not None:
                    still_draft = self.economic.delete_entry(
                        old.journal_number, old.entry_number, f"del-{old.idempotency_key}"
                    )
                if still_draft:
                    old.status = PostingStatus.SUPERSEDED if new is not None else PostingStatus.WITHDRAWN
                    old.run_id = self.run_id  # the run that deleted the draft counts it (as on main, for the report)
                    self.result.counts["replaced" if new is not None else "withdrawn"] += 1
                else:
                    version = new.bill_version if new is not None else old.bill_version
                    message = (
                        f"{old.entry_kind} of bill {old.bill_id} is booked in e-conomic (voucher "
                        f"{old.accounting_year}-{old.voucher_number}) but the bill "
                        f"{'changed' if new is not None else 'was deleted or marked duplicate'} in Roger: "
                        "reverse it by hand"
                    )
                    self._review(sess, old.bill_id, version, old.entry_kind, message)
                    if new is not None:
                        held.add(new.id)
                    else:
                        old.status = PostingStatus.WITHDRAWN
                    self.result.counts["review"] += 1
            if held:
                sess.execute(
                    update(models.Posting)
                    .where(models.Posting.id.in_(sorted(held)))
                    .values(status=PostingStatus.REVIEW)
                )
            # still to withdraw (a newer version may have come): one statement, not one per bill
            states.move(
                sess,
                [(self.aid, bill) for bill in sorted(withdrawn_bills)],
                BillState.WITHDRAWN,
                since=[BillState.WITHDRAW],
            )
        retired = {
            old.id for old, _new in to_retire if old.status in (PostingStatus.SUPERSEDED, PostingStatus.WITHDRAWN)
        }
        if retired:  # a draft deleted before its PDF went up (found by recovery in this load) gets none
            self.to_attach = [item for item in self.to_attach if item[0] not in retired]
        return [p for p in planned if p.id not in held]

    def _review(self, sess: Session, bill_id: str, version: int, kind: str, message: str) -> None:
        exists = sess.scalar(
            select(models.ReviewItem).where(
                models.ReviewItem.agreement_id == self.aid,
                models.ReviewItem.bill_id == bill_id,
                models.ReviewItem.bill_version == version,
                models.ReviewItem.entry_kind == kind,
            )
        )
        if exists is None:
            sess.add(
                models.ReviewItem(
                    agreement_id=self.aid,
                    bill_id=bill_id,
                    bill_version=version,
                    entry_kind=kind,
                    message=message,
                    created_at=datetime.now(UTC),
                )
            )

    # ------------------------------------------------------------------ 3. suppliers
    def create_suppliers(self, planned: list[Planned]) -> None:
        counts, unsaved = self.result.counts, self.suppliers_unsaved
        suppliers.create_missing(self._transaction, self.ctx, self.economic, planned, counts, unsaved, marks=self.marks)

    # ------------------------------------------------------------------ 4. vouchers
    def post_planned(self, planned: list[Planned]) -> None:
        by_journal: dict[int, list[Planned]] = defaultdict(list)
        for row in planned:
            by_journal[row.journal].append(row)
        size = batch_size()
        # journals with invoices first: a payment whose invoice e-conomic refuses is held back, not posted alone
        for journal, rows in sorted(by_journal.items(), key=lambda item: all(r.kind != "invoice" for r in item[1])):
            for start in range(0, len(rows), size):
                self._post_batch(journal, rows[start : start + size])

    def _post_batch(self, journal: int, rows: list[Planned]) -> None:
        posting = models.Posting
        waiting = [r for r in rows if r.kind == "payment" and r.bill_id in self.refused]
        if waiting:  # their invoices were refused earlier in this load
            self._hold(waiting)
            rows = [r for r in rows if r not in waiting]
            if not rows:
                return
        # marked before the call: a crash leaves rows that say what to look for (and the transaction records the
        # suppliers these vouchers name, and the vouchers posted before them)
        with self._transaction() as sess:
            if self.owner and not still_held(sess, self.aid, self.owner):
                raise IntegrationError(f"agreement {self.aid}: this load lost its lease; another run may hold it")
            # still planned as read at the start of this load? an overlapping run (a backfill's validation)
            # may have re-planned a row since: such a row waits for the next load, with its new content
            # (one statement: rows still planned with the content read are marked, and say so)
            key = _batch_key(self.aid, journal, rows)
            as_read = tuple_(posting.id, posting.payload_hash).in_([(r.id, r.payload_hash) for r in rows])
            marked = set(
                sess.scalars(
                    update(posting)
                    .where(as_read, posting.status == PostingStatus.PLANNED)
                    .values(status=PostingStatus.POSTING, batch_key=key, sent_at=datetime.now(UTC), run_id=self.run_id)
                    .returning(posting.id)
                    .execution_options(synchronize_session=False)
                )
            )
            changed = [r for r in rows if r.id not in marked]
            if changed:
                log.info(
                    "agreement %s: %d entries were re-planned during this load; they wait for the next one",
                    self.aid,
                    len(changed),
                )
                self.result.counts["replanned_meanwhile"] += len(changed)
                rows = [r for r in rows if r.id in marked]
                if rows:  # the batch key names exactly the vouchers sent
                    key = _batch_key(self.aid, journal, rows)
                    sess.execute(
                        update(posting)
                        .where(posting.id.in_([r.id for r in rows]))
                        .values(batch_key=key)
                        .execution_options(synchronize_session=False)
                    )
        if not rows:
            return
        vouchers = []
        for row in rows:
            voucher = _voucher(row.payload)
            vendor = row.payload.get("vendor") or {}
            if vendor.get("how") == "create":
                number = self.ctx.supplier_links.get(vendor["key"])
                for items in voucher["entries"].values():
                    for item in items:
                        item["supplier"] = {"supplierNumber": number}
            vouchers.append(voucher)
        try:
            created = self.economic.post_vouchers(journal, vouchers, key)
        except ValidationRejected as exc:
            self._rejected(journal, rows, exc)
            return
        now = datetime.now(UTC)
        done = []
        for row, voucher in zip(rows, created, strict=True):
            entries = voucher.get("entries", {})
            items = entries.get("supplierInvoices") or entries.get("supplierPayments") or [{}]
            done.append(
                {
                    "row_id": row.id,
                    "sent_key": key,
                    "posted_at": now,
                    "voucher_number": voucher.get("voucherNumber"),
                    "accounting_year": (voucher.get("accountingYear") or {}).get("year", row.year),
                    "entry_number": items[0].get("journalEntryNumber"),
                    "attachment": Attachment.PENDING
                    if row.kind == "invoice" and row.payload.get("has_document")
                    else Attachment.NONE,
                }
            )
            if done[-1]["attachment"] == Attachment.PENDING:
                self.to_attach.append(
                    (row.id, row.bill_id, journal, done[-1]["accounting_year"], done[-1]["voucher_number"])
                )
            self.result.counts[f"{row.kind}s_booked"] += 1
        self.posted_unsaved += done  # recorded in the load's next transaction (:meth:`_transaction`)
        if {r.bill_id for r in rows} & self.work_refused:
            with self._transaction() as sess:
                self._release_refusals(sess, rows, now)

    def _release_refusals(self, sess: Session, posted: list[Planned], now: datetime) -> None:
        """Entries refused on an earlier run are in now: their records are released, and so is the record of a
        payment its invoice held back once that invoice is in (the cause is gone; the payment, if the bill
        still has one, goes in with it or is judged by its own rules)."""
        quarantine = models.Quarantine
        refused = [(r.bill_id, r.kind) for r in posted if r.bill_id in self.work_refused]
        invoices = [bill for bill, kind in refused if kind == "invoice"]
        sess.execute(
            update(quarantine)
            .where(
                quarantine.agreement_id == self.aid,
                quarantine.released_at.is_(None),
                (
                    quarantine.rule.in_(sorted(LOADER_RULES))
                    & tuple_(quarantine.bill_id, quarantine.entry_kind).in_(sorted(set(refused)))
                )
                | ((quarantine.rule == "invoice_rejected") & quarantine.bill_id.in_(sorted(set(invoices) or {""}))),
            )
            .values(released_at=now, release_reason=f"posted to e-conomic in run {self.run_id}")
            .execution_options(synchronize_session=False)
        )

    def _rejected(self, journal: int, rows: list[Planned], exc: ValidationRejected) -> None:
        """e-conomic refused the batch: quarantine the named vouchers, then post the rest again once recovery has
        ruled out that any of them was created (that a refused batch creates nothing is assumed, not documented).

        Each refused voucher's quarantine record (and its ledger row's error) carries e-conomic's error codes
        and messages for it. A refused invoice holds its bill's payment back (a payment without its invoice
        cannot be settled): ``held``, with the invoice's reasons, until both go in together on a later run.
        """
        reasons: dict[int, list[str]] = defaultdict(list)
        for path, code, message, value in exc.fields:
            index = path[1 : path.index("]")] if path.startswith("[") else "0"
            if index.isdigit() and int(index) < len(rows):
                where = path[path.index("]") + 1 :].lstrip(".") if path.startswith("[") else path
                shown = f" (value {value!r})" if value is not None else ""
                reasons[int(index)].append(f"{code} {where}: {message}{shown}".strip())
        if not reasons:
            reasons = {i: [str(exc)] for i in range(len(rows))}
        posting = models.Posting
        rejected = [(row, "; ".join(reasons[i])[:1900]) for i, row in enumerate(rows) if i in reasons]
        self.refused |= {row.bill_id for row, _why in rejected if row.kind == "invoice"}
        rest = [row for i, row in enumerate(rows) if i not in reasons]
        waiting = [row for row in rest if row.kind == "payment" and row.bill_id in self.refused]
        rest = [row for row in rest if row not in waiting]
        with self._transaction() as sess:
            now = datetime.now(UTC)
            for row, why in rejected:
                self.why_refused.setdefault(row.bill_id, why)
                self._quarantine(
                    sess,
                    row,
                    "economic_rejected",
                    f"e-conomic rejected the {row.kind} of bill {row.bill_id}: {why}",
                    now,
                )
                sess.execute(
                    update(posting)
                    .where(posting.id == row.id)
                    .values(status=PostingStatus.REJECTED, batch_key=None, error=why)
                    .execution_options(synchronize_session=False)
                )
                self.result.counts["rejected"] += 1
            if rest:  # left ``posting``: e-conomic does not document that a refused batch created none of it
                sess.execute(
                    update(posting).where(posting.id.in_([r.id for r in rest])).values(status=PostingStatus.POSTING)
                )
        if waiting:
            self._hold(waiting, marked=True)
        if rest:  # looked for in e-conomic first (drafts and booked entries); those not found are posted again
            self.recover()
            self._post_batch(journal, rest)

    def _hold(self, rows: list[Planned], marked: bool = False) -> None:
        """Payments held back because e-conomic refused their invoice in this load (``marked``: already
        ``posting``)."""
        posting = models.Posting
        with self._transaction() as sess:
            now = datetime.now(UTC)
            for row in rows:
                why = self.why_refused.get(row.bill_id, "see the invoice's quarantine record")
                message = (f"payment of bill {row.bill_id} is held back: e-conomic rejected its invoice: {why}")[:2000]
                self._quarantine(sess, row, "invoice_rejected", message, now)
                sess.execute(
                    update(posting)
                    .where(
                        posting.id == row.id,
                        posting.status == (PostingStatus.POSTING if marked else PostingStatus.PLANNED),
                    )
                    .values(status=PostingStatus.HELD, batch_key=None, error=message[:1900])
                    .execution_options(synchronize_session=False)
                )
                self.result.counts["held"] += 1

    def _quarantine(self, sess: Session, row: Planned, rule: str, message: str, now: datetime) -> None:
        """One open record per entry and rule: a refusal repeated on a later run touches it."""
        quarantine = models.Quarantine
        open_row = sess.scalar(
            select(quarantine).where(
                quarantine.agreement_id == self.aid,
                quarantine.bill_id == row.bill_id,
                quarantine.entry_kind == row.kind,
                quarantine.rule == rule,
                quarantine.released_at.is_(None),
            )
        )
        if open_row is not None:
            open_row.last_seen, open_row.message, open_row.bill_version = now, message, row.bill_version
            open_row.run_id = self.run_id
            return
        sess.add(
            models.Quarantine(
                agreement_id=self.aid,
                bill_id=row.bill_id,
                bill_version=row.bill_version,
                entry_kind=row.kind,
                rule=rule,
                severity="stop",
                value=None,
                message=message,
                first_seen=now,
                last_seen=now,
                run_id=self.run_id,
            )
        )

    # ------------------------------------------------------------------ 5. attachments
    def attach_documents(self) -> None:
        """Upload the PDFs of posted invoices (those read at the start and those posted by this load)."""
        from roger_economic.masterdata import has_scanning

        if not self.to_attach:
            return
        if not has_scanning(self.ctx.snapshots):
            with self._transaction() as sess:
                skipped = cast(
                    CursorResult,
                    sess.execute(
                        update(models.Posting)
                        .where(
                            models.Posting.agreement_id == self.aid,
                            models.Posting.status == PostingStatus.POSTED,
                            models.Posting.attachment == Attachment.PENDING,
                        )
                        .values(attachment=Attachment.SKIPPED)
                    ),
                ).rowcount
            if skipped:
                self.result.counts["attachments_skipped"] += skipped
            return
        for row_id, bill_id, journal, year, voucher in sorted(self.to_attach):
            if voucher is not None:
                self._attach_one(row_id, bill_id, journal, year, voucher, self.attached_unsaved)

    def _attach_one(
        self, row_id: int, bill_id: str, journal: int, year: str, voucher: int, attached: list[int]
    ) -> None:
        pdf = self.roger.document(bill_id)
        state = Attachment.TOO_LARGE
        if fits_one_request(pdf):
            raw = f"{self.aid}|{bill_id}|{journal}|{year}|{voucher}"
            key = "ra-" + hashlib.sha256(raw.encode()).hexdigest()[:40]
            # ``exists``: attached by an earlier try whose answer was lost: nothing is added twice
            outcome = self.economic.attach(journal, year, voucher, pdf, f"{bill_id}.pdf", key)
            state = Attachment.TOO_LARGE if outcome == "too_large" else Attachment.ATTACHED
        self.result.counts[f"attachments_{state}"] += 1
        if state == Attachment.ATTACHED:
            attached.append(row_id)
            if len(attached) >= ATTACHED_WRITE_EVERY:
                self._mark_attached(attached)
            return
        with self._transaction() as sess:
            row = sess.get_one(models.Posting, row_id)
            row.attachment = state
            self._review(
                sess,
                bill_id,
                row.bill_version,
                "invoice",
                f"document of bill {bill_id} is {len(pdf)} bytes, over e-conomic's 9 MB per upload: "
                f"the entry is booked (voucher {year}-{voucher}) without it; attach it by hand",
            )
            self.result.counts["review"] += 1
        log.warning("agreement %s: document of bill %s is too large to attach (%d bytes)", self.aid, bill_id, len(pdf))

    def _mark_attached(self, row_ids: list[int]) -> None:
        """Record attachments a few at a time: a commit per upload would cost more than the upload.

        If the process dies before this, the next run uploads again and e-conomic answers that the voucher
        already has its attachment (or the idempotency key replays the first answer): nothing is added twice.
        """
        if not row_ids:
            return
        with self._transaction() as sess:
            records.save_attached(sess, row_ids)
        row_ids.clear()
