"""The steps the DAGs wire together, each for a *group* of agreements.

Why groups: the scheduler runs about 9 task instances a second and a Great
Expectations run costs the same for 1 bill or 10,000, so a nightly run over
hundreds of agreements maps one task per group, not per agreement. Inside a
group each agreement is handled on its own: its failure is recorded under its
name (``run_reports``) and the others go on; the load step fails at its end,
naming the agreements that failed, so Airflow's retry takes them again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from roger_economic import masterdata
from roger_economic.context import AgreementContext, Settings, load_contexts
from roger_economic.credentials import Endpoints
from roger_economic.db import PROJECT_ROOT, in_chunks, models, session
from roger_economic.economic.client import EconomicClient
from roger_economic.errors import AgreementStopped, AuthError, IntegrationError, scrub
from roger_economic.http import RetryPolicy
from roger_economic.roger.client import RogerClient

log = logging.getLogger(__name__)
T = TypeVar("T")

DATA_DOCS = PROJECT_ROOT / "var" / "data_docs"
GROUP_SIZE = int(os.environ.get("ROGER_ECONOMIC_GROUP_SIZE", "100"))
MAX_GROUPS = int(os.environ.get("ROGER_ECONOMIC_MAX_GROUPS", "25"))
LEASE_WAIT = float(os.environ.get("ROGER_ECONOMIC_LEASE_WAIT", "300"))
LOAD_THREADS = int(os.environ.get("ROGER_ECONOMIC_LOAD_THREADS", "8"))
LEASE_RENEW_AFTER = 600.0  # seconds: a group's up-front leases last 10 minutes; later, an agreement reads afresh
RECORD_EVERY = 25  # agreements' outcomes written to the run report per transaction
AGREEMENT_DEADLINE = 1800.0  # seconds one agreement's work in one step may take (ROGER_ECONOMIC_AGREEMENT_DEADLINE)


class AgreementsFailed(IntegrationError):
    def __init__(self, failures: dict[str, str]) -> None:
        self.failures = failures
        lines = "; ".join(f"{a}: {m}" for a, m in sorted(failures.items()))
        super().__init__(f"{len(failures)} agreement(s) failed: {lines}")


@dataclass(frozen=True)
class Window:
    since: str | None
    before: str | None

    def label(self) -> str:
        return f"[{self.since or '-∞'}, {self.before or 'now'})"


def groups(agreement_ids: list[str], size: int = GROUP_SIZE, max_groups: int = MAX_GROUPS) -> list[dict[str, Any]]:
    """Agreements in groups of about ``size``, each labelled by the agreements it holds (the mapped task's name).

    Groups grow beyond ``size`` rather than exceed ``max_groups`` mapped task groups: a readable grid
    is far smaller than Airflow's ``max_map_length`` (1024), and every task pays a fixed cost (a task
    process, a Great Expectations context and Data Docs, its sessions) of about a CPU-second. The
    agreements are spread evenly, so groups finish together (250 → 84 + 83 + 83, not 100 + 100 + 50).
    """
    if not agreement_ids:
        return []
    count = min(max_groups, -(-len(agreement_ids) // size))
    base, extra = divmod(len(agreement_ids), count)
    out = []
    start = 0
    for index in range(count):
        ids = agreement_ids[start : start + base + (1 if index < extra else 0)]
        start += len(ids)
        label = ids[0] if len(ids) == 1 else f"{ids[0]} … {ids[-1]} ({len(ids)})"
        out.append({"label": label, "agreements": ids})
    return out


def clients(
    settings: Settings,
    endpoints: Endpoints,
    policy: RetryPolicy | None = None,
    on_call: Callable[[str, str], None] | None = None,
) -> tuple[EconomicClient, RogerClient]:
    economic = EconomicClient(
        endpoints.economic_base_url,
        endpoints.app_secret,
        endpoints.token(settings.economic_token_ref),
        settings.id,
        policy,
        on_call,
    )
    roger = RogerClient(
        endpoints.roger_base_url,
        settings.roger_company_id,
        endpoints.token(settings.roger_token_ref),
        settings.id,
        policy,
        on_call,
    )
    return economic, roger


def _record_all(run_id: str, phase: str, results: dict[str, dict[str, Any]]) -> None:
    """One run-report row per agreement (``{agreement: {"outcome", "message"?, "finished_at"?, **counts}}``),
    one transaction."""
    now = datetime.now(UTC)
    with session() as sess:
        existing = {
            r.agreement_id: r
            for r in sess.scalars(
                select(models.RunReport).where(
                    models.RunReport.run_id == run_id,
                    models.RunReport.phase == phase,
                    models.RunReport.agreement_id.in_(list(results)),
                )
            )
        }
        for aid, res in results.items():
            row = existing.get(aid) or models.RunReport(run_id=run_id, agreement_id=aid, phase=phase)
            row.outcome, row.message = res["outcome"], res.get("message")
            row.finished_at = res.get("finished_at") or now
            row.counts = {k: v for k, v in res.items() if k not in ("outcome", "message", "finished_at")}
            sess.add(row)


def _settings(agreement_ids: list[str]) -> dict[str, Settings]:
    with session() as sess:
        rows = sess.scalars(select(models.Agreement).where(models.Agreement.id.in_(agreement_ids)))
        return {r.id: Settings.of(r) for r in rows}


def agreement_deadline() -> float:
    """How long one agreement's work in one step may take before it is failed and no longer waited for."""
    raw = os.environ.get("ROGER_ECONOMIC_AGREEMENT_DEADLINE")
    return float(raw) if raw else AGREEMENT_DEADLINE


