"""Sending a run's alert through the configured channels (webhook and/or Airflow's SMTP provider).

Configuration (environment):
- ``ROGER_ECONOMIC_ALERT_WEBHOOK``: a URL that receives the alert as JSON.
- ``ROGER_ECONOMIC_ALERT_EMAILS``: comma-separated recipients, sent through the SMTP
  connection ``ROGER_ECONOMIC_ALERT_SMTP_CONN`` (default ``smtp_default``).
"""

from __future__ import annotations

import logging
from html import escape
from typing import Any

from roger_economic import alerts
from roger_economic.errors import ApiError
from roger_economic.settings import environment

log = logging.getLogger(__name__)


def notify(report: dict[str, Any]) -> list[str]:
    """Send the run's alert once; returns the channels used (empty when there was nothing to say).

    Each channel is tried even when another failed (a webhook that is down does not keep the e-mail
    from going out); a channel that failed is raised after the others were tried.
    """
    alert = alerts.build(report)
    if alert is None or alerts.already_sent(report["run_id"]):
        return []
    channels: list[str] = []
    failed: list[str] = []
    webhook = environment().alert_webhook
    if webhook:
        try:
            alerts.send_webhook(webhook, alert)
            channels.append("webhook")
        except Exception as exc:  # the address may hold a secret: never in the message
            log.error("alert not sent via webhook: %s", type(exc).__name__)
            status = f" {exc.status}" if isinstance(exc, ApiError) and exc.status else ""
            failed.append(f"webhook ({type(exc).__name__}{status})")
    emails = list(environment().alert_emails)
    if emails:
        try:
            _send_email(emails, alert)
            channels.append("email")
        except Exception as exc:
            log.error("alert not sent via e-mail: %s", type(exc).__name__)
            failed.append(f"e-mail ({type(exc).__name__})")
    if channels:
        alerts.mark_sent(report["run_id"], channels)
        log.info("alert sent via %s", ", ".join(channels))
    elif not webhook and not emails:  # nothing silent: a night that needs a person says so in its log at least
        log.warning(
            "no alert channel configured (ROGER_ECONOMIC_ALERT_WEBHOOK, ROGER_ECONOMIC_ALERT_EMAILS); "
            "the alert would have said: %s\n%s",
            alert.subject,
            alert.text,
        )
    if failed:
        raise RuntimeError(f"alert of run {report['run_id']} not sent via {', '.join(failed)}")
    return channels


def _send_email(emails: list[str], alert: alerts.Alert) -> None:
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    conn_id = environment().alert_smtp_conn
    with SmtpHook(smtp_conn_id=conn_id) as hook:
        hook.send_email_smtp(to=emails, subject=alert.subject, html_content=f"<pre>{escape(alert.text)}</pre>")


def summary_failed(context: dict[str, Any]) -> None:
    """``on_failure_callback`` of summarise: when it failed before its alert went out (a crash, its
    timeout), the run still alerts, naming the run and what stopped the summary. Nothing when the
    summary's own alert was sent (summarise fails on purpose after alerting when the night did not
    complete)."""
    run_id = context["run_id"]
    exc = context.get("exception")
    what = type(exc).__name__ if exc is not None else "an unknown error"
    report = {
        "run_id": run_id,
        "agreements": [],
        "totals": {},
        "problems": [f"the run's summary failed ({what}): its outcome is unknown; see the summarise task's log"],
    }
    try:
        notify(report)
    except Exception:
        log.exception("run %s: the alert of a failed summary was not sent", run_id)
