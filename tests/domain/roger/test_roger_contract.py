"""The Roger client's judge of the contract: the package's copy is the shared contract, and a sandbox that keeps
the contract is judged clean by it (the two read the same openapi.yaml independently)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from devkit import local
from roger_economic.http import Calls
from roger_economic.roger import contract
from roger_economic.roger.client import RogerClient
from sandboxes import world

ROOT = Path(__file__).resolve().parents[3]
SHARED = next(
    (
        p / "shared" / "roger-api" / "openapi.yaml"
        for p in ROOT.parents
        if (p / "shared" / "roger-api" / "openapi.yaml").is_file()
    ),
    Path("/nonexistent"),
)


@pytest.mark.skipif(not SHARED.exists(), reason="the shared folder is not beside the project")
def test_the_packaged_contract_is_the_shared_one():
    assert contract.CONTRACT.read_bytes() == SHARED.read_bytes()


def test_the_sandboxs_bills_keep_the_contract_and_numbers_stay_decimal():
    roger, economic = local.start_sandboxes(agreements=1, bills=40, prefix="ctr-")
    try:
        client = RogerClient(f"{roger.base_url}/v1", "cmp_0001", world.roger_token(1, "ctr-"), Calls("agr_0001"))
        bills = list(client.bills(None, None, limit=9))
        problems = roger.control("GET", "problems?company_id=cmp_0001")
    finally:
        roger.stop()
        economic.stop()
    assert len(bills) == 40
    for bill in bills:
        paths = [b["path"] for b in contract.breaks(bill)]
        assert paths == (["amount"] if problems.get(bill["id"]) == "amount_3_decimals" else []), bill["id"]
    assert contract.validator() is contract.validator()  # compiled once per process
    number = {**bills[0], "amount": Decimal("1E+9")}
    assert contract.breaks(number) == [
        {"path": "amount", "value": "1000000000", "problem": "is a JSON number, the contract says string"}
    ]


def test_a_bill_id_is_one_path_segment_of_the_roger_url():
    """An id holding ``/``, ``?``, ``#`` or ``..`` must not name another resource (another bill's PDF)."""
    from roger_economic.roger.client import _segment

    assert _segment("bill_01J9") == "bill_01J9"
    assert "/" not in _segment("../../bills/other") and "?" not in _segment("a?b") and "#" not in _segment("a#b")