def _each(
    agreement_ids: list[str],
    work: Callable[[str], dict[str, Any]],
    run_id: str,
    phase: str,
    threads: int = 1,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Run ``work`` per agreement; a failure is recorded under the agreement's name, never fatal here.

    Each agreement gets ``deadline`` seconds (``ROGER_ECONOMIC_AGREEMENT_DEADLINE``) from when its work
    starts: one that takes longer is recorded ``failed`` ("took longer than N s", ``timed_out``) and no
    longer waited for, so the others finish and the task ends (a thread cannot be stopped: it ends with
    the task's process, and a late answer no longer changes its line; the ledger makes an interrupted
    agreement safe to take up again).

    Outcomes are written to the run report every ``RECORD_EVERY`` agreements (and at the end), not one
    transaction each: one per agreement was a fifth of a no-op extract's CPU. A crash loses only the
    report lines of the last few agreements, which the task's retry writes again.
    """
    limit = agreement_deadline() if deadline is None else deadline
    buffered: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()
    started: dict[str, float] = {}
    lines: dict[str, dict[str, Any]] = {}  # each agreement's final line (its own result, or "took longer")

    def keep(aid: str, result: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        finished = {**result, "finished_at": datetime.now(UTC)}  # when this agreement finished, not the write
        with lock:
            if aid in lines:  # it ran out of time before (or its result came first): that line stands
                return aid, lines[aid]
            lines[aid] = result
            buffered[aid] = finished
            if len(buffered) < RECORD_EVERY:
                return aid, result
            batch = dict(buffered)
            buffered.clear()
        _record_all(run_id, phase, batch)
        return aid, result

    def one(aid: str) -> tuple[str, dict[str, Any]]:
        started[aid] = time.monotonic()
        try:
            return keep(aid, {"outcome": "ok", **work(aid)})
        except RecordsUnusable as exc:  # the rest of its bills are staged: incomplete, not failed
            log.error("agreement %s incomplete in %s: %s", aid, phase, exc)
            return keep(
                aid,
                {"outcome": "incomplete", "message": str(exc), **exc.counts, "unusable": exc.named[: exc.MAX_NAMED]},
            )
        except AgreementStopped as exc:
            log.error("agreement %s stopped in %s: %s", aid, phase, exc.reason)
            return keep(aid, {"outcome": "stopped", "message": exc.reason})
        except IntegrationError as exc:
            log.error("agreement %s failed in %s: %s", aid, phase, exc)
            return keep(aid, {"outcome": "failed", "message": str(exc)})
        except Exception as exc:  # an unforeseen fault in one agreement must not take the group down
            # its text may hold a token (an unforeseen error's message is nobody's to vouch for): scrubbed
            # before it is logged or stored; the traceback is logged as frames only, without values
            text = scrub(f"unexpected {type(exc).__name__}: {exc}")
            log.error(
                "agreement %s failed in %s: %s\n%s", aid, phase, text, "".join(traceback.format_tb(exc.__traceback__))
            )
            return keep(aid, {"outcome": "failed", "message": text})

    def overdue(aid: str) -> dict[str, Any] | None:
        """The agreement's "took longer" line, when it is past its deadline and has no line yet."""
        begun = started.get(aid)
        if begun is None or time.monotonic() - begun <= limit:
            return None
        with lock:
            if aid in lines:
                return None
        log.error("agreement %s failed in %s: took longer than %g s; the others go on", aid, phase, limit)
        result = {
            "outcome": "failed",
            "timed_out": True,
            "message": f"took longer than {limit:g} s in {phase}; stopped waiting for it",
        }
        return keep(aid, result)[1]

    results: dict[str, Any] = {}
    size = max(1, min(threads, len(agreement_ids)))
    pools = [ThreadPoolExecutor(max_workers=size)]
    try:
        futures = {pools[0].submit(one, aid): aid for aid in agreement_ids}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=min(1.0, max(limit / 4, 0.05)), return_when=FIRST_COMPLETED)
            for future in done:
                aid, result = future.result()
                results.setdefault(aid, result)
            late = {future: overdue(futures[future]) for future in pending}
            for future, line in late.items():
                if line is not None:
                    results[futures[future]] = line
                    pending.discard(future)
            queued = [f for f in pending if f.cancel()] if any(late.values()) else []
            if queued:  # not started yet: moved to a fresh pool, so the stuck threads hold no one back
                pools.append(ThreadPoolExecutor(max_workers=size))
                for future in queued:
                    pending.discard(future)
                    aid = futures.pop(future)
                    moved = pools[-1].submit(one, aid)
                    futures[moved] = aid
                    pending.add(moved)
        return {aid: results[aid] for aid in agreement_ids}
    finally:
        for pool in pools:  # an agreement past its deadline is not waited for
            pool.shutdown(wait=False, cancel_futures=True)
        with lock:
            rest = dict(buffered)
            buffered.clear()
        if rest:
            _record_all(run_id, phase, rest)


