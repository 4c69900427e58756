"""The agreements file: one strict schema, no double booking by configuration, the database as the source of truth."""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from roger_economic import config
from roger_economic.config import load_file, load_path, read_file
from roger_economic.db import models, session
from roger_economic.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "agreements.example.yaml"
EXAMPLE_TEXT = EXAMPLE.read_text(encoding="utf-8")


def _write(tmp_path: Path, text: str | bytes, name: str = "agreements.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _example_with(tmp_path: Path, old: str, new: str, count: int = 1) -> Path:
    assert old in EXAMPLE_TEXT, old
    return _write(tmp_path, EXAMPLE_TEXT.replace(old, new, count))


def _refused(path: Path) -> str:
    with pytest.raises(ConfigError) as err:
        read_file(path)
    return str(err.value)


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


# ------------------------------------------------------------------------------------------------ the schema


def test_the_example_file_is_valid():
    configs = read_file(EXAMPLE)
    assert [c.id for c in configs] == ["agr_0001", "agr_0002", "agr_0003"]
    first = configs[0]
    assert first.categories["cat_software"] == (2760, "I25") and first.payment_methods["pm_credit"] == 6600
    assert (first.invoice_journal, first.payment_journal, first.supplier_policy) == (2, 3, "create")
    assert configs[1].closed_period_policy == "next_open_date" and configs[2].default_account is None


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "  supplier_policy: create",
            "  suplier_policy: create",
            "defaults: unknown key 'suplier_policy' (did you mean 'supplier_policy'?)",
        ),
        (
            "    default_account: 3990\n",
            "    default_acount: 3990\n",
            "agreement agr_0001: unknown key 'default_acount' (did you mean 'default_account'?)",
        ),
        ("{company_id: cmp_0002,", "{company: cmp_0002,", "unknown key 'company' (did you mean 'company_id'?)"),
        ("defaults:", "default:", "unknown key 'default' (did you mean 'defaults'?)"),
    ],
)
def test_an_unknown_key_is_refused_with_the_closest_known_key(tmp_path, old, new, expected):
    assert expected in _refused(_example_with(tmp_path, old, new))


@pytest.mark.parametrize("written", ['"false"', "no", "off", "yes", "0"])
def test_a_boolean_is_only_true_or_false(tmp_path, written):
    """``"false"`` and ``no`` were read as true: bills booked without their PDF."""
    path = _example_with(tmp_path, "book_without_attachment: false", f"book_without_attachment: {written}")
    message = _refused(path)
    assert "agreement agr_0001: book_without_attachment: Input should be a valid boolean" in message
    assert message.endswith("(from defaults)")  # the key is written once, under `defaults`


@pytest.mark.parametrize("written", ["3990.7", '"3990"', "0o7636", "07636", "3990.0", "true"])
def test_a_number_is_only_an_integer(tmp_path, written):
    """3990.7 was booked to account 3990."""
    path = _example_with(tmp_path, "default_account: 3990", f"default_account: {written}")
    assert "agreement agr_0001: default_account: Input should be a valid integer" in _refused(path)


def test_a_policy_without_what_it_needs_is_refused(tmp_path):
    path = _example_with(tmp_path, "supplier_policy: quarantine", "supplier_policy: default")
    assert "agreement agr_0003: supplier_policy 'default' needs default_supplier" in _refused(path)
    path = _example_with(tmp_path, "closed_period_policy: next_open_date", "closed_period_policy: next_open")
    assert "agreement agr_0002: closed_period_policy: Input should be 'quarantine' or 'next_open_date'" in _refused(
        path
    )


def test_a_duplicate_yaml_key_is_refused(tmp_path):
    """A second ``cat_office`` silently replaced the first."""
    path = _example_with(
        tmp_path,
        "      cat_phone: {account: 2770}\n",
        "      cat_phone: {account: 2770}\n      cat_office: {account: 2200}\n",
    )
    message = _refused(path)
    second = path.read_text(encoding="utf-8").splitlines().index("      cat_office: {account: 2200}") + 1
    assert "duplicate key 'cat_office'" in message and str(path) in message and f"line {second}" in message


