"""Alerts: once per run, for every way a night can fail or need a person.

That is: an agreement failed, stopped or has no result for a step (its group's task failed as a
whole), the run could not plan or read its database, bills were quarantined, or a booked entry needs a
review by hand. The message names the agreements and their counts. Channels are chosen by
configuration (a generic JSON webhook here; e-mail is sent by the Airflow glue through Airflow's SMTP
provider). A run alerts once: the sending is recorded in a marker file under ``var/alerts`` and, when
the database is up, in ``run_reports`` (phase ``alert``), so a retried summary does not alert twice,
and a night whose database is down still alerts (and only once).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from roger_economic.db import PROJECT_ROOT, models, session
from roger_economic.http import ApiCaller, Calls, RetryPolicy
from roger_economic.states import Outcome

log = logging.getLogger(__name__)
SENT = PROJECT_ROOT / "var" / "alerts"


@dataclass(frozen=True)
class Alert:
    subject: str
    text: str
    payload: dict[str, Any]


def build(report: dict[str, Any]) -> Alert | None:
    failed = [a for a in report["agreements"] if a["outcome"] != Outcome.OK]
    quarantined = [a for a in report["agreements"] if a["quarantined"]]
    review = [a for a in report["agreements"] if a.get("review")]
    problems = list(report.get("problems") or [])
    if not failed and not quarantined and not review and not problems:
        return None
    lines = [f"Roger → e-conomic run {report['run_id']}"]
    if problems:
        lines.append("The run did not complete:")
        lines += [f"  {p}" for p in problems]
    if failed:
        lines.append(f"{len(failed)} agreement(s) did not complete:")
        lines += [f"  {a['agreement']} ({a['outcome']}): {' / '.join(a['problems'])}" for a in failed]
    if quarantined:
        lines.append(f"{len(quarantined)} agreement(s) have quarantined bills:")
        for a in quarantined:
            why = ", ".join(f"{rule} x{n}" for rule, n in a["reasons"].items())
            lines.append(f"  {a['agreement']}: {a['quarantined']} bill(s) ({why})")
    if review:
        lines.append(f"{len(review)} agreement(s) have new entries to review by hand (a booked bill changed):")
        lines += [
            f"  {a['agreement']}: {a['review']} new review item(s), {a.get('review_open', a['review'])} open"
            for a in review
        ]
    subject = (
        f"Roger → e-conomic: {len(failed)} failed, "
        f"{sum(a['quarantined'] for a in quarantined)} quarantined, "
        f"{sum(a['review'] for a in review)} to review"
        f"{', run did not complete' if problems else ''} ({report['run_id']})"
    )
    payload = {
        "run_id": report["run_id"],
        "problems": problems,
        "failed": [{"agreement": a["agreement"], "outcome": a["outcome"], "problems": a["problems"]} for a in failed],
        "quarantined": [
            {"agreement": a["agreement"], "bills": a["quarantined"], "reasons": a["reasons"]} for a in quarantined
        ],
        "review": [
            {"agreement": a["agreement"], "new": a["review"], "open": a.get("review_open", a["review"])} for a in review
        ],
        "totals": report.get("totals", {}),
    }
    return Alert(subject, "\n".join(lines), payload)


def _marker(run_id: str) -> Path:
    return SENT / (re.sub(r"[^A-Za-z0-9_.-]", "_", run_id) + ".sent")


def already_sent(run_id: str) -> bool:
    """Sent before for this run: the marker file, else the database's row (a database that is down
    does not stop the alert: better a second alert than none)."""
    if _marker(run_id).exists():
        return True
    try:
        with session() as sess:
            return sess.get(models.RunReport, (run_id, "*", "alert")) is not None
    except Exception as exc:  # the project database is down: the marker file decides
        log.warning(
            "alert: cannot read whether run %s alerted already (%s); the marker file decides",
            run_id,
            type(exc).__name__,
        )
        return False


def mark_sent(run_id: str, channels: list[str]) -> None:
    SENT.mkdir(parents=True, exist_ok=True)
    _marker(run_id).write_text(
        json.dumps({"channels": channels, "at": datetime.now(UTC).isoformat()}), encoding="utf-8"
    )
    try:
        with session() as sess:
            sess.merge(
                models.RunReport(
                    run_id=run_id,
                    agreement_id="*",
                    phase="alert",
                    outcome=Outcome.OK,
                    counts={"channels": channels},
                    message=None,
                    finished_at=datetime.now(UTC),
                )
            )
    except Exception as exc:
        log.warning("alert: sent, but not recorded in the project database (%s)", type(exc).__name__)


def send_webhook(url: str, alert: Alert, timeout: float = 10.0) -> None:
    """POST the alert as JSON through the project's HTTP client, once (a POST without an idempotency key is not
    retried: the receiver may have it), all of it within ``timeout``; an error status raises ``ApiError``."""
    body = json.dumps({"subject": alert.subject, "text": alert.text, **alert.payload}, default=str).encode()
    caller = ApiCaller(
        "alert webhook",
        url,
        {"Accept": "*/*"},
        Calls("*", RetryPolicy(max_attempts=1, timeout=timeout)),
        shared=False,  # a one-off call to the firm's receiver: fresh connections, closed after it
    )
    try:
        caller.request("POST", "", data=body, raw=True)
    finally:
        caller.close()
