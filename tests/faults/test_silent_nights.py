"""No night fails, hangs or needs a person in silence.

Each way a night can go wrong, through the real bills DAG (``dag.test()``), the real sandboxes and a real
database: the project database down when the run starts, a group's step crashing as a whole, a booked
entry whose bill changed in Roger (a review item), one agreement that never finishes. Each run alerts
once (the webhook receives it) naming the agreements, and fails when it did not complete. The run
report counts what reached e-conomic, checked against what the e-conomic sandbox holds.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from http.server import ThreadingHTTPServer

import pytest
from sqlalchemy import select, text

from roger_economic import report
from roger_economic.config import load_file
from roger_economic.db import dispose_engines, engine, models, session
from tests.faults.helpers import (
    AGREEMENTS,
    ALL,
    ROOT,
    arm,
    check,
    disarm,
    fired,
    ledger_rows,
    run_bills,
    run_master_data,
    state_of,
)
from tests.integration.helpers import live_entries, roger_bills, staged_states
from tests.integration.test_alerts import SmtpSink, _HookHandler


@pytest.fixture()
def alerts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict]]:
    """The alerts a webhook receives (the channel every alert goes through)."""
    hook = ThreadingHTTPServer(("127.0.0.1", 0), _HookHandler)
    hook.received = []
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    monkeypatch.setenv("ROGER_ECONOMIC_ALERT_WEBHOOK", f"http://127.0.0.1:{hook.server_port}/alerts")
    try:
        yield hook.received
    finally:
        hook.shutdown()


def _only_alert(received: list[dict], run_id: str) -> dict:
    mine = [a for a in received if a["run_id"] == run_id]
    assert len(mine) == 1, f"{len(mine)} alerts for {run_id}"
    return mine[0]


def test_database_down_at_the_start_still_alerts(demo, airflow_db, alerts, monkeypatch):
    # the project database is gone before the night starts (nothing listens on port 1)
    monkeypatch.setenv("ROGER_ECONOMIC_DB_URL", "postgresql+psycopg2://postgres@127.0.0.1:1/roger_economic")
    dispose_engines()
    try:
        run = run_bills(ALL)
    finally:
        dispose_engines()

    assert run.state == "failed"
    alert = _only_alert(alerts, run.run_id)
    problems = " ".join(alert["problems"])
    assert "plan failed" in problems and "project database could not be read" in problems
    assert "run did not complete" in alert["subject"]


def _block_when(ready, url: str) -> threading.Thread:
    """In the background: as soon as ``ready()`` holds, the PostgreSQL database of ``url`` takes no
    connections and its open ones are ended (a database that went down during the night)."""
    import sqlalchemy as sa

    name = sa.engine.make_url(url).database

    def block() -> None:
        while not ready():
            time.sleep(0.02)
        admin = sa.create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name})
        admin.dispose()

    thread = threading.Thread(target=block, daemon=True)
    thread.start()
    return thread


def test_database_down_during_the_night_still_alerts_naming_the_agreements(demo, project_db, airflow_db, alerts):
    if not project_db.startswith("postgresql"):
        pytest.skip("taking the database away mid-run is done with PostgreSQL's ALLOW_CONNECTIONS")
    roger, _economic = demo
    run_master_data()
    # while agr_0001's bills are being read from Roger, the project database goes away
    arm(roger, kind="slow", delay=1.5, scope="cmp_0001", method="GET", path="bills", times=1)
    blocker = _block_when(lambda: bool(fired(roger)), project_db)

    run = run_bills(ALL)

    blocker.join(timeout=30)
    assert run.state == "failed"
    alert = _only_alert(alerts, run.run_id)
    assert {f["agreement"] for f in alert["failed"]} == set(AGREEMENTS.values())
    problems = " ".join(alert["problems"])
    assert "project database could not be read" in problems and "extract of group" in problems, problems


def test_a_group_step_crashing_fails_the_run_naming_its_agreements(demo, airflow_db, alerts):
    run_master_data()
    # validation of the whole group cannot read the master data (a table gone): its step fails as a whole
    with engine().begin() as conn:
        conn.execute(text("ALTER TABLE master_data RENAME TO master_data_gone"))

    run = run_bills(ALL)

    assert run.state == "failed"
    assert set(run.failures) == set(AGREEMENTS.values())
    assert all("validate: no result" in why for why in run.failures.values()), run.failures
    alert = _only_alert(alerts, run.run_id)
    assert {f["agreement"] for f in alert["failed"]} == set(AGREEMENTS.values())
    assert alert["subject"].startswith("Roger → e-conomic: 3 failed")


def test_a_group_step_failing_after_its_agreements_work_is_not_reported_ok(project_db):
    load_file(ROOT / "config" / "agreements.example.yaml")
    ids = list(AGREEMENTS.values())
    with session() as sess:  # every agreement's rows say ok, but the group's load task failed
        for aid in ids:
            for phase in report.PHASES:
                sess.add(
                    models.RunReport(
                        run_id="r1",
                        agreement_id=aid,
                        phase=phase,
                        outcome="ok",
                        counts={},
                        finished_at=datetime.now(UTC),
                    )
                )

    result = report.build("r1", ids, failed_steps=[("load", ids[:2])])

    outcomes = {a["agreement"]: (a["outcome"], a["problems"]) for a in result["agreements"]}
    assert outcomes[ids[0]] == ("failed", ["load: the group's step failed (see its task log)"])
    assert outcomes[ids[1]][0] == "failed" and outcomes[ids[2]] == ("ok", [])


def test_a_changed_booked_bill_alerts_as_a_review_item(demo, airflow_db, alerts):
    roger, economic = demo
    run_master_data()
    assert run_bills(ALL).state == "success"
    states = staged_states("agr_0001")
    bills = {b["id"]: b for b in roger_bills(roger, 1)}
    target = next(
        b
        for b, s in sorted(states.items())
        if s == "booked" and bills[b]["document_type"] == "bill" and bills[b]["status"] in ("UPCOMING", "INITIALIZED")
    )
    economic.control("POST", "book", {"agreement": 700001, "journal": 2})  # the accountant books the journal
    roger.control(
        "POST",
        "bills/update",
        {"company_id": "cmp_0001", "bill_id": target, "changes": {"amount": "99.00", "vat_amount": None}},
    )

    run = run_bills(ALL)

    alert = _only_alert(alerts, run.run_id)
    assert [r["agreement"] for r in alert["review"]] == ["agr_0001"] and alert["review"][0]["new"] == 1
    assert "to review" in alert["subject"]
    line = next(a for a in run.report["agreements"] if a["agreement"] == "agr_0001")
    assert line["review"] == 1


def test_one_hung_agreement_is_failed_while_the_others_finish(demo, airflow_db, alerts, monkeypatch):
    roger, economic = demo
    run_master_data()
    # agr_0001's vouchers go one per POST and each answer takes a second (within the HTTP timeout):
    # its load takes far longer than the 3 s an agreement is given
    monkeypatch.setenv("ROGER_ECONOMIC_AGREEMENT_DEADLINE", "3")
    monkeypatch.setenv("ROGER_ECONOMIC_BATCH_SIZE", "1")
    monkeypatch.setenv("ROGER_ECONOMIC_HTTP_TIMEOUT", "10")
    arm(economic, kind="slow", delay=1.0, scope="700001", method="POST", path=r"^/journals/\d+/vouchers$", times=-1)

    run = run_bills(ALL)

    assert run.state == "failed"
    assert set(run.failures) == {"agr_0001"}
    assert "load: took longer than 3 s" in run.failures["agr_0001"]
    ok = {a["agreement"]: a for a in run.report["agreements"] if a["outcome"] == "ok"}
    assert set(ok) == {"agr_0002", "agr_0003"} and all(a["invoices"] > 0 for a in ok.values())
    alert = _only_alert(alerts, run.run_id)
    assert [f["agreement"] for f in alert["failed"]] == ["agr_0001"]

    # the stuck agreement's work is picked up by the next night: everything booked exactly once
    disarm(economic)
    monkeypatch.delenv("ROGER_ECONOMIC_AGREEMENT_DEADLINE")
    again = run_bills(ALL)
    assert again.state == "success", again.failures
    result = check(roger, economic, {})
    assert result.ok(), result.problems


def test_the_report_counts_what_reached_economic(demo, airflow_db):
    roger, economic = demo
    run_master_data()
    suppliers_before = {i: len(state_of(economic, i)["suppliers"]) for i in AGREEMENTS}

    run = run_bills(ALL)

    assert run.state == "success", run.failures
    lines = {a["agreement"]: a for a in run.report["agreements"]}
    for i, aid in AGREEMENTS.items():
        state = state_of(economic, i)
        entries = live_entries(state)
        assert lines[aid]["invoices"] == sum(n for (_, kind), n in entries.items() if kind == "supplierInvoice")
        assert lines[aid]["payments"] == sum(n for (_, kind), n in entries.items() if kind == "supplierPayment")
        assert lines[aid]["attachments"] == sum(1 for v in state["vouchers"] if (v["attachment"] or {}).get("pages"))
        assert lines[aid]["suppliers"] == len(state["suppliers"]) - suppliers_before[i]
    assert run.report["totals"]["invoices"] == sum(lines[a]["invoices"] for a in AGREEMENTS.values()) > 0

    # a deleted bill withdraws its draft, a changed one replaces it: counted by the run that did it
    states = staged_states("agr_0001")
    booked = sorted(b for b, s in states.items() if s == "booked")
    deleted, changed = booked[0], booked[1]
    drafts = {(r.bill_id, r.entry_kind) for r in ledger_rows("agr_0001") if r.status == "posted"}
    roger.control("POST", "bills/update", {"company_id": "cmp_0001", "bill_id": deleted, "changes": {"deleted": True}})
    roger.control(
        "POST",
        "bills/update",
        {"company_id": "cmp_0001", "bill_id": changed, "changes": {"amount": "4321.10", "vat_amount": None}},
    )
    deleted_before = state_of(economic, 1)["entries"]["deleted"]

    rerun = run_bills(ALL)

    assert rerun.state == "success", rerun.failures
    line = next(a for a in rerun.report["agreements"] if a["agreement"] == "agr_0001")
    withdrawn = sum(1 for bill, _ in drafts if bill == deleted)
    replaced = sum(1 for bill, _ in drafts if bill == changed)
    assert (line["withdrawn"], line["replaced"]) == (withdrawn, replaced)
    assert state_of(economic, 1)["entries"]["deleted"] - deleted_before == withdrawn + replaced
    assert line["invoices"] + line["payments"] == replaced  # the changed bill's entries posted again


def test_a_run_alerts_once_even_when_the_database_is_down(monkeypatch):
    from roger_economic import alerts as alerting

    monkeypatch.setenv("ROGER_ECONOMIC_DB_URL", "postgresql+psycopg2://postgres@127.0.0.1:1/roger_economic")
    dispose_engines()
    run_id = f"no-database-{uuid.uuid4().hex}"
    try:
        assert not alerting.already_sent(run_id)
        alerting.mark_sent(run_id, ["webhook"])
        assert alerting.already_sent(run_id)  # a retried summarise does not alert twice
    finally:
        dispose_engines()


def test_a_stuck_agreement_holds_back_no_other_even_with_one_thread(project_db):
    from roger_economic.steps import fanout

    release = threading.Event()

    def work(aid: str) -> dict:
        if aid == "agr_0001":
            release.wait(60)  # stuck (a call that never answers)
        return {"done": 1}

    try:
        results = fanout.each(list(AGREEMENTS.values()), work, "r-stuck", "extract", threads=1, deadline=0.5)
    finally:
        release.set()

    assert results["agr_0001"]["outcome"] == "failed" and "took longer than 0.5 s" in results["agr_0001"]["message"]
    assert results["agr_0002"] == results["agr_0003"] == {"outcome": "ok", "done": 1}
    with session() as sess:  # the run report says the same
        rows = {
            r.agreement_id: r.outcome
            for r in sess.scalars(select(models.RunReport).where(models.RunReport.run_id == "r-stuck"))
        }
    assert rows == {"agr_0001": "failed", "agr_0002": "ok", "agr_0003": "ok"}


class _BrokenHook(_HookHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(500)
        self.end_headers()


def test_a_webhook_that_is_down_does_not_keep_the_email_from_going_out(demo, airflow_db, monkeypatch):
    smtp = SmtpSink()
    hook = ThreadingHTTPServer(("127.0.0.1", 0), _BrokenHook)
    for server in (smtp, hook):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("ROGER_ECONOMIC_ALERT_WEBHOOK", f"http://127.0.0.1:{hook.server_port}/alerts")
    monkeypatch.setenv("ROGER_ECONOMIC_ALERT_EMAILS", "bogholder@example.test")
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": smtp.server_address[1],
                "extra": {"from_email": "roger-economic@example.test", "disable_tls": True, "disable_ssl": True},
            }
        ),
    )
    try:
        run_master_data()
        run = run_bills(ALL)  # agr_0003 has quarantined bills: the night alerts
    finally:
        smtp.shutdown()
        hook.shutdown()

    assert len(smtp.messages) == 1
    mail = message_from_bytes(smtp.messages[0])
    assert "agr_0003" in "".join(
        part.get_payload(decode=True).decode() for part in mail.walk() if not part.is_multipart()
    )
    assert run.state == "failed"  # the alert that did not go out is not silent either


def test_a_summary_that_failed_before_its_alert_still_alerts_once(alerts):
    from roger_economic_airflow.alerts import summary_failed

    run_id = f"summary-failed-{uuid.uuid4().hex}"
    context = {"run_id": run_id, "exception": TimeoutError("summarise ran out of time")}
    summary_failed(context)  # the on_failure_callback of summarise
    summary_failed(context)  # a second failure of the same run

    alert = _only_alert(alerts, run_id)
    assert "the run's summary failed (TimeoutError)" in alert["problems"][0]