def test_anchors_and_aliases_are_refused_and_an_alias_bomb_fails_on_its_first_anchor(tmp_path):
    levels = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]  # 10^9 "lol"s expanded
    bomb = _write(tmp_path, "\n".join(levels) + "\nagreements: [{id: x, categories: *a8}]\n", "bomb.yaml")
    message = _refused(bomb)
    assert "anchors and aliases" in message and "line 1, column 5" in message

    harmless = EXAMPLE_TEXT.replace(
        "payment_methods: {pm_bank: 5820, pm_debit: 5830, pm_credit: 6600, pm_mobilepay: 5840}",
        "payment_methods: &methods {pm_bank: 5820}",
        1,
    )
    harmless = harmless.replace(
        "payment_methods: {pm_bank: 5820, pm_debit: 5830, pm_credit: 6600, pm_mobilepay: 5840}",
        "payment_methods: *methods",
        1,
    )
    assert "anchors and aliases" in _refused(_write(tmp_path, harmless))


def test_a_file_that_is_not_utf8_names_the_file_and_the_byte(tmp_path):
    path = _write(
        tmp_path, EXAMPLE_TEXT.encode("utf-8").replace("Rengøring".encode(), "Reng\xf8ring".encode("latin-1"))
    )
    message = _refused(path)
    offset = EXAMPLE_TEXT.encode("utf-8").index("Rengøring".encode()) + 4
    line = EXAMPLE_TEXT[: EXAMPLE_TEXT.index("Rengøring")].count("\n") + 1
    assert str(path) in message and f"byte 0xf8 at position {offset} (line {line})" in message


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "agreements: []\n", "defaults: {}\n"])
def test_an_empty_file_is_an_error(tmp_path, text):
    """An empty file loaded "0 agreements" and looked like a success."""
    message = _refused(_write(tmp_path, text))
    assert "empty" in message or "lists no agreement" in message or "agreements: is required" in message


def test_two_agreements_on_one_company_or_one_economic_agreement_are_refused(tmp_path):
    """Both booked every bill: 9 entries twice."""
    same_company = _refused(_example_with(tmp_path, "{company_id: cmp_0002,", "{company_id: cmp_0001,"))
    assert "agreement agr_0002: Roger company cmp_0001 is already agreement agr_0001's" in same_company
    same_number = _refused(_example_with(tmp_path, "agreement_number: 700003", "agreement_number: 700001"))
    assert "agreement agr_0003: e-conomic agreement 700001 is already agreement agr_0001's" in same_number
    same_id = _refused(_example_with(tmp_path, "id: agr_0002", "id: agr_0001"))
    assert "agreement id agr_0001 appears twice" in same_id


@pytest.mark.parametrize("written", ["token: s3cr3t-T0KEN", "token: 123456789", "token: 'env:'"])
def test_a_token_in_the_file_is_refused_without_repeating_it(tmp_path, written):
    path = _example_with(tmp_path, "token: env:ROGER_TOKEN_AGR_0002", written)
    message = _refused(path)
    assert "agreement agr_0002: roger.token:" in message
    assert "s3cr3t" not in message and "123456789" not in message
    whole = _refused(
        _example_with(tmp_path, "roger: {company_id: cmp_0002, token: env:ROGER_TOKEN_AGR_0002}", "roger: s3cr3t-T0KEN")
    )
    assert "agreement agr_0002: roger:" in whole and "s3cr3t" not in whole


def test_the_ui_setup_obeys_the_same_rules():
    ok = {
        "invoice_journal": 2,
        "payment_journal": 3,
        "supplier_policy": "create",
        "supplier_group": 1,
        "payment_terms": 1,
        "closed_period_policy": "quarantine",
        "book_without_attachment": False,
    }
    assert config.check_setup(ok) == []
    labels = {
        "supplier_policy": "Supplier policy",
        "supplier_group": "Supplier group",
        "payment_terms": "Payment terms",
    }
    assert config.check_setup({**ok, "payment_terms": None}, labels) == [
        "Supplier policy 'create' needs Supplier group and Payment terms"
    ]
    assert config.check_setup({**ok, "book_without_attachment": "false"}) == [
        "book_without_attachment: Input should be a valid boolean (got 'false')"
    ]
    assert (
        "supplier_policy: Input should be 'create', 'default' or 'quarantine'"
        in config.check_setup({**ok, "supplier_policy": "always"})[0]
    )