# ---------------------------------------------------------------------------- master data


def refresh_master_data(agreement_ids: list[str], endpoints: Endpoints, run_id: str) -> dict[str, Any]:
    settings = _settings(agreement_ids)

    def work(aid: str) -> dict[str, Any]:
        economic, roger = clients(settings[aid], endpoints)
        try:
            try:
                snaps = masterdata.fetch(economic, roger)
            except AuthError as exc:
                with session() as sess:
                    status = sess.get(models.AgreementStatus, aid) or models.AgreementStatus(agreement_id=aid)
                    status.api_access, status.master_data_error = False, str(exc)
                    sess.add(status)
                raise AgreementStopped(aid, f"token rejected: {exc}") from None
        finally:
            economic.close()
            roger.close()
        with session() as sess:
            masterdata.save(sess, aid, snaps)
            ctx = load_contexts(sess, [aid])[aid]
            row = sess.get_one(models.Agreement, aid)
            gaps = masterdata.mapping_gaps(row, ctx.categories, ctx.methods, snaps)
            if not masterdata.has_scanning(snaps):
                gaps.append(
                    {
                        "kind": "scanning_addon",
                        "item": "Indscanning",
                        "stops": "attachments" if not row.book_without_attachment else "nothing",
                        "message": "the e-conomic agreement lacks the scanning add-on (Indscanning): "
                        + (
                            "bills are booked without their PDF"
                            if row.book_without_attachment
                            else "bills wait until it is enabled or book_without_attachment is set"
                        ),
                    }
                )
            status = sess.get(models.AgreementStatus, aid) or models.AgreementStatus(agreement_id=aid)
            status.scanning_addon = masterdata.has_scanning(snaps)
            status.api_access = True
            status.mapping_gaps = gaps
            status.master_data_at = datetime.now(UTC)
            status.master_data_error = None
            sess.add(status)
        return {
            "accounts": len(snaps["accounts"]),
            "suppliers": len(snaps["suppliers"]),
            "categories": len(snaps["roger_categories"]),
            "gaps": len(gaps),
        }

    return _each(agreement_ids, work, run_id, "masterdata", threads=LOAD_THREADS)


