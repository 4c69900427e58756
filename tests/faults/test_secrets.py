"""No token value ever reaches a log, an XCom, the project database, a run report or an error message.

The sandboxes are started with recognisable token values; both DAGs run, once cleanly and once with
e-conomic answering 401 for one agreement, 500 for another and Roger rejecting a third; then every
place a token could leak to is searched for them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from devkit import local
from roger_economic import report
from roger_economic.config import load_file
from tests.faults.helpers import ALL, ROOT, arm, control, run_bills, run_master_data

PREFIX = "SECRET-7f3a-"
APP_SECRET = "APPSECRET-9c1d"
NEEDLES = (PREFIX, APP_SECRET, PREFIX.lower(), APP_SECRET.lower())


def _dump(url: str) -> str:
    """Every row of every table of a database, as text."""
    engine = sa.create_engine(url)
    try:
        meta = sa.MetaData()
        meta.reflect(engine)
        parts = []
        with engine.connect() as conn:
            for table in meta.sorted_tables:
                for row in conn.execute(sa.select(table)):
                    parts.append(f"{table.name}: {tuple(row)!r}")
        return "\n".join(parts)
    finally:
        engine.dispose()


def _files(folder: Path) -> dict[str, str]:
    return {str(p): p.read_bytes().decode("utf-8", errors="replace") for p in folder.rglob("*") if p.is_file()}


def _leaks(where: str, text: str) -> list[str]:
    return [f"{where}: ...{text[max(0, text.find(n) - 80) : text.find(n) + 40]}..." for n in NEEDLES if n in text]


def test_no_token_value_leaks_anywhere(project_db, airflow_db, fast_retries, capfd, caplog):
    roger, economic = local.start_sandboxes(agreements=3, bills=6, prefix=PREFIX, app_secret=APP_SECRET)
    try:
        load_file(ROOT / "config" / "agreements.example.yaml")
        run_master_data()
        clean = run_bills(ALL)
        assert clean.state == "success", clean.failures  # the tokens work

        control(economic, "POST", "revoke", {"agreement": 700001})
        arm(economic, kind="status", status=500, scope="700002", times=-1)
        control(roger, "POST", "revoke", {"company_id": "cmp_0003"})
        for company in ("cmp_0001", "cmp_0002"):  # something to post, so that e-conomic is asked
            control(
                roger,
                "POST",
                "bills/add",
                {
                    "company_id": company,
                    "bill": {"updated_at": "2026-11-20T10:00:00Z", "status": "UPCOMING", "category_id": "cat_office"},
                },
            )
        faulty = run_bills(ALL)
        assert faulty.state == "failed"
        assert set(faulty.failures) == {"agr_0001", "agr_0002", "agr_0003"}, faulty.failures
        assert "401" in faulty.failures["agr_0001"] or "token rejected" in faulty.failures["agr_0001"]
        assert "token rejected" in faulty.failures["agr_0003"]
    finally:
        roger.stop()
        economic.stop()
    out, err = capfd.readouterr()

    places: dict[str, str] = {
        "captured stdout": out,
        "captured stderr": err,
        "captured log": caplog.text,
        "run failures": repr([clean.failures, faulty.failures]),
    }
    logs = Path(os.environ["AIRFLOW_HOME"]) / "logs"  # dag.test() logs to the console; files if any
    if logs.exists():
        places.update(_files(logs))
    places.update(_files(report.REPORTS))
    places["project database"] = _dump(project_db)
    airflow_url = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    engine = sa.create_engine(airflow_url)
    with engine.connect() as conn:
        places["airflow xcom"] = "\n".join(repr(tuple(r)) for r in conn.execute(sa.text("SELECT * FROM xcom")))
        places["airflow task instances"] = "\n".join(
            repr(tuple(r)) for r in conn.execute(sa.text("SELECT * FROM task_instance"))
        )
    engine.dispose()

    console = out + err + caplog.text  # the task logs of dag.test(), with the errors' texts
    assert "agr_0002 failed in load" in console and "did not complete" in console
    assert places["airflow xcom"] and places["project database"]
    assert "agr_0001" in places["project database"]
    leaks = [leak for where, text in places.items() for leak in _leaks(where, text)]
    assert not leaks, leaks


def test_a_token_echoed_in_an_error_body_is_scrubbed_before_anything_keeps_it(
    project_db, airflow_db, fast_retries, capfd, caplog
):
    """A remote service may echo the request, its token headers included, in an error body (``echo``)."""
    from roger_economic import pipeline
    from roger_economic.db import models, session
    from tests.faults.helpers import endpoints, fired

    roger, economic = local.start_sandboxes(agreements=3, bills=6, prefix=PREFIX, app_secret=APP_SECRET)
    try:
        load_file(ROOT / "config" / "agreements.example.yaml")
        run_master_data()
        vouchers = r"^/journals/\d+/vouchers$"
        arm(economic, kind="echo", status=400, scope="700001", method="POST", path=vouchers, times=1)  # rejected
        arm(economic, kind="echo", status=500, scope="700002", method="POST", path=vouchers, times=-1)  # gave up
        arm(roger, kind="echo", status=500, scope="cmp_0003", path="/bills$", times=-1)  # Roger's bearer token
        faulty = run_bills(ALL)
        assert faulty.state == "failed"
        assert set(faulty.failures) == {"agr_0002", "agr_0003"}, faulty.failures
        control(economic, "DELETE", "faults", {})
        arm(economic, kind="echo", status=401, scope="700001", path="^/accounting-years$", times=-1)
        stopped = pipeline.refresh_master_data(["agr_0001"], endpoints(), "md-echo")
        assert stopped["agr_0001"]["outcome"] == "stopped"
        assert fired(economic) and {f["kind"] for f in fired(economic)} == {"echo"}
    finally:
        roger.stop()
        economic.stop()
    out, err = capfd.readouterr()

    with session() as sess:  # the echoed bodies were kept (scrubbed) where a user reads them
        status = sess.get(models.AgreementStatus, "agr_0001")
        rejected = list(sess.scalars(sa.select(models.Quarantine).where(models.Quarantine.rule == "economic_rejected")))
        errors = [p.error for p in sess.scalars(sa.select(models.Posting).where(models.Posting.error.is_not(None)))]
        reports = [r.message or "" for r in sess.scalars(sa.select(models.RunReport))]
    assert status.master_data_error and "X-AgreementGrantToken" in status.master_data_error
    assert rejected and errors and "X-AppSecretToken" in rejected[0].message
    assert any("Upstream error 500" in m for m in reports)
    places = {
        "captured stdout": out,
        "captured stderr": err,
        "captured log": caplog.text,
        "run failures": repr(faulty.failures),
        "agreement status": status.master_data_error,
        "quarantine": repr([q.message for q in rejected]),
        "posting errors": repr(errors),
        "run reports": repr(reports),
        "project database": _dump(project_db),
    }
    places.update(_files(report.REPORTS))
    leaks = [leak for where, text in places.items() for leak in _leaks(where, text)]
    assert not leaks, leaks


@pytest.mark.parametrize(
    "echoed",
    [
        '{"headers": {"X-AppSecretToken": "other-app-9f8e", "X-AgreementGrantToken": "other-grant-1a2b"}}',
        "{'Authorization': 'Bearer other-grant-1a2b', 'Accept': 'application/json'}",
        "X-AgreementGrantToken: other-grant-1a2b\r\nAuthorization: Bearer other-app-9f8e",
        "GET /callback?token=other-grant-1a2b&state=x failed",
        "upstream said: bearer other-grant-1a2b is expired",
    ],
)
def test_what_looks_like_a_token_is_scrubbed_even_when_it_is_not_the_caller_s(echoed):
    """Another agreement's token, or one the service made up, echoed in an error: its value never stays."""
    from roger_economic.errors import ApiError

    error = ApiError(
        "e-conomic", "agr_0001", "GET", "/self", 500, echoed, {"echo": echoed}, secrets=("SECRET-7f3a-mine",)
    )
    for text in (str(error), repr(error.details)):
        assert "other-grant-1a2b" not in text and "other-app-9f8e" not in text, text
        assert "***" in text
