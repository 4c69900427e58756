"""e-conomic's numbers come back as exact decimals, and what the project stores of them stays exact.

With floats, an amount read back (``-1250.1``) is not equal to the ``Decimal`` that was posted, and a VAT
rate or exchange rate is off in its last digits; the master-data snapshots are stored as JSON, which takes
no ``Decimal``, so they are stored as the exact text e-conomic sent.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from devkit import local
from roger_economic.economic.client import EconomicClient
from roger_economic.errors import ValidationRejected
from roger_economic.http import Calls, RetryPolicy
from sandboxes import world


@pytest.fixture(scope="module")
def boxes():
    roger, economic = local.start_sandboxes(agreements=1, bills=1, prefix="dec-", app_secret="dec-app")
    yield roger, economic
    roger.stop()
    economic.stop()


@pytest.fixture()
def economic(boxes):
    return boxes[1]


def _client(economic) -> EconomicClient:
    return EconomicClient(
        economic.base_url, "dec-app", world.grant_token(1, "dec-"), Calls("agr_0001", RetryPolicy(base_delay=0.01))
    )


def _voucher(amount: Decimal, vat: Decimal, text: str) -> dict:
    return {
        "accountingYear": {"year": "2026"},
        "entries": {
            "supplierInvoices": [
                {
                    "supplier": {"supplierNumber": 1},
                    "amount": amount,
                    "contraAccount": {"accountNumber": 2750},
                    "contraVatAccount": {"vatCode": "I25"},
                    "contraVatAmount": vat,
                    "currency": {"code": "DKK"},
                    "date": "2026-10-05",
                    "dueDate": "2026-10-19",
                    "text": text,
                }
            ]
        },
    }


def test_an_amount_read_back_equals_the_decimal_that_was_posted(economic):
    client = _client(economic)
    amount, vat = Decimal("-1250.10"), Decimal("-250.02")
    created = client.post_vouchers(2, [_voucher(amount, vat, "Decimal ApS faktura [bill_DEC0000001]")], "dec-1")
    number = created[0]["entries"]["supplierInvoices"][0]["journalEntryNumber"]

    entry = client.entry(2, number)

    assert entry is not None and entry["amount"] == amount and entry["contraVatAmount"] == vat
    assert created[0]["entries"]["supplierInvoices"][0]["amount"] == amount
    found = [e for e in client.entries(2) if e["journalEntryNumber"] == number]
    assert [e["amount"] for e in found] == [amount]


def test_rates_in_master_data_are_exact(economic):
    rates = {v["vatCode"]: v.get("ratePercentage") for v in _client(economic).collection("/vat-accounts")}
    assert rates["I25"] == Decimal(25)
    assert all(isinstance(r, Decimal | int) for r in rates.values() if r is not None)


def test_a_rejected_amount_is_named_as_it_was_written(economic):
    voucher = _voucher(Decimal("-100.005"), Decimal("-20.001"), "x [bill_DEC0000002]")
    with pytest.raises(ValidationRejected) as caught:
        _client(economic).post_vouchers(2, [voucher], "dec-2")
    assert "-100.005" in str(caught.value) and "Decimal(" not in str(caught.value)


def test_master_data_snapshots_are_stored_with_exact_text_and_read_back_as_decimals(project_db, boxes, monkeypatch):
    """The refresh stores what e-conomic answered (decimals as their text); the bills run reads exact rates."""
    from roger_economic import pipeline
    from roger_economic.config import load_file
    from roger_economic.context import load_contexts
    from roger_economic.credentials import Endpoints
    from roger_economic.db import models, session
    from tests.faults.helpers import ROOT

    roger, economic = boxes
    for name, value in local.sandbox_env(1, roger.base_url, economic.base_url, "dec-", "dec-app").items():
        monkeypatch.setenv(name, value)
    load_file(ROOT / "config" / "agreements.example.yaml")

    result = pipeline.refresh_master_data(["agr_0001"], Endpoints.from_env(), "md-decimals")

    assert result["agr_0001"]["outcome"] == "ok", result
    with session() as sess:
        stored = sess.get(models.MasterData, ("agr_0001", "vat_accounts")).payload
        ctx = load_contexts(sess, ["agr_0001"])["agr_0001"]
    i25 = next(v for v in stored if v["vatCode"] == "I25")
    assert Decimal(str(i25["ratePercentage"])) == Decimal(25)
    assert ctx.vat_rates["I25"] == Decimal(25)


def test_a_collection_whose_paging_never_ends_stops_with_its_path_named(economic, monkeypatch):
    """A collection answering ``nextPage`` for ever fails its agreement with a clear message (bounded time)."""
    from roger_economic.economic import client as economic_client
    from roger_economic.errors import IntegrationError

    monkeypatch.setattr(economic_client, "PAGE_SIZE", 1)  # the sandbox's accounts then span many pages
    monkeypatch.setattr(economic_client, "MAX_PAGES", 3)
    with pytest.raises(IntegrationError, match=r"/accounts still had a next page after 3 pages"):
        _client(economic).collection("/accounts")
    monkeypatch.setattr(economic_client, "MAX_PAGES", 10_000)
    assert len(_client(economic).collection("/accounts")) > 3