def _again_on_race(write: Callable[[], T], what: str, attempts: int = 3) -> T:
    """Run ``write`` again when an overlapping run (a backfill) wrote the same unique rows first."""
    for attempt in range(1, attempts + 1):
        try:
            return write()
        except IntegrityError:
            if attempt == attempts:
                raise
            log.info("%s: another run wrote the same rows at the same moment; trying again", what)
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------- extract


def _stage(
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
                "state": "new",
                "staged_at": now,
                "run_id": run_id,
                "search_text": models.bill_search_text(bill),
            }
        fresh = [row for bill_id, row in writes.items() if bill_id not in held]
        changed = [row for bill_id, row in writes.items() if bill_id in held]
        if fresh:  # one multi-row INSERT
            sess.execute(insert(staged_bill), fresh)
        if changed:  # one executemany by primary key
            sess.execute(update(staged_bill), changed)
    return dict(counts)


def _stage_page(aid: str, bills: list[dict[str, Any]], run_id: str, counts: Counter) -> Counter:
    """One page staged in its own transaction (again when an overlapping run wrote the same rows first);
    the records written are judged against the Roger contract as they are staged."""
    from roger_economic.roger import contract

    return Counter(
        _again_on_race(
            lambda: _stage(aid, bills, run_id, Counter(counts), judge=contract.judged), f"agreement {aid}: staging"
        )
    )


class RecordsUnusable(IntegrationError):
    """Roger records without a usable id or version: they cannot be held per bill, so they are named.

    The agreement's other bills are staged; its extract outcome is ``incomplete`` (named in the run
    report and its alert) and its watermark stays, so the records are read (and named) again until
    Roger sends them whole.
    """

    MAX_NAMED = 10

    def __init__(self, agreement: str, named: list[str], counts: dict[str, Any]) -> None:
        self.named, self.counts = named, {**counts, "unusable_records": len(named)}
        shown = ", ".join(named[: self.MAX_NAMED]) + (
            f" and {len(named) - self.MAX_NAMED} more" if len(named) > self.MAX_NAMED else ""
        )
        super().__init__(f"{len(named)} Roger record(s) without a usable id or version were not staged: {shown}")


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


def _advance_watermarks(agreement_ids: list[str], before: str) -> None:
    """Each agreement's extraction is complete up to ``before`` (for the whole group at once).

    Written after the agreements' bills are staged: a crash in between only makes the next run read
    the same days again, and staging a bill version twice changes nothing.
    """
    status = models.AgreementStatus
    with session() as sess:
        for chunk in in_chunks(agreement_ids):
            known = set(sess.scalars(select(status.agreement_id).where(status.agreement_id.in_(chunk))))
            sess.execute(
                update(status)
                .where(
                    status.agreement_id.in_(chunk),
                    or_(status.extracted_until.is_(None), status.extracted_until < before),
                )
                .values(extracted_until=before)
                .execution_options(synchronize_session=False)
            )
            sess.add_all(
                models.AgreementStatus(agreement_id=aid, extracted_until=before) for aid in chunk if aid not in known
            )


def extract(agreement_ids: list[str], window: Window, endpoints: Endpoints, run_id: str) -> dict[str, Any]:
    """Stage every bill changed in the window (newest version wins; an older or equal one changes nothing).

    The window starts no later than where the agreement's last complete extraction ended, so a night
    that failed (or never ran) leaves no gap for the next one to miss.
    """
    settings = _settings(agreement_ids)
    with session() as sess:
        watermarks = dict(
            sess.execute(
                select(models.AgreementStatus.agreement_id, models.AgreementStatus.extracted_until).where(
                    models.AgreementStatus.agreement_id.in_(agreement_ids)
                )
            ).all()
        )

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
            aid,
        )
        unusable: list[str] = []
        try:
            try:
                for page in roger.bill_pages(since, window.before):  # staged page by page, never all held
                    bills = _judge_page(aid, page, counts["seen"], unusable)
                    counts["seen"] += len(page)
                    counts = _stage_page(aid, bills, run_id, counts)
            except AuthError as exc:
                raise AgreementStopped(aid, f"Roger token rejected: {exc}") from None
        finally:
            roger.close()
        if unusable:
            raise RecordsUnusable(aid, unusable, dict(counts))
        return dict(counts)

    results = _each(agreement_ids, work, run_id, "extract", threads=LOAD_THREADS)
    complete = [aid for aid, res in results.items() if res.get("outcome") == "ok"]
    before = window.before
    if before and complete:
        _again_on_race(lambda: _advance_watermarks(complete, before), "extraction watermarks")
    return results


