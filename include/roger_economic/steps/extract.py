"""Step 2, extract: every bill changed in the night's window staged, newest version first.

Staged page by page (never all held), each record judged against the Roger contract first; a record
that cannot be held per bill is named, and its agreement's outcome is ``incomplete``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update

from roger_economic import agreement_status, states
from roger_economic.credentials import Endpoints
from roger_economic.db import in_chunks, models, session
from roger_economic.errors import AgreementStopped, AuthError, RecordsUnusable
from roger_economic.http import Calls
from roger_economic.roger.client import RogerClient
from roger_economic.states import BillState, Outcome
from roger_economic.steps.fanout import LOAD_THREADS, again_on_race, each, settings_of

if TYPE_CHECKING:
    from roger_economic.model import Window

log = logging.getLogger(__name__)

HELD_AT_MOST = 50_000  # staged versions a group reads ahead; a window holding more is compared page by page


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
    now = datetime.now(UTC)
    staged_bill = models.StagedBill
    with session() as sess:
        held: dict[str, int] = {
            bill_id: version
            for chunk in in_chunks([b.get("id") for b in bills if isinstance(b.get("id"), str)])
            for bill_id, version in sess.execute(
                select(staged_bill.bill_id, staged_bill.version).where(
                    staged_bill.agreement_id == aid, staged_bill.bill_id.in_(chunk)
                )
            )
        }
        writes: dict[str, dict[str, Any]] = {}  # bill id → its newest row; known ones updated, new ones inserted
        for bill in bills:
            bill_id, version = bill.get("id"), bill.get("version")
            if not isinstance(bill_id, str) or not isinstance(version, int):
                counts["malformed"] += 1
                log.warning("agreement %s: a Roger record without id/version was skipped", aid)
                continue
            have = writes[bill_id]["version"] if bill_id in writes else held.get(bill_id)
            if have is not None and have >= version:
                counts["unchanged"] += 1
                continue
            counts["staged"] += 1
            if judge is not None:
                bill = judge(bill)
            writes[bill_id] = {
                "agreement_id": aid,
                "bill_id": bill_id,
                "version": version,
                "payload": bill,
                "updated_at": str(bill.get("updated_at"))[:40],
                "staged_at": now,
                "run_id": run_id,
                "search_text": models.bill_search_text(bill),
            }
        fresh = [{**row, "state": BillState.NEW} for bill_id, row in writes.items() if bill_id not in held]
        changed = [row for bill_id, row in writes.items() if bill_id in held]
        if fresh:  # one multi-row INSERT: a bill enters the diagram as new
            sess.execute(insert(staged_bill), fresh)
        if changed:  # one executemany by primary key; a newer version starts again from new
            sess.execute(update(staged_bill), changed)
            states.move(sess, [(aid, row["bill_id"]) for row in changed], BillState.NEW, since=states.EVERY_STATE)
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
                    counts = stage_page(aid, bills, run_id, counts)
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
