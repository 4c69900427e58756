"""One agreement model and one wording of the setup rules, from the file through the database to the setup form.

The agreement read from a file, stored, shown on the setup page and saved unchanged is the agreement the file
says; each setup rule says the same words to the file's reader, the page, the mapping gaps and a stopped run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from tests import factories

from roger_economic import config, masterdata, setup_rules
from roger_economic.context import load_contexts
from roger_economic.db import session
from roger_economic.errors import ConfigError
from roger_economic.model import Agreement

if TYPE_CHECKING:
    from roger_economic_ui import queries as ui_queries

NORDLYS = Agreement(
    id="agr_0001",
    name="Nordlys ApS",
    roger_company_id="cmp_0001",
    roger_token_ref="env:ROGER_TOKEN_1",
    economic_agreement_number=700001,
    economic_token_ref="conn:economic_agr_0001",
    invoice_journal=2,
    payment_journal=3,
    default_account=2750,
    supplier_policy="create",
    supplier_group=1,
    payment_terms=1,
    closed_period_policy="next_open_date",
    book_without_attachment=True,
    categories={"cat_software": (2760, "I25"), "cat_services": (2800, None)},
    payment_methods={"pm_bank": 5820},
)


@pytest.fixture(scope="module")
def queries() -> Any:
    """The UI's read models, imported as the api-server does: Airflow puts the plugins folder on ``sys.path``."""
    import airflow.settings  # noqa: F401
    from roger_economic_ui import queries

    return queries


def _stored(url: str, agreement: Agreement, snapshots: dict[str, Any] | None = None) -> None:
    with session(url) as sess:
        config.store(sess, [agreement])
        masterdata.save(sess, agreement.id, factories.snapshots(1) if snapshots is None else snapshots)


def _form_of(setup: ui_queries.Setup) -> dict[str, str]:
    """The form as the setup page fills it in from the stored setup (what SAVE submits when nothing is touched)."""
    form = {
        name: "on" if value is True else "" if value in (None, False) else str(value)
        for name, value in setup_rules.values_of(setup.agreement).items()
    }
    for cid, (account, vat) in setup.categories.items():
        form |= {f"cat_account__{cid}": str(account), f"cat_vat__{cid}": vat or ""}
    form |= {f"pm_account__{mid}": str(account) for mid, account in setup.methods.items()}
    return form


def test_file_to_database_to_form_to_file_is_the_same_agreement(project_db, tmp_path, queries):
    source = tmp_path / "in.yaml"
    source.write_text(config.export_text({"agreements": [_file_item(NORDLYS)]}), encoding="utf-8")
    (read,) = config.read_file(source)
    assert read == NORDLYS
    _stored(project_db, read)
    with session(project_db) as sess:
        setup = queries.load_setup(sess, NORDLYS.id)
        assert setup is not None
        parsed = queries.parse_setup_form(setup, _form_of(setup))
        assert parsed.errors == []
        queries.save_setup(sess, setup, parsed)
    with session(project_db) as sess:
        assert config.stored_config(sess, NORDLYS.id) == NORDLYS
        out = tmp_path / "out.yaml"
        out.write_text(config.export_text(config.export_document(sess)), encoding="utf-8")
        assert load_contexts(sess, [NORDLYS.id])[NORDLYS.id].settings == NORDLYS.model_copy(
            update={"categories": {}, "payment_methods": {}}
        )
    assert config.read_file(out) == [NORDLYS]


def _file_item(agreement: Agreement) -> dict[str, Any]:
    return {
        "id": agreement.id,
        "name": agreement.name,
        "roger": {"company_id": agreement.roger_company_id, "token": agreement.roger_token_ref},
        "economic": {
            "agreement_number": agreement.economic_agreement_number,
            "grant_token": agreement.economic_token_ref,
        },
        "journals": {"supplier_invoices": agreement.invoice_journal, "supplier_payments": agreement.payment_journal},
        **{name: getattr(agreement, name) for name in config.POLICY_FIELDS},
        "categories": {
            c: {"account": a, **({"vat_code": v} if v else {})} for c, (a, v) in agreement.categories.items()
        },
        "payment_methods": dict(agreement.payment_methods),
    }


def test_a_policy_rule_says_the_same_in_the_file_and_on_the_page(project_db, tmp_path, queries):
    needs = setup_rules.NEEDS["create"]
    path = tmp_path / "agreements.yaml"
    path.write_text(config.export_text({"agreements": [{**_file_item(NORDLYS), "payment_terms": None}]}))
    with pytest.raises(ConfigError, match=needs):
        config.read_file(path)
    _stored(project_db, NORDLYS)
    with session(project_db) as sess:
        setup = queries.load_setup(sess, NORDLYS.id)
        assert setup is not None
        errors = queries.parse_setup_form(setup, {**_form_of(setup), "payment_terms": ""}).errors
    labelled = needs
    for name, label in queries.SETUP_LABELS.items():
        labelled = labelled.replace(name, label)
    assert errors == [labelled] == ["Supplier policy 'create' needs Supplier group and Payment terms"]


def test_no_mapping_is_one_sentence_on_the_page_in_the_gaps_and_in_a_stopped_run(project_db, queries):
    unmapped = NORDLYS.model_copy(update={"default_account": None, "categories": {}})
    _stored(project_db, unmapped)
    with session(project_db) as sess:
        setup = queries.load_setup(sess, NORDLYS.id)
        assert setup is not None
        form = {k: v for k, v in _form_of(setup).items() if not k.startswith("cat_")}
        page = queries.parse_setup_form(setup, form).errors
        gaps = [g["message"] for g in queries.current_gaps(setup) if g["kind"] == "mapping"]
        stopped = load_contexts(sess, [NORDLYS.id])[NORDLYS.id].stop_reason()
    assert page == gaps == [stopped] == [setup_rules.NO_MAPPING]


def test_a_journal_problem_and_missing_master_data_read_the_same_everywhere(project_db, queries):
    snapshots = factories.snapshots(1)
    restricted = {**NORDLYS.model_dump(), "invoice_journal": 3}  # journal 3 takes supplier payments only
    _stored(project_db, Agreement(**restricted), snapshots)
    with session(project_db) as sess:
        setup = queries.load_setup(sess, NORDLYS.id)
        assert setup is not None
        page = queries.parse_setup_form(setup, _form_of(setup)).errors
        gaps = [g["message"] for g in queries.current_gaps(setup) if g["kind"] == "journal"]
        stopped = load_contexts(sess, [NORDLYS.id])[NORDLYS.id].stop_reason()
    (problem,) = [p for p in setup_rules.problems(restricted, snapshots=snapshots) if p.kind == "journal"]
    assert "only takes supplierPayment entries" in problem.message
    assert page == [f"Invoice journal: {problem.message}"] and gaps == [problem.message] and stopped == problem.message

    with session(project_db) as sess:
        masterdata.save(sess, NORDLYS.id, {kind: [] for kind in snapshots})
    with session(project_db) as sess:
        setup = queries.load_setup(sess, NORDLYS.id)
        assert setup is not None
        assert setup_rules.NO_MASTER_DATA in queries.parse_setup_form(setup, _form_of(setup)).errors
        assert load_contexts(sess, [NORDLYS.id])[NORDLYS.id].stop_reason() == setup_rules.NO_MASTER_DATA
