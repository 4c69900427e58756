"""Step 3, validate: every open bill of a group checked and transformed in one frame, its entries planned.

A group whose bills would be judged as they were last time (nothing new, no setup changed: see
:func:`setup_fingerprint`) skips the frame, and with it pandas and Great Expectations.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from roger_economic import agreement_status, setup_rules, states
from roger_economic.context import AgreementContext, load_contexts
from roger_economic.db import PROJECT_ROOT, in_chunks, models, session
from roger_economic.model import MAPPINGS
from roger_economic.settings import environment
from roger_economic.states import BillState, Outcome
from roger_economic.steps.fanout import again_on_race, record_all

log = logging.getLogger(__name__)

DATA_DOCS = PROJECT_ROOT / "var" / "data_docs"


def setup_fingerprint(ctx: AgreementContext, fetched: list[tuple[str, str]]) -> str:
    """What a quarantined bill is judged against: setup, mappings and master-data age (``fetched``:
    (kind, fetched_at) of the agreement's master data).

    (Suppliers this project creates are not part of it: they exist only under the ``create`` policy,
    where no bill waits for a supplier.)

    When it has not changed since the last run and no bill is new, quarantined bills would be judged
    the same way again, so the group skips validation (and never imports pandas or GX).
    """
    plain = {
        # what bills are judged against: not whether the agreement is active, nor its e-conomic number
        "settings": ctx.settings.model_dump(exclude={"active", "economic_agreement_number", *MAPPINGS}),
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


def _judgement(sess: Any, agreement_ids: list[str], dry_run: bool, kinds: tuple[str, ...] | None = None) -> _Judgement:
    """``kinds``: the master data the contexts hold (all when None; validation judges bills against them)."""
    contexts = load_contexts(sess, agreement_ids, kinds)
    stopped: dict[str, dict[str, Any]] = {}
    runnable: dict[str, AgreementContext] = {}
    for aid in agreement_ids:
        reason = contexts[aid].stop_reason() if aid in contexts else "agreement unknown"
        if reason:
            stopped[aid] = {"outcome": Outcome.STOPPED, "message": reason}
        else:
            runnable[aid] = contexts[aid]
    fresh = set(
        sess.scalars(
            select(models.StagedBill.agreement_id)
            .where(
                models.StagedBill.agreement_id.in_(list(runnable)),
                models.StagedBill.state.in_((BillState.NEW, BillState.PLANNED)),
            )
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
    from roger_economic.posting.work import agreements_with_work

    if any(res.get("staged") for res in extracted.values()):
        return False
    with session() as sess:
        judgement = _judgement(sess, agreement_ids, dry_run=False, kinds=setup_rules.STOP_KINDS)
        if judgement.stopped or judgement.rejudge or agreements_with_work(sess, agreement_ids):
            return False
    record_all(run_id, "validate", {aid: {"outcome": Outcome.OK, "unchanged": True} for aid in agreement_ids})
    record_all(run_id, "load", {aid: {"outcome": Outcome.OK} for aid in agreement_ids})
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
                    models.StagedBill.state.in_(states.JUDGEABLE),
                )
            )
        ]
    for aid in set(runnable) - rejudge:
        results[aid] = {"outcome": Outcome.OK, "unchanged": True}
    runnable = {aid: ctx for aid, ctx in runnable.items() if aid in rejudge}
    if not bills and not dry_run:
        _remember_fingerprints(fingerprints, runnable)
        for aid in runnable:
            results[aid] = {"outcome": Outcome.OK}
        record_all(run_id, "validate", results)
        return results
    from roger_economic import quarantine, transform, validation
    from roger_economic.posting import ledger
    from roger_economic.prepare import prepare
    from roger_economic.roger.contract import ensure_judged

    bills = [(aid, ensure_judged(payload)) for aid, payload in bills]  # staged before records were judged
    frame = prepare(bills, runnable) if bills else None
    docs = None
    if frame is not None and environment().data_docs:
        label = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{run_id}__{agreement_ids[0]}")
        docs = validation.DataDocs(DATA_DOCS, label)
    findings = validation.run(frame, docs) if frame is not None else []
    planned, outcomes = transform.build(frame, findings, runnable) if frame is not None else ([], [])
    per: dict[str, Counter] = {aid: Counter() for aid in runnable}
    for outcome in outcomes:
        per[outcome.agreement_id][str(outcome.state)] += 1
    for entry in planned:
        per[entry.agreement_id][f"{entry.kind}s_planned"] += 1
    if dry_run:
        for aid in runnable:
            results[aid] = {
                "outcome": Outcome.OK,
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

    plan_counts = again_on_race(plan_and_record, "planning")
    for aid in runnable:
        counts = dict(per[aid])
        counts["already_booked"] = plan_counts[aid]["already_booked"]
        if docs is not None and docs.page is not None:
            counts["data_docs"] = str(docs.page.relative_to(DATA_DOCS))
        counts["reasons"] = dict(Counter(f.rule for f in findings if f.agreement_id == aid and f.severity == "stop"))
        counts["warnings"] = dict(Counter(f.rule for f in findings if f.agreement_id == aid and f.severity == "warn"))
        results[aid] = {"outcome": Outcome.OK, **counts}
    record_all(run_id, "validate", results)
    _remember_fingerprints(fingerprints, runnable)
    log.info("validated %d bills of %d agreements", len(bills), len(runnable))
    return results


def _remember_fingerprints(fingerprints: dict[str, str], judged: dict[str, AgreementContext]) -> None:
    with session() as sess:
        agreement_status.write(sess, {aid: {"judged_fingerprint": fingerprints[aid]} for aid in judged})


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
