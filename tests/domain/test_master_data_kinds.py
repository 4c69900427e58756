"""A step that reads only some kinds of master data never takes a kind it did not read for "none"."""

from __future__ import annotations

import pytest

from roger_economic import config, masterdata, setup_rules
from roger_economic.context import load_contexts
from roger_economic.db import session
from roger_economic.steps.load import LOAD_KINDS
from tests.domain.test_model import NORDLYS

SNAPSHOTS = {
    "self": {"modules": [{"name": "Scanning"}], "settings": {"baseCurrency": "DKK"}},
    "accounts": [{"accountNumber": 3990, "accountType": "profitAndLoss", "barred": False}],
    "journals": [{"journalNumber": 2, "name": "Køb"}, {"journalNumber": 3, "name": "Betalinger"}],
    "suppliers": [{"supplierNumber": 7, "name": "Kontorland", "corporateIdentificationNumber": "12345678"}],
    "accounting_years": [{"year": "2026", "fromDate": "2026-01-01", "toDate": "2026-12-31", "periods": []}],
}


def test_a_context_read_for_the_load_refuses_master_data_it_did_not_read(project_db):
    with session() as sess:
        config.store(sess, [NORDLYS])
        sess.flush()
        masterdata.save(sess, NORDLYS.id, SNAPSHOTS)
    with session() as sess:
        ctx = load_contexts(sess, [NORDLYS.id], LOAD_KINDS)[NORDLYS.id]
        whole = load_contexts(sess, [NORDLYS.id])[NORDLYS.id]
    # what a load asks: whether the agreement can book, the scanning add-on, the currency of a new supplier
    assert ctx.stop_reason() is None
    assert masterdata.has_scanning(ctx.snapshots)
    assert ctx.base_currency == "DKK"
    # what it did not read is refused, never answered as "e-conomic has none"
    with pytest.raises(LookupError, match="suppliers"):
        ctx.suppliers_by_cvr  # noqa: B018
    with pytest.raises(LookupError, match="accounting_years"):
        ctx.calendar  # noqa: B018
    assert whole.suppliers_by_cvr == {"12345678": 7}
    assert set(LOAD_KINDS) >= set(setup_rules.STOP_KINDS)