# ---------------------------------------------------------------------------- validate + transform


def setup_fingerprint(ctx: AgreementContext, fetched: list[tuple[str, str]]) -> str:
    """What a quarantined bill is judged against: setup, mappings and master-data age (``fetched``:
    (kind, fetched_at) of the agreement's master data).

    (Suppliers this project creates are not part of it: they exist only under the ``create`` policy,
    where no bill waits for a supplier.)

    When it has not changed since the last run and no bill is new, quarantined bills would be judged
    the same way again, so the group skips validation (and never imports pandas or GX).
    """
    plain = {
        "settings": asdict(ctx.settings),
        "categories": sorted(ctx.categories.items()),
        "methods": sorted(ctx.methods.items()),
        "md": sorted(fetched),
    }
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class _Judgement:
    """Which agreements of a group validation stops, and which it must judge again."""

    stopped: dict[str, dict[str, Any]]  # agreement → its "stopped" result
    runnable: dict[str, AgreementContext]
    fingerprints: dict[str, str]
    rejudge: set[str]


def _judgement(sess: Any, agreement_ids: list[str], dry_run: bool) -> _Judgement:
    contexts = load_contexts(sess, agreement_ids)
    stopped: dict[str, dict[str, Any]] = {}
    runnable: dict[str, AgreementContext] = {}
    for aid in agreement_ids:
        reason = contexts[aid].stop_reason() if aid in contexts else "agreement unknown"
        if reason:
            stopped[aid] = {"outcome": "stopped", "message": reason}
        else:
            runnable[aid] = contexts[aid]
    fresh = set(
        sess.scalars(
            select(models.StagedBill.agreement_id)
            .where(models.StagedBill.agreement_id.in_(list(runnable)), models.StagedBill.state.in_(("new", "planned")))
            .distinct()
        )
    )
    judged = dict(
        sess.execute(
            select(models.AgreementStatus.agreement_id, models.AgreementStatus.judged_fingerprint).where(
                models.AgreementStatus.agreement_id.in_(list(runnable))
            )
        ).all()
    )
    fetched: dict[str, list[tuple[str, str]]] = {aid: [] for aid in runnable}
    for chunk in in_chunks(list(runnable)):  # master-data ages of the whole group in one query
        for aid, kind, at in sess.execute(
            select(models.MasterData.agreement_id, models.MasterData.kind, models.MasterData.fetched_at).where(
                models.MasterData.agreement_id.in_(chunk)
            )
        ):
            fetched[aid].append((kind, str(at)))
    fingerprints = {aid: setup_fingerprint(ctx, fetched[aid]) for aid, ctx in runnable.items()}
    rejudge = {aid for aid in runnable if aid in fresh or dry_run or judged.get(aid) != fingerprints[aid]}
    return _Judgement(stopped, runnable, fingerprints, rejudge)


def settled(agreement_ids: list[str], run_id: str, extracted: dict[str, Any]) -> bool:
    """True when validation and loading would change nothing for any agreement of the group.

    Nothing was staged, no agreement is stopped, no setup changed since its bills were last judged,
    and nothing waits to be posted, attached or withdrawn. The DAG then skips the group's validate
    and load (the scheduler marks them skipped without starting a process: a night's rerun is mostly
    that), and their report rows are written here, the same rows their own no-op paths write. A
    stopped agreement is never settled: it must be reported as stopped every night.
    """
    from roger_economic.loader import agreements_with_work

    if any(res.get("staged") for res in extracted.values()):
        return False
    with session() as sess:
        judgement = _judgement(sess, agreement_ids, dry_run=False)
        if judgement.stopped or judgement.rejudge or agreements_with_work(sess, agreement_ids):
            return False
    _record_all(run_id, "validate", {aid: {"outcome": "ok", "unchanged": True} for aid in agreement_ids})
    _record_all(run_id, "load", {aid: {"outcome": "ok"} for aid in agreement_ids})
    return True


