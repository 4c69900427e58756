"""Step 2, extract: every bill changed in the night's window staged, newest version first.

Staged page by page (never all held), each record judged against the Roger contract first; a record
that cannot be held per bill is named, and its agreement's outcome is ``incomplete``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, bindparam, insert, select, update

from roger_economic import agreement_status, states
from roger_economic.credentials import Endpoints
from roger_economic.db import in_chunks, models, session
from roger_economic.errors import (
    AgreementStopped,
    AuthError,
    IntegrationError,
    RecordsUnusable,
    database_error,
    scrub,
)
from roger_economic.http import Calls
from roger_economic.roger.client import RogerClient
from roger_economic.states import BillState, Outcome
from roger_economic.steps.fanout import LOAD_THREADS, again_on_race, each, settings_of

if TYPE_CHECKING:
    from roger_economic.model import Window

log = logging.getLogger(__name__)

HELD_AT_MOST = 50_000  # staged versions a group reads ahead; a window holding more is compared page by page


STAGE_TOGETHER = 16  # pages written in one transaction at most (a group's threads bound it first: 7 of 8 wait)
STAGE_WAIT = 30.0  # seconds a page waits for a write to take it before it is staged on its own


def _staged_rows(
    aid: str,
    bills: list[dict[str, Any]],
    held: dict[tuple[str, str], int],
    writes: dict[tuple[str, str], dict[str, Any]],
    counts: Counter,
    run_id: str,
    judge: Callable[[dict[str, Any]], dict[str, Any]] | None,
) -> None:
    """Put in ``writes`` the row of each bill of the page newer than what is staged (``held``) or written
    before it in the same transaction; count the rest as unchanged, the records without id/version as malformed."""
    now = datetime.now(UTC)
    for bill in bills:
        bill_id, version = bill.get("id"), bill.get("version")
        if not isinstance(bill_id, str) or not isinstance(version, int):
            counts["malformed"] += 1
            log.warning("agreement %s: a Roger record without id/version was skipped", aid)
            continue
        written = writes.get((aid, bill_id))
        have = written["version"] if written is not None else held.get((aid, bill_id))
        if have is not None and have >= version:
            counts["unchanged"] += 1
            continue
        counts["staged"] += 1
        if judge is not None:
            bill = judge(bill)
        writes[(aid, bill_id)] = {
            "agreement_id": aid,
            "bill_id": bill_id,
            "version": version,
            "payload": bill,
            "updated_at": str(bill.get("updated_at"))[:40],
            "staged_at": now,
            "run_id": run_id,
            "search_text": models.bill_search_text(bill),
        }


def _stage_pages(
    pages: list[tuple[str, list[dict[str, Any]], Counter]],
    run_id: str,
    judge: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> None:
    """Stage pages (``(agreement, bills, counts)``; each page's ``counts`` counted up) in one transaction: the
    staged versions read once per 500 bill ids, one multi-row INSERT of the new bills, one executemany of the
    newer versions.

    Each statement takes its rows in key order, and a newer version replaces only an older one, the bill then
    ``new`` again in the same statement: what an overlapping run staged since the read here (the same version
    or a newer one) is kept as it is, its state too (versions only move forward).
    """
    staged_bill = models.StagedBill
    aids = sorted({aid for aid, _bills, _counts in pages})
    ids = sorted({b["id"] for _aid, bills, _counts in pages for b in bills if isinstance(b.get("id"), str)})
    with session() as sess:
        held: dict[tuple[str, str], int] = {
            (aid, bill_id): version
            for chunk in in_chunks(ids)
            for aid, bill_id, version in sess.execute(
                select(staged_bill.agreement_id, staged_bill.bill_id, staged_bill.version).where(
                    staged_bill.agreement_id.in_(aids), staged_bill.bill_id.in_(chunk)
                )
            )
        }
        writes: dict[tuple[str, str], dict[str, Any]] = {}  # (agreement, bill) → its newest row
        for aid, bills, counts in pages:
            _staged_rows(aid, bills, held, writes, counts, run_id, judge)
        fresh = [{**writes[key], "state": BillState.NEW} for key in sorted(writes) if key not in held]
        changed = [writes[key] for key in sorted(writes) if key in held]
        if fresh:  # one multi-row INSERT: a bill enters the diagram as new
            sess.execute(insert(staged_bill), fresh)
        if changed:  # one executemany; a newer version starts again from new, in the same statement
            sess.connection().execute(_NEWER, [_newer_params(r) for r in changed])


_TABLE = cast(Table, models.StagedBill.__table__)
_WRITTEN = ("version", "payload", "updated_at", "staged_at", "run_id", "search_text")  # what a newer version sets
states.check(states.EVERY_STATE, BillState.NEW)  # the arrows the statement below takes, from the diagram
_NEWER = (  # a staged bill's newer version, written only over an older one, and the bill new again
    update(_TABLE)
    .where(
        _TABLE.c.agreement_id == bindparam("key_agreement"),
        _TABLE.c.bill_id == bindparam("key_bill"),
        _TABLE.c.version < bindparam("key_version"),
    )
    .values({**{name: bindparam(name) for name in _WRITTEN}, "state": str(BillState.NEW)})
)


def _newer_params(row: dict[str, Any]) -> dict[str, Any]:
    key = {"key_agreement": row["agreement_id"], "key_bill": row["bill_id"], "key_version": row["version"]}
    return {**key, **{name: row[name] for name in _WRITTEN}}


def stage(
    aid: str,
    bills: list[dict[str, Any]],
    run_id: str,
    counts: Counter,
    judge: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Keep the newest version of each bill; ``judge`` turns a record into its stored payload.

    A bill's ``version`` grows by one on every change (Roger's contract), so a copy whose version is
    not newer than the staged one changes nothing, and the staged bodies need not be read back. Only
    the records written are judged against the Roger contract: a quiet night judges nothing.
    """
    _stage_pages([(aid, bills, counts)], run_id, judge)
    return dict(counts)


def stage_page(aid: str, bills: list[dict[str, Any]], run_id: str, counts: Counter) -> Counter:
    """One page staged in its own transaction (again when an overlapping run wrote the same rows first);
    the records written are judged against the Roger contract as they are staged."""
    from roger_economic.roger import contract

    return Counter(
        again_on_race(
            lambda: stage(aid, bills, run_id, Counter(counts), judge=contract.judged), f"agreement {aid}: staging"
        )
    )


@dataclass(eq=False)  # one page is one handing-over, whatever it holds
class _Page:
    aid: str
    bills: list[dict[str, Any]]
    counts: Counter
    woken: threading.Event = field(default_factory=threading.Event)  # written, handed back, or its turn to write
    staged: Counter | None = None
    error: BaseException | None = None
    alone: bool = False  # to be staged by its own thread, in a transaction of its own


class GroupStaging:
    """The pages a group's agreements read, staged many in one transaction instead of one each.

    An agreement's thread hands its page over and waits until it is staged, so nothing is counted or
    extracted before it is in the table. A thread that finds no write under way writes its own page and those
    handed over before it starts (:data:`STAGE_TOGETHER` at most); the pages handed over meanwhile wait, and
    the first of them writes them next. No page waits for a timer: pages come together only while a write is
    under way, and a page that comes alone is staged as before, in its own transaction. A write of several
    pages that fails (an overlapping run wrote the same rows first, the database refused one page) hands each
    page back to its own thread, which stages it alone: one page's fault, and the time it takes, stay its own
    agreement's. A page that no write has taken after :data:`STAGE_WAIT` seconds is staged alone as well (one
    that a write has taken waits for that write), and while a write has run longer than that, every page handed
    over is staged alone at once: a write that hangs holds the pages it took, never the group.
    """

    def __init__(self, run_id: str, most: int = STAGE_TOGETHER) -> None:
        self.run_id = run_id
        self.most = most
        self._lock = threading.Lock()
        self._waiting: list[_Page] = []
        self._writing = False  # a write is under way, or a waiting page has been given the turn to write next
        self._turn: _Page | None = None
        self._began: float | None = None  # when the write under way began

    def stage(self, aid: str, bills: list[dict[str, Any]], counts: Counter) -> Counter:
        """``counts`` counted up by the page (staged, unchanged, malformed), once the page is in the table."""
        page = _Page(aid, bills, Counter(counts))
        leads = False
        with self._lock:
            if self._began is not None and time.monotonic() - self._began > STAGE_WAIT:
                page.alone = True  # the write under way is stuck: not waited for
            else:
                self._waiting.append(page)
                leads = not self._writing
                self._writing = True
                if leads:
                    self._turn = page
        if not page.alone and not leads and not page.woken.wait(STAGE_WAIT):
            with self._lock:  # not taken yet (nor given the turn): staged alone
                if not page.woken.is_set() and self._turn is not page and page in self._waiting:
                    self._waiting.remove(page)
                    page.alone = True
            if not page.alone:
                page.woken.wait()  # taken by a write under way, or its turn just came
        if not page.alone and page.staged is None and page.error is None:  # its turn: it is the first waiting
            self._write()
        if page.alone:
            return stage_page(page.aid, page.bills, self.run_id, page.counts)
        if page.error is not None:
            raise page.error
        assert page.staged is not None
        return page.staged

    def _write(self) -> None:
        with self._lock:
            self._turn = None
            self._began = time.monotonic()
            batch, self._waiting = self._waiting[: self.most], self._waiting[self.most :]
        try:
            self._stage(batch)
        finally:
            with self._lock:
                self._began = None
                self._turn = self._waiting[0] if self._waiting else None
                self._writing = self._turn is not None
                after = self._turn
            for page in batch:
                if page.staged is None and page.error is None and not page.alone:  # not known to be staged
                    page.error = IntegrationError(f"agreement {page.aid}: staging was interrupted")
                page.woken.set()
            if after is not None:
                after.woken.set()  # the first page waiting writes the ones waiting now

    def _stage(self, batch: list[_Page]) -> None:
        from roger_economic.roger import contract

        if len(batch) > 1:
            pages = [(p.aid, p.bills, Counter(p.counts)) for p in batch]
            try:
                _stage_pages(pages, self.run_id, judge=contract.judged)
            except Exception as exc:  # handed back: each page staged alone by its own thread
                log.warning(
                    "staging %d pages together failed (%s); each is staged alone",
                    len(batch),
                    scrub(database_error(exc)),
                )
            else:
                for page, (_aid, _bills, counts) in zip(batch, pages, strict=True):
                    page.staged = counts
                return
            for page in batch:
                page.alone = True
            return
        (page,) = batch  # the writer's own: staged as before, while the pages handed over meanwhile wait
        try:
            page.staged = stage_page(page.aid, page.bills, self.run_id, page.counts)
        except Exception as exc:
            page.error = exc


def _judge_page(aid: str, page: list[Any], before: int, unusable: list[str]) -> list[dict[str, Any]]:
    """A page's records that can be held per bill (judged against the contract when staged); the ones that
    cannot are named in ``unusable`` (by their place in the walk, from 1) instead."""
    from roger_economic.roger import contract

    keep = []
    for offset, record in enumerate(page, start=before + 1):
        if contract.usable(record):
            keep.append(record)
        else:
            unusable.append(contract.named(record, offset))
            log.warning("agreement %s: Roger %s has no usable id/version; not staged", aid, unusable[-1])
    return keep


def _held_in_window(agreement_ids: list[str], window: Window) -> dict[tuple[str, str], int]:
    """The staged version of each bill of these agreements that Roger last changed in the window (a day's
    margin either side), read once for the group: what a rerun of the window finds already held.

    A hint, never the judge: a page whose every bill is held at its version or a newer one would change
    nothing (versions only move forward), so it is not staged at all; any other page is staged as always,
    compared with the table itself. An open window, or one holding more than :data:`HELD_AT_MOST` bills,
    gives no hint. ``updated_at`` is Roger's ISO text: whole days compare as text whatever its offset.
    """
    if not window.since or not window.before:
        return {}
    day = timedelta(days=1)
    low = (datetime.fromisoformat(window.since.replace("Z", "+00:00")) - day).date().isoformat()
    high = (datetime.fromisoformat(window.before.replace("Z", "+00:00")) + day).date().isoformat()
    staged = models.StagedBill
    held: dict[tuple[str, str], int] = {}
    with session() as sess:
        for chunk in in_chunks(agreement_ids):
            rows = sess.execute(
                select(staged.agreement_id, staged.bill_id, staged.version)
                .where(staged.agreement_id.in_(chunk), staged.updated_at >= low, staged.updated_at < high)
                .limit(HELD_AT_MOST + 1 - len(held))
            ).all()
            held.update(((aid, bill_id), version) for aid, bill_id, version in rows)
            if len(held) > HELD_AT_MOST:
                log.info("the window holds over %d staged bills: every page is compared with the table", HELD_AT_MOST)
                return {}
    return held


def _all_held(aid: str, bills: list[dict[str, Any]], held: dict[tuple[str, str], int]) -> bool:
    """Every bill of the page is staged at its version or a newer one (so staging it would change nothing)."""
    return all(
        isinstance(b.get("id"), str)
        and isinstance(b.get("version"), int)
        and held.get((aid, b["id"]), -1) >= b["version"]
        for b in bills
    )


def _advance_watermarks(agreement_ids: list[str], before: str) -> None:
    """Each agreement's extraction is complete up to ``before`` (for the whole group at once).

    Written after the agreements' bills are staged: a crash in between only makes the next run read
    the same days again, and staging a bill version twice changes nothing.
    """
    with session() as sess:
        agreement_status.write(sess, {aid: {"extracted_until": before} for aid in agreement_ids})


def extract(agreement_ids: list[str], window: Window, endpoints: Endpoints, run_id: str) -> dict[str, Any]:
    """Stage every bill changed in the window (newest version wins; an older or equal one changes nothing).

    The window starts no later than where the agreement's last complete extraction ended, so a night
    that failed (or never ran) leaves no gap for the next one to miss.
    """
    settings = settings_of(agreement_ids)
    with session() as sess:
        watermarks = dict(
            sess.execute(
                select(models.AgreementStatus.agreement_id, models.AgreementStatus.extracted_until).where(
                    models.AgreementStatus.agreement_id.in_(agreement_ids)
                )
            ).all()
        )
    held = _held_in_window(agreement_ids, window)
    staging = GroupStaging(run_id)

    def work(aid: str) -> dict[str, Any]:
        counts: Counter = Counter()
        mark = watermarks.get(aid)
        since = min(window.since, mark) if window.since and mark else window.since
        if since != window.since:
            log.info("agreement %s: catching up from %s, where its last complete extraction ended", aid, since)
        roger = RogerClient(
            endpoints.roger_base_url,
            settings[aid].roger_company_id,
            endpoints.token(settings[aid].roger_token_ref),
            Calls(aid),
        )
        unusable: list[str] = []
        try:
            try:
                for page in roger.bill_pages(since, window.before):  # staged page by page, never all held
                    bills = _judge_page(aid, page, counts["seen"], unusable)
                    counts["seen"] += len(page)
                    if _all_held(aid, bills, held):  # a rerun's page: no transaction at all
                        counts["unchanged"] += len(bills)
                        continue
                    counts = staging.stage(aid, bills, counts)
            except AuthError as exc:
                raise AgreementStopped(aid, f"Roger token rejected: {exc}") from None
        finally:
            roger.close()
        if unusable:
            raise RecordsUnusable(aid, unusable, dict(counts))
        return dict(counts)

    results = each(agreement_ids, work, run_id, "extract", threads=LOAD_THREADS)
    complete = [aid for aid, res in results.items() if res.get("outcome") == Outcome.OK]
    before = window.before
    if before and complete:
        again_on_race(lambda: _advance_watermarks(complete, before), "extraction watermarks")
    return results
