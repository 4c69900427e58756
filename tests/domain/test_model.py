"""The agreement is defined once (roger_economic.model): the table, the file, the context and the form use it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from roger_economic import config
from roger_economic.context import load_contexts
from roger_economic.db import models, session
from roger_economic.model import COLUMNS, POLICY_FIELDS, SETUP_FIELDS, Agreement

# the table's columns that are not the agreement's setup but the runs' own bookkeeping
OPERATIONAL = {"lease_owner", "lease_until", "updated_at"}

NORDLYS = Agreement(
    id="agr_0001",
    name="Nordlys ApS",
    roger_company_id="cmp_0001",
    roger_token_ref="env:ROGER_TOKEN_1",
    economic_agreement_number=700001,
    economic_token_ref="conn:economic_agr_0001",
    invoice_journal=2,
    payment_journal=3,
    default_account=3990,
    supplier_policy="create",
    supplier_group=1,
    payment_terms=1,
    closed_period_policy="next_open_date",
    book_without_attachment=True,
    categories={"cat_office": (2750, "I25"), "cat_travel": (2800, None)},
    payment_methods={"pm_bank": 5820},
)


def test_the_agreements_table_stores_exactly_the_models_columns():
    table = {c.name for c in models.Agreement.__table__.columns}
    assert set(COLUMNS) == table - OPERATIONAL
    assert set(SETUP_FIELDS) <= set(COLUMNS) and set(POLICY_FIELDS) <= set(SETUP_FIELDS)
    for name in COLUMNS:  # an optional field is a nullable column, and the other way round
        optional = Agreement.model_fields[name].default is None and not Agreement.model_fields[name].is_required()
        assert models.Agreement.__table__.columns[name].nullable == optional, name


def test_a_row_written_and_read_back_is_the_same_agreement():
    row = NORDLYS.to_row(models.Agreement())
    assert {name: getattr(row, name) for name in COLUMNS} == NORDLYS.model_dump(include=set(COLUMNS))
    assert Agreement.from_row(row, NORDLYS.categories, NORDLYS.payment_methods) == NORDLYS


def test_the_file_the_database_and_the_context_hold_one_agreement(project_db, tmp_path):
    with session(project_db) as sess:
        config.store(sess, [NORDLYS])
    path = tmp_path / "agreements.yaml"
    with session(project_db) as sess:
        assert config.stored_config(sess, NORDLYS.id) == NORDLYS
        path.write_text(config.export_text(config.export_document(sess)), encoding="utf-8")
        ctx = load_contexts(sess, [NORDLYS.id])[NORDLYS.id]
    assert config.read_file(path) == [NORDLYS]
    assert ctx.settings == NORDLYS.model_copy(update={"categories": {}, "payment_methods": {}})
    assert ctx.categories == NORDLYS.categories and ctx.methods == NORDLYS.payment_methods


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"roger_token_ref": "s3cr3t"}, "never the token itself"),
        ({"invoice_journal": 0}, "greater than or equal to 1"),
        ({"supplier_policy": "always"}, "'create', 'default' or 'quarantine'"),
        ({"book_without_attachment": "yes"}, "valid boolean"),
    ],
)
def test_an_agreement_is_checked_when_it_is_built(change, complaint):
    with pytest.raises(ValidationError, match=complaint):
        Agreement(**{**NORDLYS.model_dump(), **change})
