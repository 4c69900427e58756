"""A JSON column reads back exactly what was written, whatever Roger put in its texts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from roger_economic.config import load_file
from roger_economic.db import models, session
from tests.integration.helpers import ROOT

ODD = {
    "description": "lone surrogate \ud800 and Æble <script>",
    "big": 12345678901234567890123456789,
    "amount": "1197.67",
    "ratio": 0.1,
    "nested": [{"a": None, "b": True}],
}


@pytest.mark.parametrize("project_db", ["sqlite", "postgres"], indirect=True)
def test_a_payload_reads_back_as_written_even_where_the_fast_decoder_refuses_it(project_db):
    load_file(ROOT / "config" / "agreements.example.yaml")
    with session() as sess:
        sess.add(
            models.StagedBill(
                agreement_id="agr_0001",
                bill_id="bill_odd",
                version=1,
                payload=ODD,
                updated_at="2026-11-20T10:00:00Z",
                staged_at=datetime.now(UTC),
            )
        )
    with session() as sess:
        payload = sess.scalar(select(models.StagedBill.payload).where(models.StagedBill.bill_id == "bill_odd"))
    assert payload == ODD