# ------------------------------------------------------------------------------------------------ the database


def _agreements(url: str) -> dict[str, models.Agreement]:
    with session(url) as sess:
        return {a.id: a for a in sess.scalars(select(models.Agreement))}


def _ui_edit(url: str, agreement_id: str) -> None:
    """What the setup page stores: columns and mapping tables."""
    with session(url) as sess:
        row = sess.get(models.Agreement, agreement_id)
        row.default_account = 2800
        config.save_mappings(
            sess, agreement_id, {"cat_office": (2750, None), "cat_marketing": (2200, "I25")}, {"pm_bank": 5820}
        )


def test_a_second_load_changes_nothing_and_a_ui_edit_survives_a_load(project_db, tmp_path):
    first = load_path(EXAMPLE, project_db)
    assert first.added == ["agr_0001", "agr_0002", "agr_0003"]
    again = load_path(EXAMPLE, project_db)
    assert again.unchanged == ["agr_0001", "agr_0002", "agr_0003"] and not again.added

    _ui_edit(project_db, "agr_0003")
    kept = load_path(EXAMPLE, project_db)
    assert list(kept.differs) == ["agr_0003"] and kept.unchanged == ["agr_0001", "agr_0002"]
    assert "agr_0003: differs, not changed (use --replace)" in kept.lines()
    diff = kept.differs["agr_0003"]
    assert "default_account: 2800 → None" in diff
    assert "category cat_marketing: removed (was account 2200, VAT I25)" in diff
    assert "category cat_phone: added account 2770" in diff and "payment method pm_debit: added account 5830" in diff
    assert _agreements(project_db)["agr_0003"].default_account == 2800  # the UI's edit is still there

    replaced = load_path(EXAMPLE, project_db, replace=True)
    assert replaced.replaced == {"agr_0003": diff} and replaced.unchanged == ["agr_0001", "agr_0002"]
    assert _agreements(project_db)["agr_0003"].default_account is None
    assert load_path(EXAMPLE, project_db).unchanged == ["agr_0001", "agr_0002", "agr_0003"]


def _audit(url: str) -> list[tuple[str, str, str, dict, dict]]:
    with session(url) as sess:
        rows = sess.scalars(select(models.SetupAudit).order_by(models.SetupAudit.id))
        return [(r.agreement_id, r.actor, r.action, r.before, r.after) for r in rows]


def test_every_change_a_load_makes_is_audited_with_who_and_before_and_after(project_db, tmp_path):
    load_path(EXAMPLE, project_db, actor="cli:ops")
    added = _audit(project_db)
    assert [(aid, actor, action) for aid, actor, action, *_ in added] == [
        (aid, "cli:ops", "config_add") for aid in ("agr_0001", "agr_0002", "agr_0003")
    ]
    assert added[2][3] == {} and added[2][4]["roger_company_id"] == "cmp_0003"
    assert added[2][4]["category cat_phone"] == "2770" and added[2][4]["payment method pm_debit"] == "5830"
    assert "token" not in repr(added).replace("_token_ref", "")  # references only: a token is never audited

    load_path(EXAMPLE, project_db, actor="cli:ops")  # nothing changes: nothing recorded
    _ui_edit(project_db, "agr_0003")
    load_path(EXAMPLE, project_db, actor="cli:ops")  # differs, not replaced: nothing recorded
    assert len(_audit(project_db)) == 3

    load_path(EXAMPLE, project_db, replace=True, actor="cli:ops")
    aid, actor, action, before, after = _audit(project_db)[-1]
    assert (aid, actor, action) == ("agr_0003", "cli:ops", "config_replace")
    assert before["default_account"] == 2800 and after["default_account"] is None  # what the load undid
    assert before["category cat_marketing"] == "2200 / I25" and after["category cat_marketing"] is None
    assert before["payment method pm_debit"] is None and after["payment method pm_debit"] == "5830"
    assert "name" not in before  # only what changed

    doc = yaml.safe_load(EXAMPLE_TEXT)
    doc["agreements"] = [a for a in doc["agreements"] if a["id"] == "agr_0002"]
    load_path(_write(tmp_path, yaml.safe_dump(doc)), project_db, deactivate_missing=True, actor="cli:ops")
    assert _audit(project_db)[-2:] == [
        ("agr_0001", "cli:ops", "config_deactivate", {"active": True}, {"active": False}),
        ("agr_0003", "cli:ops", "config_deactivate", {"active": True}, {"active": False}),
    ]


