"""The shared fan-out of every step: agreements in groups, each agreement on its own inside its group.

Why groups: the scheduler runs about 9 task instances a second and a Great
Expectations run costs the same for 1 bill or 10,000, so a nightly run over
hundreds of agreements maps one task per group, not per agreement. Inside a
group each agreement is handled on its own (:func:`each`): its failure is
recorded under its name in the run report and the others go on; the load step
fails at its end, naming the agreements that failed, so Airflow's retry takes
them again.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from roger_economic.context import read_agreements
from roger_economic.credentials import Endpoints
from roger_economic.db import models, session
from roger_economic.economic.client import EconomicClient
from roger_economic.errors import AgreementStopped, IntegrationError, RecordsUnusable, scrub
from roger_economic.http import Calls, RetryPolicy
from roger_economic.model import Agreement
from roger_economic.roger.client import RogerClient
from roger_economic.settings import environment
from roger_economic.states import Outcome

log = logging.getLogger(__name__)
T = TypeVar("T")

GROUP_SIZE = environment().group_size
MAX_GROUPS = 8  # groups at most unless ROGER_ECONOMIC_MAX_GROUPS says (or Airflow runs fewer tasks at once)
LOAD_THREADS = environment().load_threads
RECORD_EVERY = 25  # agreements' outcomes written to the run report per transaction
AGREEMENT_DEADLINE = 1800.0  # seconds one agreement's work in one step may take (ROGER_ECONOMIC_AGREEMENT_DEADLINE)


class AgreementsFailed(IntegrationError):
    def __init__(self, failures: dict[str, str]) -> None:
        self.failures = failures
        lines = "; ".join(f"{a}: {m}" for a, m in sorted(failures.items()))
        super().__init__(f"{len(failures)} agreement(s) failed: {lines}")


def groups(agreement_ids: list[str], size: int = GROUP_SIZE, max_groups: int | None = None) -> list[dict[str, Any]]:
    """Agreements in groups of about ``size``, each labelled by the agreements it holds (the mapped task's name).

    Groups grow beyond ``size`` rather than exceed ``max_groups`` mapped task groups (the plan task passes
    ``roger_economic_airflow.runtime.max_groups()``: ``ROGER_ECONOMIC_MAX_GROUPS``, else :data:`MAX_GROUPS`,
    or fewer when Airflow runs fewer tasks at once; called without a bound: that variable, else
    :data:`MAX_GROUPS`). Every task pays a fixed cost (a task process, a Great Expectations context and Data
    Docs, its sessions) whatever its group's size, and groups beyond the tasks Airflow runs at once only wait
    for a slot and pay it again; a readable grid is far smaller than Airflow's ``max_map_length`` (1024).
    The agreements are spread evenly, so groups finish together (250 → 84 + 83 + 83, not 100 + 100 + 50).
    """
    if not agreement_ids:
        return []
    bound = max_groups or environment().max_groups or MAX_GROUPS
    count = min(bound, -(-len(agreement_ids) // size))
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
    settings: Agreement,
    endpoints: Endpoints,
    policy: RetryPolicy | None = None,
    on_call: Callable[[str, str], None] | None = None,
) -> tuple[EconomicClient, RogerClient]:
    economic_token, roger_token = (
        endpoints.token(settings.economic_token_ref),
        endpoints.token(settings.roger_token_ref),
    )
    calls = Calls(settings.id, policy, on_call)
    return (
        EconomicClient(endpoints.economic_base_url, endpoints.app_secret, economic_token, calls),
        RogerClient(endpoints.roger_base_url, settings.roger_company_id, roger_token, calls),
    )


def record_all(run_id: str, phase: str, results: dict[str, dict[str, Any]]) -> None:
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


def settings_of(agreement_ids: list[str]) -> dict[str, Agreement]:
    with session() as sess:
        return read_agreements(sess, agreement_ids)


def agreement_deadline() -> float:
    """How long one agreement's work in one step may take before it is failed and no longer waited for."""
    given = environment().agreement_deadline
    return given if given is not None else AGREEMENT_DEADLINE


def each(
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
        record_all(run_id, phase, batch)
        return aid, result

    def one(aid: str) -> tuple[str, dict[str, Any]]:
        started[aid] = time.monotonic()
        try:
            return keep(aid, {"outcome": Outcome.OK, **work(aid)})
        except RecordsUnusable as exc:  # the rest of its bills are staged: incomplete, not failed
            log.error("agreement %s incomplete in %s: %s", aid, phase, exc)
            return keep(
                aid,
                {
                    "outcome": Outcome.INCOMPLETE,
                    "message": str(exc),
                    **exc.counts,
                    "unusable": exc.named[: exc.MAX_NAMED],
                },
            )
        except AgreementStopped as exc:
            log.error("agreement %s stopped in %s: %s", aid, phase, exc.reason)
            return keep(aid, {"outcome": Outcome.STOPPED, "message": exc.reason})
        except IntegrationError as exc:
            log.error("agreement %s failed in %s: %s", aid, phase, exc)
            return keep(aid, {"outcome": Outcome.FAILED, "message": str(exc)})
        except Exception as exc:  # an unforeseen fault in one agreement must not take the group down
            # its text may hold a token (an unforeseen error's message is nobody's to vouch for): scrubbed
            # before it is logged or stored; the traceback is logged as frames only, without values
            text = scrub(f"unexpected {type(exc).__name__}: {exc}")
            log.error(
                "agreement %s failed in %s: %s\n%s", aid, phase, text, "".join(traceback.format_tb(exc.__traceback__))
            )
            return keep(aid, {"outcome": Outcome.FAILED, "message": text})

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
            "outcome": Outcome.FAILED,
            "timed_out": True,
            "message": f"took longer than {limit:g} s in {phase}; stopped waiting for it",
        }
        return keep(aid, result)[1]

    # Each agreement's thread hands its line to ``finished``; the caller waits on that queue, not on the
    # futures: waiting on a group's futures installs a waiter on every pending one each time an agreement
    # ends, a cost quadratic in the group's size.
    finished: queue.SimpleQueue[tuple[str, dict[str, Any] | None, BaseException | None]] = queue.SimpleQueue()

    def run(aid: str) -> None:
        try:
            line = one(aid)[1]
        except BaseException as exc:  # not an agreement's failure (``one`` records those): the step's
            finished.put((aid, None, exc))
            raise
        finished.put((aid, line, None))

    results: dict[str, Any] = {}
    size = max(1, min(threads, len(agreement_ids)))
    pools = [ThreadPoolExecutor(max_workers=size)]
    try:
        futures = {aid: pools[0].submit(run, aid) for aid in agreement_ids}
        every = min(1.0, max(limit / 4, 0.05))  # seconds between looks for agreements past their deadline
        looked = time.monotonic()
        while len(results) < len(futures):
            try:
                aid, line, exc = finished.get(timeout=every)
            except queue.Empty:
                pass
            else:
                if exc is not None:
                    raise exc
                results.setdefault(aid, line)
            if time.monotonic() - looked < every:
                continue  # not after every agreement that ends: a look goes over all the pending ones
            looked = time.monotonic()
            late = {aid: overdue(aid) for aid in futures if aid not in results}
            for aid, line in late.items():
                if line is not None:
                    results[aid] = line
            stuck = any(line is not None for line in late.values())
            queued = [aid for aid in late if aid not in results and futures[aid].cancel()] if stuck else []
            if queued:  # not started yet: moved to a fresh pool, so the stuck threads hold no one back
                pools.append(ThreadPoolExecutor(max_workers=size))
                for aid in queued:
                    futures[aid] = pools[-1].submit(run, aid)
        return {aid: results[aid] for aid in agreement_ids}
    finally:
        for pool in pools:  # an agreement past its deadline is not waited for
            pool.shutdown(wait=False, cancel_futures=True)
        with lock:
            rest = dict(buffered)
            buffered.clear()
        if rest:
            record_all(run_id, phase, rest)


def again_on_race(write: Callable[[], T], what: str, attempts: int = 3) -> T:
    """Run ``write`` again when an overlapping run (a backfill) wrote the same unique rows first."""
    for attempt in range(1, attempts + 1):
        try:
            return write()
        except IntegrityError:
            if attempt == attempts:
                raise
            log.info("%s: another run wrote the same rows at the same moment; trying again", what)
    raise AssertionError("unreachable")
