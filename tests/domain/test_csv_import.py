"""Many clients at once (roger_economic.csv_import): a CSV of agreements, one result per row, tokens never shown."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from roger_economic import config, csv_import
from roger_economic.db import models, session
from roger_economic.errors import ConfigError
from roger_economic.model import Agreement

ROOT = Path(__file__).resolve().parents[2]
SECRET_ROGER, SECRET_GRANT, SECRET_OTHER = "sbx-roger-SECRET-1", "sbx-grant-SECRET-1", "sbx-grant-SECRET-2"
HEADER = "roger_company_id,roger_token_ref,economic_token_ref,name,economic_agreement_number\n"


@pytest.fixture()
def tokens(monkeypatch):
    monkeypatch.setenv("CSV_ROGER_1", SECRET_ROGER)
    monkeypatch.setenv("CSV_GRANT_1", SECRET_GRANT)
    monkeypatch.setenv("CSV_GRANT_2", SECRET_OTHER)
    monkeypatch.setenv("CSV_GRANT_1_AGAIN", SECRET_GRANT)  # another name for the same grant token


def _existing(url: str) -> None:
    """An agreement already in the database: Roger company cmp_0001, e-conomic agreement 700001."""
    cfg = Agreement(
        id="agr_0001", name="Nordlys", roger_company_id="cmp_0001", roger_token_ref="env:CSV_ROGER_1",
        economic_token_ref="env:CSV_GRANT_1", invoice_journal=2, payment_journal=3, economic_agreement_number=700001,
    )  # fmt: skip
    with session(url) as sess:
        config.store(sess, [cfg])


def _import(url: str, text: str, **kwargs) -> list[csv_import.RowResult]:
    with session(url) as sess:
        return csv_import.import_rows(sess, csv_import.read_rows(text.encode()), {"journals": JOURNALS}, **kwargs)


JOURNALS = {"supplier_invoices": 2, "supplier_payments": 3}


def _agreements(url: str) -> dict[str, tuple[str, str, int | None]]:
    with session(url) as sess:
        return {
            a.id: (a.roger_company_id, a.economic_token_ref, a.economic_agreement_number)
            for a in sess.scalars(select(models.Agreement))
        }


def test_each_row_is_created_or_refused_with_its_reason_and_one_bad_row_stops_no_other(project_db, tokens):
    _existing(project_db)
    text = HEADER + (
        "cmp_0002,env:CSV_ROGER_1,env:CSV_GRANT_2,Havnens Bageri,700002\n"  # line 2: fine
        "cmp_0001,env:CSV_ROGER_1,env:CSV_GRANT_2,Again,700009\n"  # 3: the company has an agreement in the db
        "cmp_0003,env:CSV_ROGER_1,env:CSV_GRANT_2,Same grant ref as line 2,\n"  # 4: line 2's e-conomic
        "cmp_0004,env:CSV_ROGER_1,env:CSV_GRANT_1_AGAIN,Same grant token as agr_0001,\n"  # 5
        "cmp_0005,env:CSV_ROGER_1,env:CSV_NOT_SET,Unresolved,\n"  # 6
        "cmp_0006,env:CSV_ROGER_1,env:CSV_GRANT_2,Number taken,700001\n"  # 7: agr_0001's agreement number
        "\n"
        "cmp_0002,env:CSV_ROGER_1,env:CSV_GRANT_2,Company twice in the file,\n"  # 9
        "cmp_0007,env:CSV_ROGER_1,env:CSV_GRANT_2,Bad number,70.0\n"  # 10
    )
    results = _import(project_db, text)
    got = {r.line: (r.outcome, r.reason) for r in results}
    assert [r.line for r in results] == [2, 3, 4, 5, 6, 7, 9, 10]
    assert got[2] == ("created", "")
    assert (
        got[3][0] == "refused"
        and "Roger company cmp_0001 is already agreement agr_0001 (in the database)'s" in (got[3][1])
    )
    assert got[4][0] == "refused" and "grant token env:CSV_GRANT_2 is already agreement agr_cmp_0002's" in got[4][1]
    assert got[5][0] == "refused" and "the same as agreement agr_0001's" in got[5][1]
    assert got[6] == ("refused", "economic_token_ref: token reference env:CSV_NOT_SET is not set in the environment")
    assert got[7][0] == "refused" and "e-conomic agreement 700001 is already agreement agr_0001" in got[7][1]
    assert got[9][0] == "refused" and "exists already (on an earlier line)" in got[9][1]
    assert got[10][0] == "refused" and "economic.agreement_number" in got[10][1]
    assert _agreements(project_db) == {
        "agr_0001": ("cmp_0001", "env:CSV_GRANT_1", 700001),
        "agr_cmp_0002": ("cmp_0002", "env:CSV_GRANT_2", 700002),
    }
    with session(project_db) as sess:
        assert sess.get(models.Agreement, "agr_cmp_0002").name == "Havnens Bageri"
        assert sess.get(models.Agreement, "agr_cmp_0002").invoice_journal == 2


def test_a_token_is_never_shown_even_where_a_reference_belongs(project_db, tokens):
    text = (
        "id;roger_company_id;roger_token_ref;economic_token_ref\n"  # a spreadsheet's semicolons
        f"agr_a;cmp_0010;{SECRET_ROGER};env:CSV_GRANT_1\n"
        f"agr_b;cmp_0011;env:CSV_ROGER_1;{SECRET_OTHER}\n"
        "agr_c;cmp_0012;env:CSV_ROGER_1;env:CSV_GRANT_1\n"
    )
    results = _import(project_db, text)
    shown = "\n".join(r.text() for r in results)
    assert [r.outcome for r in results] == ["refused", "refused", "created"]
    assert "roger.token: must be 'env:VARIABLE' or 'conn:CONNECTION_ID'" in results[0].reason
    assert "economic.grant_token: must be" in results[1].reason
    for secret in (SECRET_ROGER, SECRET_GRANT, SECRET_OTHER):
        assert secret not in shown
    assert set(_agreements(project_db)) == {"agr_c"}


def test_a_connection_reference_is_checked_with_a_look_up_and_named_as_unchecked_without(project_db, tokens):
    text = "roger_company_id,roger_token_ref,economic_token_ref\ncmp_0020,env:CSV_ROGER_1,conn:grant_0020\n"
    assert (
        _import(project_db, text, dry_run=True)[0].reason == "conn:grant_0020: an Airflow connection, not checked here"
    )
    missing = _import(project_db, text, conn_lookup=lambda conn_id: None, dry_run=True)[0]
    assert missing.outcome == "refused" and "conn:grant_0020: connection has no password" in missing.reason
    found = _import(project_db, text, conn_lookup=lambda conn_id: "sbx-grant-0020", dry_run=True)[0]
    assert (found.outcome, found.reason) == ("would be created", "")
    assert _agreements(project_db) == {}  # a dry run stores nothing


def test_a_bad_header_refuses_the_file_with_the_closest_column():
    with pytest.raises(ConfigError, match="unknown key 'roger_token' \\(did you mean 'roger_token_ref'\\?\\)"):
        csv_import.read_rows(b"roger_company_id,roger_token,economic_token_ref\nx,y,z\n")
    with pytest.raises(ConfigError, match="column economic_token_ref is missing"):
        csv_import.read_rows(b"roger_company_id,roger_token_ref\nx,y\n")
    with pytest.raises(ConfigError, match="empty"):
        csv_import.read_rows(b"")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "roger_economic.config", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )


@pytest.mark.parametrize("project_db", ["sqlite"], indirect=True)
def test_the_command_line_imports_a_csv_row_by_row(project_db, tokens, tmp_path):
    path = tmp_path / "clients.csv"
    path.write_text(
        "roger_company_id,roger_token_ref,economic_token_ref,payment_journal\n"
        "cmp_0030,env:CSV_ROGER_1,env:CSV_GRANT_1,\n"
        "cmp_0031,env:CSV_ROGER_1,env:CSV_GRANT_1_AGAIN,\n"
        f"cmp_0032,env:CSV_ROGER_1,{SECRET_OTHER},4\n",
        encoding="utf-8",
    )
    dry = _cli("import-csv", str(path), "--invoice-journal", "2", "--payment-journal", "3", "--dry-run")
    assert dry.returncode == 1 and "1 would be created, 2 refused" in dry.stdout and _agreements(project_db) == {}
    done = _cli("import-csv", str(path), "--invoice-journal", "2", "--payment-journal", "3")
    assert done.returncode == 1, done.stderr
    assert "line 2: agr_cmp_0030 (Roger company cmp_0030): created" in done.stdout
    assert "line 3: agr_cmp_0031 (Roger company cmp_0031): refused: e-conomic agreement" in done.stdout
    assert "3 rows, 1 created, 2 refused" in done.stdout
    for secret in (SECRET_ROGER, SECRET_GRANT, SECRET_OTHER):
        assert secret not in done.stdout + done.stderr
    assert set(_agreements(project_db)) == {"agr_cmp_0030"}
    again = _cli("import-csv", str(path), "--invoice-journal", "2", "--payment-journal", "3")
    assert "line 2: agr_cmp_0030 (Roger company cmp_0030): refused: agreement id agr_cmp_0030 exists" in again.stdout
    no_journals = _cli("import-csv", str(path))
    assert "journals: is required" in no_journals.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("company,roger_token_ref,economic_token_ref\n", encoding="utf-8")
    refused = _cli("import-csv", str(bad))
    assert refused.returncode == 2 and "unknown key 'company'" in refused.stderr and "Traceback" not in refused.stderr