def test_an_agreement_on_a_company_already_in_the_database_is_refused_and_nothing_is_stored(project_db, tmp_path):
    load_file(EXAMPLE, project_db)
    other = _write(
        tmp_path,
        EXAMPLE_TEXT.replace("id: agr_0001", "id: agr_0101")
        .replace("agreement_number: 700001", "agreement_number: 700101")
        .replace("id: agr_0002", "id: agr_0102"),
    )
    with pytest.raises(ConfigError) as err:
        load_file(other, project_db, replace=True)
    assert "agreement agr_0101: Roger company cmp_0001 is already agreement agr_0001 (in the database)'s" in str(
        err.value
    )
    assert "agreement agr_0102: e-conomic agreement 700002 is already agreement agr_0002 (in the database)'s" in str(
        err.value
    )
    assert sorted(_agreements(project_db)) == ["agr_0001", "agr_0002", "agr_0003"]


def test_agreements_missing_from_the_file_are_listed_and_deactivated_only_when_asked(project_db, tmp_path):
    load_file(EXAMPLE, project_db)
    doc = yaml.safe_load(EXAMPLE_TEXT)
    doc["agreements"] = [a for a in doc["agreements"] if a["id"] == "agr_0002"]
    only_two = _write(tmp_path, yaml.safe_dump(doc, allow_unicode=True))

    listed = load_path(only_two, project_db)
    assert listed.missing == {"agr_0001": "active", "agr_0003": "active"} and listed.unchanged == ["agr_0002"]
    assert "agr_0001: in the database, not in the file: left active (use --deactivate-missing)" in listed.lines()
    assert all(a.active for a in _agreements(project_db).values())

    done = load_path(only_two, project_db, deactivate_missing=True)
    assert done.missing == {"agr_0001": "deactivated", "agr_0003": "deactivated"}
    assert {i: a.active for i, a in _agreements(project_db).items()} == {
        "agr_0001": False,
        "agr_0002": True,
        "agr_0003": False,
    }
    with session(project_db) as sess:
        assert config.active_agreement_ids(sess) == ["agr_0002"]


def test_a_token_reference_that_does_not_resolve_is_named_without_its_value(project_db, monkeypatch):
    for i in (1, 2, 3):
        monkeypatch.setenv(f"ROGER_TOKEN_AGR_000{i}", f"roger-secret-{i}")
        monkeypatch.setenv(f"ECONOMIC_GRANT_TOKEN_AGR_000{i}", f"grant-secret-{i}")
    monkeypatch.delenv("ECONOMIC_GRANT_TOKEN_AGR_0002")
    report = load_path(EXAMPLE, project_db)
    assert report.token_problems == [
        "agreement agr_0002: economic.grant_token: token reference env:ECONOMIC_GRANT_TOKEN_AGR_0002 is not set in "
        "the environment"
    ]
    assert "secret" not in "\n".join(report.lines())
    assert report.added == ["agr_0001", "agr_0002", "agr_0003"]  # named, not refused: workers may hold the env


def test_a_connection_token_reference_is_checked_with_a_look_up_and_named_as_unchecked_without(tmp_path):
    path = _example_with(tmp_path, "token: env:ROGER_TOKEN_AGR_0003", "token: conn:roger_agr_0003")
    configs = read_file(path)
    unchecked = "agreement agr_0003: roger.token: conn:roger_agr_0003 is an Airflow connection, not checked here"
    assert unchecked in config.token_problems(configs, None)
    passwords = {"roger_agr_0003": "conn-secret"}
    assert not [p for p in config.token_problems(configs, passwords.get) if "agr_0003: roger.token" in p]
    missing = config.token_problems(configs, {}.get)
    assert "agreement agr_0003: roger.token: token reference conn:roger_agr_0003: connection has no password" in missing
    assert "conn-secret" not in "\n".join(missing)