def validate(agreement_ids: list[str], run_id: str, dry_run: bool = False) -> dict[str, Any]:
    """Validate and transform every open bill of the group in one frame; plan its entries."""
    with session() as sess:
        judgement = _judgement(sess, agreement_ids, dry_run)
        results: dict[str, Any] = dict(judgement.stopped)
        runnable, fingerprints, rejudge = judgement.runnable, judgement.fingerprints, judgement.rejudge
        bills = [
            (aid, payload)
            for aid, payload in sess.execute(
                select(models.StagedBill.agreement_id, models.StagedBill.payload).where(
                    models.StagedBill.agreement_id.in_(list(rejudge)),
                    models.StagedBill.state.in_(("new", "quarantined", "planned")),
                )
            )
        ]
    for aid in set(runnable) - rejudge:
        results[aid] = {"outcome": "ok", "unchanged": True}
    runnable = {aid: ctx for aid, ctx in runnable.items() if aid in rejudge}
    if not bills and not dry_run:
        _remember_fingerprints(fingerprints, runnable)
        for aid in runnable:
            results[aid] = {"outcome": "ok"}
        _record_all(run_id, "validate", results)
        return results
    from roger_economic import ledger, quarantine, transform, validation
    from roger_economic.prepare import prepare
    from roger_economic.roger.contract import ensure_judged

    bills = [(aid, ensure_judged(payload)) for aid, payload in bills]  # staged before records were judged
    frame = prepare(bills, runnable) if bills else None
    docs = None
    if frame is not None and os.environ.get("ROGER_ECONOMIC_DATA_DOCS", "1") == "1":
        label = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{run_id}__{agreement_ids[0]}")
        docs = validation.DataDocs(DATA_DOCS, label)
    findings = validation.run(frame, docs) if frame is not None else []
    planned, outcomes = transform.build(frame, findings, runnable) if frame is not None else ([], [])
    per: dict[str, Counter] = {aid: Counter() for aid in runnable}
    for outcome in outcomes:
        per[outcome.agreement_id][outcome.state] += 1
    for entry in planned:
        per[entry.agreement_id][f"{entry.kind}s_planned"] += 1
    if dry_run:
        for aid in runnable:
            results[aid] = {
                "outcome": "ok",
                **per[aid],
                "dry_run": True,
                "entries": [_dry(e) for e in planned if e.agreement_id == aid],
                "quarantine": [_finding(f) for f in findings if f.agreement_id == aid],
            }
        return results

    def plan_and_record() -> dict[str, Any]:
        with session() as sess:
            judged = {(o.agreement_id, o.bill_id): o.version for o in outcomes if o.version is not None}
            counts = ledger.plan(sess, planned, run_id, judged)
            quarantine.record(sess, outcomes, run_id)
        return counts

    plan_counts = _again_on_race(plan_and_record, "planning")
    for aid in runnable:
        counts = dict(per[aid])
        counts["already_booked"] = plan_counts[aid]["already_booked"]
        if docs is not None and docs.page is not None:
            counts["data_docs"] = str(docs.page.relative_to(DATA_DOCS))
        counts["reasons"] = dict(Counter(f.rule for f in findings if f.agreement_id == aid and f.severity == "stop"))
        counts["warnings"] = dict(Counter(f.rule for f in findings if f.agreement_id == aid and f.severity == "warn"))
        results[aid] = {"outcome": "ok", **counts}
    _record_all(run_id, "validate", results)
    _remember_fingerprints(fingerprints, runnable)
    log.info("validated %d bills of %d agreements", len(bills), len(runnable))
    return results


def _remember_fingerprints(fingerprints: dict[str, str], judged: dict[str, AgreementContext]) -> None:
    with session() as sess:
        statuses = {
            s.agreement_id: s
            for s in sess.scalars(
                select(models.AgreementStatus).where(models.AgreementStatus.agreement_id.in_(list(judged)))
            )
        }
        for aid in judged:
            status = statuses.get(aid) or models.AgreementStatus(agreement_id=aid)
            status.judged_fingerprint = fingerprints[aid]
            sess.add(status)


