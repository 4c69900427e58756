"""An agreement's status row is written by one function: created when missing, its watermark only forward."""

from __future__ import annotations

import pytest

from roger_economic import agreement_status
from roger_economic.config import load_file
from roger_economic.db import models, session
from tests.faults.helpers import ROOT


def test_a_missing_row_is_created_with_the_fields_given(project_db):
    load_file(ROOT / "config" / "agreements.example.yaml", url=project_db)
    gaps = [{"kind": "category", "item": "cat_x", "message": "unmapped"}]
    with session(project_db) as sess:
        agreement_status.write(sess, {"agr_0001": {"mapping_gaps": gaps, "api_access": True}})
    with session(project_db) as sess:
        row = sess.get_one(models.AgreementStatus, "agr_0001")
        assert (row.mapping_gaps, row.api_access, row.last_counts) == (gaps, True, {})


def test_the_extraction_watermark_only_moves_forward(project_db):
    load_file(ROOT / "config" / "agreements.example.yaml", url=project_db)
    for before in ("2026-03-02T00:00:00Z", "2026-03-01T00:00:00Z"):  # a backfill's older window ends last
        with session(project_db) as sess:
            agreement_status.write(sess, {"agr_0001": {"extracted_until": before}})
    with session(project_db) as sess:
        assert sess.get_one(models.AgreementStatus, "agr_0001").extracted_until == "2026-03-02T00:00:00Z"


def test_an_unknown_field_is_refused(project_db):
    with pytest.raises(ValueError, match="no field colour"), session(project_db) as sess:
        agreement_status.write(sess, {"agr_0001": {"colour": "red"}})