def test_export_writes_the_setup_back_and_loads_unchanged(project_db, tmp_path):
    load_file(EXAMPLE, project_db)
    _ui_edit(project_db, "agr_0003")
    with session(project_db) as sess:
        sess.get(models.Agreement, "agr_0002").active = False
    first, second = tmp_path / "export-1.yaml", tmp_path / "export-2.yaml"
    assert config.export_file(first, project_db) == 3
    config.export_file(second, project_db)
    assert first.read_bytes() == second.read_bytes()

    assert load_path(first, project_db).unchanged == ["agr_0001", "agr_0002", "agr_0003"]
    again = load_path(first, project_db, replace=True)
    assert again.unchanged == ["agr_0001", "agr_0002", "agr_0003"] and not again.replaced and not again.missing
    assert _agreements(project_db)["agr_0003"].default_account == 2800
    assert [c.id for c in read_file(first)] == ["agr_0001", "agr_0002", "agr_0003"]


# ------------------------------------------------------------------------------------------------ the command line


@pytest.mark.parametrize("project_db", ["sqlite"], indirect=True)
def test_the_command_line_adds_then_reports_nothing_changed(project_db, tmp_path):
    first = _cli("load", str(EXAMPLE))
    assert first.returncode == 0, first.stderr
    assert "agr_0001: added" in first.stdout and "3 added" in first.stdout
    second = _cli("load", str(EXAMPLE))  # the demo's second run
    assert second.returncode == 0, second.stderr
    assert "agr_0003: unchanged" in second.stdout and "0 added, 0 replaced, 3 unchanged" in second.stdout

    _ui_edit(project_db, "agr_0003")
    kept = _cli("load", str(EXAMPLE))
    assert kept.returncode == 1
    assert (
        "agr_0003: differs, not changed (use --replace)" in kept.stdout
        and "default_account: 2800 → None" in kept.stdout
    )
    replaced = _cli("load", str(EXAMPLE), "--replace")
    assert replaced.returncode == 0 and "agr_0003: replaced" in replaced.stdout

    who = f"cli:{getpass.getuser()}"
    assert [(a[1], a[2]) for a in _audit(project_db) if a[0] == "agr_0003"] == [
        (who, "config_add"),
        (who, "config_replace"),
    ]

    exported = tmp_path / "export.yaml"
    out = _cli("export", str(exported))
    assert out.returncode == 0 and "exported 3 agreements" in out.stdout
    assert _cli("load", str(exported), "--replace").stdout.count(": unchanged") == 3


@pytest.mark.parametrize("project_db", ["sqlite"], indirect=True)
def test_a_csv_import_from_the_command_line_is_audited(project_db, tmp_path, monkeypatch):
    monkeypatch.setenv("CFG_ROGER", "sbx-roger-cfg")
    monkeypatch.setenv("CFG_GRANT", "sbx-grant-cfg")
    path = tmp_path / "clients.csv"
    path.write_text(
        "roger_company_id,roger_token_ref,economic_token_ref\ncmp_0040,env:CFG_ROGER,env:CFG_GRANT\n", encoding="utf-8"
    )
    done = _cli("import-csv", str(path), "--invoice-journal", "2", "--payment-journal", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    [(aid, actor, action, _before, _after)] = _audit(project_db)
    assert (aid, actor, action) == ("agr_cmp_0040", f"cli:{getpass.getuser()}", "import_csv")


@pytest.mark.parametrize("project_db", ["sqlite"], indirect=True)
def test_the_command_line_refuses_a_bad_file_and_stores_nothing(project_db, tmp_path):
    bad = _example_with(tmp_path, "{company_id: cmp_0002,", "{company_id: cmp_0001,")
    result = _cli("load", str(bad))
    assert result.returncode == 2 and "Roger company cmp_0001 is already agreement agr_0001's" in result.stderr
    assert "Traceback" not in result.stderr
    assert _agreements(project_db) == {}