def _dry(entry: Any) -> dict[str, Any]:
    from roger_economic.economic.jsonnum import to_plain

    return {
        "bill_id": entry.bill_id,
        "kind": entry.kind,
        "journal": entry.journal,
        "year": entry.year,
        "entry": to_plain(entry.entry),
    }


def _finding(f: Any) -> dict[str, Any]:
    return {"bill_id": f.bill_id, "rule": f.rule, "severity": f.severity, "value": f.value, "message": f.message}


# ---------------------------------------------------------------------------- load


def _wait_for_lease(aid: str, owner: str) -> None:
    """Overlapping runs (a backfill) take turns per agreement instead of failing at once."""
    from roger_economic.loader import lease

    waited = 0.0
    while True:
        with session() as sess:
            if lease(sess, aid, owner):
                return
        if waited >= LEASE_WAIT:
            raise IntegrationError(f"agreement {aid} is being loaded by another run; try again later")
        time.sleep(2.0)
        waited += 2.0


def load(
    agreement_ids: list[str],
    endpoints: Endpoints,
    run_id: str,
    policy: RetryPolicy | None = None,
    on_call: Callable[[str, str], None] | None = None,
) -> dict[str, Any]:
    """Post what is planned, agreement by agreement (a few at a time); fail at the end, naming failures.

    The group's leases, what each agreement starts from, and at the end the bill states, are each read
    or written for the whole group at once; per agreement remain its batches and uploads.
    """
    from roger_economic.loader import (
        Loader,
        agreements_with_work,
        lease,
        lease_all,
        read_work,
        release_all,
        settle_bill_states,
    )

    owner = f"{socket.gethostname()}:{os.getpid()}:{run_id}"
    with session() as sess:
        contexts = load_contexts(sess, agreement_ids)
        busy = agreements_with_work(sess, agreement_ids)
        ready = [a for a in agreement_ids if a in busy and a in contexts and not contexts[a].stop_reason()]
        held = lease_all(sess, ready, owner)
    with session() as sess:  # leases committed first: a read does not hold SQLite's write lock
        works = read_work(sess, sorted(held))
    leased_at = time.monotonic()
    taken = set(held)  # every agreement this run took a lease of (the group's, and those it waited for)

    def work(aid: str) -> dict[str, Any]:
        ctx = contexts[aid]
        reason = ctx.stop_reason()
        if reason:
            raise AgreementStopped(aid, reason)
        if aid not in busy:
            return {}
        start = works.pop(aid, None)
        if start is not None and time.monotonic() - leased_at > LEASE_RENEW_AFTER:
            start = None  # a long group: what was read at its start is read again
        renewed = False
        if start is not None:  # the group's lease, renewed for this agreement's own 30 minutes
            with session() as sess:
                renewed = lease(sess, aid, owner)
        if not renewed:  # held by another run at the start (or lost since): its own lease, its own read
            start = None
            _wait_for_lease(aid, owner)
            taken.add(aid)
        economic, roger = clients(ctx.settings, endpoints, policy, on_call)
        try:
            return dict(Loader(session, ctx, economic, roger, run_id, work=start, owner=owner).run().counts)
        except AuthError as exc:
            raise AgreementStopped(aid, f"token rejected: {exc}") from None
        finally:
            economic.close()
            roger.close()

    try:
        results = _each(agreement_ids, work, run_id, "load", threads=LOAD_THREADS)
    except BaseException:  # the task was stopped: leases of agreements never reached are given back
        with session() as sess:
            release_all(sess, sorted(taken), owner)
        raise
    # an agreement past its deadline may still be posting in its thread: its lease stays (it ends with
    # this process, whose leases the next load takes over), and its bills are settled by that next load
    done = sorted(taken - {a for a, r in results.items() if r.get("timed_out")})
    with session() as sess:  # each load gave its lease back as it ended; this is for any it could not
        settle_bill_states(sess, done)
        release_all(sess, done, owner)
    failed = {a: r["message"] for a, r in results.items() if r["outcome"] == "failed"}
    if failed:
        raise AgreementsFailed(failed)
    return results
