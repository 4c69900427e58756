"""The run report: one line per agreement (seen, booked, unchanged since last run, quarantined, failed).

Stored as JSON per run (``var/reports/<run>.json`` and the ``agreement_status``
rows the UI reads) and printed as a table in the task log.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from roger_economic.db import PROJECT_ROOT, in_chunks, models, session

REPORTS = PROJECT_ROOT / "var" / "reports"
COLUMNS = ("agreement", "seen", "invoices", "payments", "unchanged", "quarantined", "waiting", "outcome")


def build(run_id: str, agreement_ids: list[str]) -> dict[str, Any]:
    with session() as sess:
        rows = list(sess.scalars(select(models.RunReport).where(models.RunReport.run_id == run_id)))
        open_q = dict(sess.execute(
            select(models.Quarantine.agreement_id, func.count(func.distinct(models.Quarantine.bill_id)))
            .where(models.Quarantine.agreement_id.in_(agreement_ids), models.Quarantine.released_at.is_(None),
                   models.Quarantine.severity == "stop")
            .group_by(models.Quarantine.agreement_id)).all())
        waiting = dict(sess.execute(
            select(models.StagedBill.agreement_id, func.count()).where(
                models.StagedBill.agreement_id.in_(agreement_ids), models.StagedBill.state == "waiting")
            .group_by(models.StagedBill.agreement_id)).all())
        reasons: dict[str, Counter] = {a: Counter() for a in agreement_ids}
        for aid, rule in sess.execute(
            select(models.Quarantine.agreement_id, models.Quarantine.rule).where(
                models.Quarantine.agreement_id.in_(agreement_ids), models.Quarantine.released_at.is_(None),
                models.Quarantine.severity == "stop")):
            reasons[aid][rule] += 1
    phases: dict[str, dict[str, models.RunReport]] = {a: {} for a in agreement_ids}
    for row in rows:
        phases.setdefault(row.agreement_id, {})[row.phase] = row
    agreements = []
    for aid in agreement_ids:
        got = phases.get(aid, {})
        extract, validate, load = (got.get(p) for p in ("extract", "validate", "load"))
        problems = [f"{r.phase}: {r.message}" for r in got.values() if r.outcome != "ok"]
        outcome = "ok"
        if any(r.outcome == "incomplete" for r in got.values()):  # records that could not be staged
            outcome = "incomplete"
        if any(r.outcome == "stopped" for r in got.values()):
            outcome = "stopped"
        if any(r.outcome == "failed" for r in got.values()):
            outcome = "failed"
        lc = load.counts if load else {}
        vc = validate.counts if validate else {}
        agreements.append({
            "agreement": aid,
            "seen": (extract.counts.get("seen", 0) if extract else 0),
            "invoices": lc.get("invoices_booked", 0),
            "payments": lc.get("payments_booked", 0),
            "unchanged": extract.counts.get("unchanged", 0) if extract else 0,
            "unusable_records": extract.counts.get("unusable_records", 0) if extract else 0,
            "already_booked": vc.get("already_booked", 0),
            "quarantined": open_q.get(aid, 0),
            "waiting": waiting.get(aid, 0),
            "reasons": dict(reasons.get(aid, {})),
            "attachments": lc.get("attachments_attached", 0),
            "review": lc.get("review", 0),
            "outcome": outcome,
            "problems": problems,
        })
    totals: Counter[str] = Counter()
    for a in agreements:
        for key in ("seen", "invoices", "payments", "quarantined", "waiting"):
            totals[key] += a[key]
        totals[a["outcome"]] += 1
    return {"run_id": run_id, "finished_at": datetime.now(UTC).isoformat(), "totals": dict(totals),
            "agreements": agreements}


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
    return "\n".join(out)


def save(report: dict[str, Any]) -> Path:
    REPORTS.mkdir(parents=True, exist_ok=True)
    path = REPORTS / (re.sub(r"[^A-Za-z0-9_.-]", "_", report["run_id"]) + ".json")
    path.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    with session() as sess:  # the agreements' status rows read at once (one query, not one per agreement)
        ids = [a["agreement"] for a in report["agreements"]]
        statuses = {s.agreement_id: s for chunk in in_chunks(ids) for s in sess.scalars(
            select(models.AgreementStatus).where(models.AgreementStatus.agreement_id.in_(chunk)))}
        for a in report["agreements"]:
            status = statuses.get(a["agreement"]) or models.AgreementStatus(agreement_id=a["agreement"])
            status.last_run_id = report["run_id"]
            status.last_run_at = datetime.now(UTC)
            status.last_outcome = a["outcome"]
            status.last_message = "; ".join(a["problems"])[:4000] or None
            status.last_counts = {k: a[k] for k in ("seen", "invoices", "payments", "quarantined", "waiting")}
            sess.add(status)
    return path


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
