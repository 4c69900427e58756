"""The run report: one line per agreement (seen, booked, unchanged since last run, quarantined, failed).

What reached e-conomic (invoices, payments, attachments, suppliers created, drafts withdrawn or
replaced) is counted from the ledger rows this run put there, per agreement and in the totals. An
agreement is ``ok`` only when every step that should have run for it left its row and said ``ok``.
Stored as JSON per run (``var/reports/<run>.json`` and the ``agreement_status``
rows the UI reads) and printed as a table in the task log.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from roger_economic import agreement_status
from roger_economic.db import PROJECT_ROOT, in_chunks, models, session
from roger_economic.states import Attachment, BillState, Outcome, PostingStatus

log = logging.getLogger(__name__)
REPORTS = PROJECT_ROOT / "var" / "reports"
COLUMNS = (
    "agreement",
    "seen",
    "invoices",
    "payments",
    "attachments",
    "suppliers",
    "withdrawn",
    "replaced",
    "unchanged",
    "quarantined",
    "waiting",
    "review",
    "outcome",
)
PHASES = ("extract", "validate", "load")  # the steps that write a run-report row per agreement
# what reached e-conomic in the run, per agreement and in the totals (see :func:`_reached`)
REACHED = ("invoices", "payments", "attachments", "suppliers", "withdrawn", "replaced", "in_doubt")
TOTALS = ("seen", *REACHED, "quarantined", "waiting", "review")


def build(
    run_id: str,
    agreement_ids: list[str],
    phases: tuple[str, ...] = PHASES,
    failed_steps: list[tuple[str, list[str]]] | None = None,
) -> dict[str, Any]:
    """The run's report, one line per agreement.

    ``phases``: the steps that should have written a row for every agreement (a dry run writes only
    ``extract``'s); an agreement without a row for one of them did not get through it (its group's task
    failed as a whole) and is ``failed``, never ``ok``. ``failed_steps``: (phase, the group's agreements)
    for each group task that failed; when none of the group's agreements accounts for that failure in
    its own row, each of them is failed with the step named.
    """
    with session() as sess:
        rows = list(sess.scalars(select(models.RunReport).where(models.RunReport.run_id == run_id)))
        open_q = dict(
            sess.execute(
                select(models.Quarantine.agreement_id, func.count(func.distinct(models.Quarantine.bill_id)))
                .where(
                    models.Quarantine.agreement_id.in_(agreement_ids),
                    models.Quarantine.released_at.is_(None),
                    models.Quarantine.severity == "stop",
                )
                .group_by(models.Quarantine.agreement_id)
            ).all()
        )
        waiting = dict(
            sess.execute(
                select(models.StagedBill.agreement_id, func.count())
                .where(models.StagedBill.agreement_id.in_(agreement_ids), models.StagedBill.state == BillState.WAITING)
                .group_by(models.StagedBill.agreement_id)
            ).all()
        )
        reasons: dict[str, Counter] = {a: Counter() for a in agreement_ids}
        for aid, rule in sess.execute(
            select(models.Quarantine.agreement_id, models.Quarantine.rule).where(
                models.Quarantine.agreement_id.in_(agreement_ids),
                models.Quarantine.released_at.is_(None),
                models.Quarantine.severity == "stop",
            )
        ):
            reasons[aid][rule] += 1
        phases_of: dict[str, dict[str, models.RunReport]] = {a: {} for a in agreement_ids}
        for row in rows:
            phases_of.setdefault(row.agreement_id, {})[row.phase] = row
        reached, review = _reached(sess, run_id, agreement_ids, phases_of)
    unexplained = _unexplained_failures(failed_steps or [], phases_of)
    agreements = []
    for aid in agreement_ids:
        got = phases_of.get(aid, {})
        extract, validate, load = (got.get(p) for p in ("extract", "validate", "load"))
        problems = [f"{r.phase}: {r.message}" for r in got.values() if r.outcome != Outcome.OK]
        missing = [p for p in phases if p not in got]
        if missing:
            later = f" (nor {', '.join(missing[1:])})" if len(missing) > 1 else ""
            problems.append(f"{missing[0]}: no result: the step did not finish for this agreement{later}")
        problems += [f"{phase}: the group's step failed (see its task log)" for phase, ids in unexplained if aid in ids]
        outcome = Outcome.OK
        if any(r.outcome == Outcome.INCOMPLETE for r in got.values()):  # records that could not be staged
            outcome = Outcome.INCOMPLETE
        if any(r.outcome == Outcome.STOPPED for r in got.values()):
            outcome = Outcome.STOPPED
        if (
            any(r.outcome == Outcome.FAILED for r in got.values())
            or missing
            or any(aid in ids for _, ids in unexplained)
        ):
            outcome = Outcome.FAILED
        vc = validate.counts if validate else {}
        lines = {
            "agreement": aid,
            "seen": (extract.counts.get("seen", 0) if extract else 0),
            **reached[aid],
            "unchanged": extract.counts.get("unchanged", 0) if extract else 0,
            "unusable_records": extract.counts.get("unusable_records", 0) if extract else 0,
            "already_booked": vc.get("already_booked", 0),
            "quarantined": open_q.get(aid, 0),
            "waiting": waiting.get(aid, 0),
            "reasons": dict(reasons.get(aid, {})),
            **review[aid],
            "outcome": outcome,
            "problems": problems,
        }
        lines["load_counts"] = dict(load.counts) if load else {}  # the loader's own counters, for comparison
        agreements.append(lines)
    return {
        "run_id": run_id,
        "finished_at": datetime.now(UTC).isoformat(),
        "totals": _totals(agreements),
        "agreements": agreements,
        "problems": [],
    }


def _totals(agreements: list[dict[str, Any]]) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for a in agreements:
        for key in TOTALS:
            totals[key] += a.get(key, 0)
        totals[a["outcome"]] += 1
    return dict(totals)


def _unexplained_failures(
    failed_steps: list[tuple[str, list[str]]], phases_of: dict[str, dict[str, models.RunReport]]
) -> list[tuple[str, list[str]]]:
    """The group steps that failed although each of the group's agreements has an ``ok`` row for it.

    (A load fails at its end naming its failed agreements: their own rows explain it. A step that
    crashed after its agreements' work, e.g. while settling the group's bill states, is explained by none.)
    """
    out = []
    for phase, ids in failed_steps:
        rows = [phases_of.get(aid, {}).get(phase) for aid in ids]
        if all(r is not None and r.outcome == Outcome.OK for r in rows):
            out.append((phase, ids))
    return out


def _reached(
    sess: Any,
    run_id: str,
    agreement_ids: list[str],
    phases_of: dict[str, dict[str, models.RunReport]],
) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """What reached e-conomic in this run, per agreement, read from the ledger rather than the loaders' counters.

    A ledger row carries the run that last changed it in e-conomic (``run_id``: the run that sent or
    recovered it, or deleted its draft); so a load task retried within the run, or an entry recovered from
    a crashed run, is counted once, by the run that put it there. ``in_doubt``: rows this run sent whose
    answer it never got (the next run finds them in e-conomic). Suppliers and review items carry no run:
    those created since the agreement's extraction of this run are counted.
    """
    posting, link, item = models.Posting, models.SupplierLink, models.ReviewItem
    reached = {aid: dict.fromkeys(REACHED, 0) for aid in agreement_ids}
    review = {aid: {"review": 0, "review_open": 0} for aid in agreement_ids}
    for chunk in in_chunks(agreement_ids):
        for aid, kind, status, attachment, done, n in sess.execute(
            select(
                posting.agreement_id,
                posting.entry_kind,
                posting.status,
                posting.attachment,
                posting.entry_number.is_not(None),
                func.count(),
            )
            .where(
                posting.agreement_id.in_(chunk),
                posting.run_id == run_id,
                posting.status.in_(
                    (PostingStatus.POSTED, PostingStatus.POSTING, PostingStatus.SUPERSEDED, PostingStatus.WITHDRAWN)
                ),
            )
            .group_by(
                posting.agreement_id,
                posting.entry_kind,
                posting.status,
                posting.attachment,
                posting.entry_number.is_not(None),
            )
        ):
            counts = reached[aid]
            if status == PostingStatus.POSTED:
                counts[f"{kind}s"] += n
                counts["attachments"] += n if attachment == Attachment.ATTACHED else 0
            elif status == PostingStatus.POSTING:
                counts["in_doubt"] += n
            elif done:  # a draft deleted in e-conomic by this run (withdrawn, or replaced by a new version)
                counts["replaced" if status == PostingStatus.SUPERSEDED else "withdrawn"] += n
    started = {aid: min((r.finished_at for r in got.values()), default=None) for aid, got in phases_of.items()}
    since = {aid: _aware(at) for aid, at in started.items() if at is not None}
    if not since:
        return reached, review
    earliest = min(since.values())
    for chunk in in_chunks(agreement_ids):
        for aid, at in sess.execute(
            select(link.agreement_id, link.created_at).where(
                link.agreement_id.in_(chunk), link.how == "created", link.created_at >= earliest
            )
        ):
            if aid in since and _aware(at) >= since[aid]:
                reached[aid]["suppliers"] += 1
        for aid, at in sess.execute(
            select(item.agreement_id, item.created_at).where(item.agreement_id.in_(chunk), item.resolved_at.is_(None))
        ):
            review[aid]["review_open"] += 1
            if aid in since and _aware(at) >= since[aid]:
                review[aid]["review"] += 1
    return reached, review


def _aware(moment: datetime) -> datetime:
    """SQLite hands timestamps back without their zone (they were written in UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def unreadable(run_id: str, agreement_ids: list[str], problem: str) -> dict[str, Any]:
    """The report of a run whose outcome cannot be read from the project database (it is down).

    Each agreement known is ``unknown`` with the problem named; the run's alert is built from this,
    so a night without its database still tells someone.
    """
    agreements = [
        {
            "agreement": aid,
            "seen": 0,
            **dict.fromkeys(REACHED, 0),
            "unchanged": 0,
            "already_booked": 0,
            "quarantined": 0,
            "waiting": 0,
            "reasons": {},
            "review": 0,
            "review_open": 0,
            "outcome": Outcome.UNKNOWN,
            "problems": [problem],
        }
        for aid in agreement_ids
    ]
    return {
        "run_id": run_id,
        "finished_at": datetime.now(UTC).isoformat(),
        "totals": _totals(agreements),
        "agreements": agreements,
        "problems": [problem],
    }


def table(report: dict[str, Any]) -> str:
    rows = [[str(a[c]) for c in COLUMNS] for a in report["agreements"]]
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(COLUMNS)]
    line = "  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    for a in report["agreements"]:
        if a["reasons"]:
            out.append(f"  {a['agreement']} quarantined: " + ", ".join(f"{k} x{v}" for k, v in a["reasons"].items()))
        for problem in a["problems"]:
            out.append(f"  {a['agreement']} {a['outcome']}: {problem}")
    totals = report.get("totals", {})
    out.append("reached e-conomic: " + ", ".join(f"{k} {totals.get(k, 0)}" for k in REACHED))
    out += [f"run: {problem}" for problem in report.get("problems", [])]
    return "\n".join(out)


def save(report: dict[str, Any]) -> Path:
    REPORTS.mkdir(parents=True, exist_ok=True)
    path = REPORTS / (re.sub(r"[^A-Za-z0-9_.-]", "_", report["run_id"]) + ".json")
    path.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    try:
        _save_statuses(report)
    except Exception as exc:  # the project database is down: the file (and the alert) still tell
        log.warning("run report %s: agreement statuses not saved (%s)", report["run_id"], type(exc).__name__)
    return path


def _save_statuses(report: dict[str, Any]) -> None:
    now = datetime.now(UTC)
    with session() as sess:  # the agreements' status rows written at once (not a query per agreement)
        agreement_status.write(
            sess,
            {
                a["agreement"]: {
                    "last_run_id": report["run_id"],
                    "last_run_at": now,
                    "last_outcome": a["outcome"],
                    "last_message": "; ".join(a["problems"])[:4000] or None,
                    "last_counts": {k: a.get(k, 0) for k in TOTALS},
                }
                for a in report["agreements"]
            },
        )


def phase_table(results: dict[str, dict[str, Any]]) -> str:
    """One step's results for a group, one line per agreement (for the task log)."""
    keys: list[str] = []
    for res in results.values():
        for key, value in res.items():
            if key not in keys and key not in ("outcome", "message") and not isinstance(value, dict | list):
                keys.append(key)
    columns = ["agreement", "outcome", *keys]
    rows = [[aid, str(res.get("outcome", "")), *(str(res.get(k, 0)) for k in keys)] for aid, res in results.items()]
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(columns)]
    out = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    for aid, res in results.items():
        if res.get("message"):
            out.append(f"{aid} {res.get('outcome')}: {res['message']}")
        for name in ("reasons", "warnings"):
            if res.get(name):
                out.append(f"{aid} {name}: " + ", ".join(f"{k} x{v}" for k, v in res[name].items()))
    return "\n".join(out)
