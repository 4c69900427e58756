"""The last records of a group's finished loads, written for many agreements in one transaction.

When one agreement's load ends, e-conomic has answered things the ledger does not hold yet: the vouchers of its
last batch (``posted``, their numbers), its last uploads (``attached``) and the suppliers it made. The load
also still holds its lease. One transaction per agreement for these was a third of a small agreement's load
transactions. Here they are collected from the group's threads and written by one thread every
:data:`WRITE_EVERY` seconds, with those agreements' leases given back in the same transaction: a finished
agreement's lease is free again about a second later, for a backfill waiting its turn.

Nothing is booked twice if the process dies before a write. Each of these records only follows an answer
that e-conomic already keeps, and the next load finds every answer there. Rows left ``posting`` are looked
up among the journal's drafts and booked entries before anything is posted again. Links left ``creating``
are looked up among the suppliers. An upload made again is answered as already attached. The leases lapse
with the process. The cost of a crash is the lookups of the agreements that finished in its last second,
besides those it was loading.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.orm import Session

from roger_economic.db import in_chunks, models
from roger_economic.errors import IntegrationError
from roger_economic.posting.leases import release_all
from roger_economic.states import Attachment, PostingStatus

log = logging.getLogger(__name__)

WRITE_EVERY = 1.0  # seconds between writes of the finished agreements' records


@dataclass
class Unsaved:
    """What one finished load has not written yet (see :class:`~roger_economic.posting.loader.Loader`)."""

    suppliers: dict[str, int] = field(default_factory=dict)  # vendor key → supplier number created
    posted: list[dict[str, Any]] = field(default_factory=list)  # rows of posted vouchers
    attached: list[int] = field(default_factory=list)  # ledger row ids whose PDF is uploaded


class RecordsUnwritten(IntegrationError):
    """The group's last write failed: these agreements' answers stay for the next load to look up, and their
    leases stay taken (they lapse, or are taken over once this process has ended)."""

    def __init__(self, agreement_ids: list[str], cause: BaseException) -> None:
        self.agreement_ids = agreement_ids
        named = ", ".join(agreement_ids[:20]) + (" …" if len(agreement_ids) > 20 else "")
        super().__init__(
            f"the last records of {len(agreement_ids)} agreement(s) could not be written "
            f"({type(cause).__name__}); the next load looks their answers up in e-conomic: {named}"
        )


class GroupRecords:
    """Collects :class:`Unsaved` from a group's loads; a thread of its own writes them with their leases.

    Use it as a context manager around the group's loads: leaving it writes what is left, and raises
    :class:`RecordsUnwritten` if that write fails (the task then fails; the next load finds the answers in
    e-conomic). A write that fails on the way is logged and tried again a second later with what came in
    since: no agreement's thread writes, so no agreement's outcome depends on a write of others' records
    (a write that keeps failing still holds every waiting lease until the group ends). Once closed,
    :meth:`add` refuses and the load writes its own records (an agreement that outlived its deadline and ends
    after its group).

    ``turns``: the lock the group's lease renewal holds too
    (:attr:`~roger_economic.posting.leases.KeptLeases.turns`). Both change many agreements' rows in one
    statement while the group's loads run, and could lock the same rows in different orders, which
    PostgreSQL would fail as a deadlock.
    """

    def __init__(
        self, session: Callable[[], Any], owner: str, turns: threading.Lock, every: float | None = None
    ) -> None:
        self._session, self._owner, self._turns = session, owner, turns
        self._every = WRITE_EVERY if every is None else every
        self._lock = threading.Lock()
        self._waiting: dict[str, Unsaved] = {}
        self._closed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="group-records", daemon=True)

    def __enter__(self) -> GroupRecords:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        with self._lock:
            self._closed = True
        self._stop.set()
        self._thread.join(timeout=60)
        try:
            self.write()
        except Exception as exc:
            with self._lock:
                unwritten = sorted(self._waiting)
            raise RecordsUnwritten(unwritten, exc) from exc

    def add(self, agreement_id: str, unsaved: Unsaved) -> bool:
        """Take a finished load's records, to be written within :data:`WRITE_EVERY` seconds; false once closed."""
        with self._lock:
            if self._closed:
                return False
            self._waiting[agreement_id] = unsaved
            return True

    def write(self) -> None:
        """Write every waiting record and give back those agreements' leases, in one transaction."""
        with self._turns:
            with self._lock:
                batch, self._waiting = self._waiting, {}
            if not batch:
                return
            try:
                with self._session() as sess:
                    save(sess, batch)
                    release_all(sess, sorted(batch), self._owner)
            except BaseException:
                with self._lock:  # written again with the next batch (nothing in it changes twice)
                    self._waiting = {**batch, **self._waiting}
                raise

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self.write()
            except Exception as exc:  # the database away for a moment: the records wait for the next write
                log.warning(
                    "writing %d finished loads' records failed (%s); trying again",
                    len(self._waiting),
                    type(exc).__name__,
                )


def save(sess: Session, unsaved: dict[str, Unsaved]) -> None:
    """The records of one or more agreements' loads, a statement per kind of record (``unsaved``: by agreement)."""
    save_suppliers(sess, {aid: u.suppliers for aid, u in unsaved.items() if u.suppliers})
    save_posted(sess, [row for u in unsaved.values() for row in u.posted])
    save_attached(sess, [row_id for u in unsaved.values() for row_id in u.attached])


def save_suppliers(sess: Session, created: dict[str, dict[str, int]]) -> None:
    """Suppliers made (agreement → vendor key → supplier number) written to their ``creating`` links."""
    rows = [{"aid": aid, "key": key, "number": number} for aid, made in created.items() for key, number in made.items()]
    if not rows:
        return
    table = cast(Table, models.SupplierLink.__table__)
    sess.execute(
        update(table)
        .where(
            table.c.agreement_id == bindparam("aid"),
            table.c.vendor_key == bindparam("key"),
            table.c.how == "creating",  # a link another run completed meanwhile keeps what it found
        )
        # when it was made: the report counts it in this run, also when an earlier run had marked it
        .values(supplier_number=bindparam("number"), how="created", created_at=datetime.now(UTC)),
        rows,
    )


def save_posted(sess: Session, done: list[dict[str, Any]]) -> None:
    """Posted vouchers' rows, one statement (executemany by primary key).

    Only rows still ``posting`` in the batch sent: written after the lease lapsed (an agreement past its
    deadline, a stopped task), the record must not undo what the run that took the agreement over found
    meanwhile (the rows recovered, superseded, booked by the accountant).
    """
    if not done:
        return
    table = cast(Table, models.Posting.__table__)
    sess.execute(
        update(table)
        .where(
            table.c.id == bindparam("row_id"),
            table.c.status == PostingStatus.POSTING,
            table.c.batch_key == bindparam("sent_key"),
        )
        .values(
            status=PostingStatus.POSTED,
            posted_at=bindparam("posted_at"),
            voucher_number=bindparam("voucher_number"),
            accounting_year=bindparam("accounting_year"),
            entry_number=bindparam("entry_number"),
            attachment=bindparam("attachment"),
        ),
        done,
    )


def save_attached(sess: Session, row_ids: list[int]) -> None:
    """Ledger rows whose PDF e-conomic holds now: only rows still ``posted`` (a row another run planned again
    meanwhile, its draft deleted by the accountant, waits for its own upload)."""
    posting = models.Posting
    for ids in in_chunks(row_ids):
        sess.execute(
            update(posting)
            .where(posting.id.in_(ids), posting.status == PostingStatus.POSTED)
            .values(attachment=Attachment.ATTACHED)
        )
