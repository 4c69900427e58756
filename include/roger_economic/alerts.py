"""Alerts: once per run, when an agreement failed or bills were quarantined.

The message names the agreements and their counts. Channels are chosen by
configuration (a generic JSON webhook here; e-mail is sent by the Airflow glue
through Airflow's SMTP provider). A run alerts once: the sending is recorded
in ``run_reports`` (phase ``alert``), so a retried summary does not alert twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from roger_economic.db import models, session


@dataclass(frozen=True)
class Alert:
    subject: str
    text: str
    payload: dict[str, Any]


def build(report: dict[str, Any]) -> Alert | None:
    failed = [a for a in report["agreements"] if a["outcome"] != "ok"]
    quarantined = [a for a in report["agreements"] if a["quarantined"]]
    if not failed and not quarantined:
        return None
    lines = [f"Roger → e-conomic run {report['run_id']}"]
    if failed:
        lines.append(f"{len(failed)} agreement(s) did not complete:")
        lines += [f"  {a['agreement']} ({a['outcome']}): {' / '.join(a['problems'])}" for a in failed]
    if quarantined:
        lines.append(f"{len(quarantined)} agreement(s) have quarantined bills:")
        for a in quarantined:
            why = ", ".join(f"{rule} x{n}" for rule, n in a["reasons"].items())
            lines.append(f"  {a['agreement']}: {a['quarantined']} bill(s) ({why})")
    subject = (f"Roger → e-conomic: {len(failed)} failed, "
               f"{sum(a['quarantined'] for a in quarantined)} quarantined ({report['run_id']})")
    payload = {
        "run_id": report["run_id"],
        "failed": [{"agreement": a["agreement"], "outcome": a["outcome"], "problems": a["problems"]} for a in failed],
        "quarantined": [{"agreement": a["agreement"], "bills": a["quarantined"], "reasons": a["reasons"]}
                        for a in quarantined],
    }
    return Alert(subject, "\n".join(lines), payload)


def already_sent(run_id: str) -> bool:
    with session() as sess:
        return sess.get(models.RunReport, (run_id, "*", "alert")) is not None


def mark_sent(run_id: str, channels: list[str]) -> None:
    with session() as sess:
        sess.merge(models.RunReport(run_id=run_id, agreement_id="*", phase="alert", outcome="ok",
                                    counts={"channels": channels}, message=None, finished_at=datetime.now(UTC)))


def send_webhook(url: str, alert: Alert, timeout: float = 10.0) -> None:
    response = requests.post(url, json={"subject": alert.subject, "text": alert.text, **alert.payload},
                             timeout=timeout)
    response.raise_for_status()
