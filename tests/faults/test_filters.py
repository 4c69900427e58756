"""Roger text inside an e-conomic ``filter=`` is a value, never filter language.

A vendor named ``Zeta Consult$or:name$like:*`` written raw into ``name$eq:...`` turns the look-up into
"every supplier" (the shared economic-api README, "Paging and filtering"): the bill would be booked to
supplier 1, another company, and that link kept for good. The sandbox parses the filter language as the
README describes it, so a raw value really does match everything there.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from roger_economic import pipeline
from roger_economic.db import models, session
from roger_economic.economic.client import EconomicClient
from roger_economic.economic.conventions import filter_eq
from roger_economic.http import Calls, RetryPolicy
from sandboxes import world
from tests.faults.helpers import arm, control, disarm, endpoints, fired, ledger_rows, prepare, state_of

TRICKY = "Zeta Consult$or:name$like:*"
NAMES = (TRICKY, "Alpha (DK) ApS", "Beta) $and:name$like:*", "Gamma *", "Delta $$ $( $) $*", "Eps$", "(*)")


def _client(economic) -> EconomicClient:
    return EconomicClient(
        economic.base_url,
        world.DEFAULT_APP_SECRET,
        world.grant_token(1),
        Calls("agr_0001", RetryPolicy(max_attempts=1)),
    )


def _supplier(name: str) -> dict:
    return {
        "name": name,
        "currency": "DKK",
        "supplierGroup": {"supplierGroupNumber": 1},
        "paymentTerms": {"paymentTermsNumber": 1},
        "vatZone": {"vatZoneNumber": 1},
    }


def test_a_raw_value_matches_every_supplier_in_the_sandbox_an_escaped_one_only_itself(economic_only):
    client = _client(economic_only)
    everyone = client.collection("/suppliers")
    assert len(everyone) > 1
    made = {
        name: client.create_supplier(_supplier(name), f"rs-filter-{n}")["supplierNumber"]
        for n, name in enumerate(NAMES)
    }

    raw = client.collection("/suppliers", f"name$eq:{TRICKY}")
    assert len(raw) == len(everyone) + len(NAMES)  # what e-conomic would do with the unescaped value
    for name, number in made.items():
        found = client.collection("/suppliers", filter_eq("name", name))
        assert [s["supplierNumber"] for s in found] == [number], name


def test_an_interrupted_supplier_creation_is_found_by_its_literal_name_and_the_bill_booked_to_it(demo):
    roger, economic = demo
    prepare(["agr_0001"], "prepare-1")  # the demo bills booked first: the new vendor is the only one to create
    assert pipeline.load(["agr_0001"], endpoints(), "run-demo")["agr_0001"]["outcome"] == "ok"
    bill = control(
        roger,
        "POST",
        "bills/add",
        {
            "company_id": world.company_id(1),
            "bill": {
                "updated_at": "2026-11-20T10:00:00Z",
                "status": "UPCOMING",
                "category_id": "cat_office",
                "vendor": {"name": TRICKY, "cvr": None},
            },
        },
    )["id"]
    prepare(["agr_0001"], "prepare-2")
    before = {s["supplierNumber"] for s in state_of(economic, 1)["suppliers"]}
    # the creation is processed, its answer lost on every try: the load gives up, the link says "creating"
    arm(economic, kind="lost_answer", scope="700001", method="POST", path="^/suppliers$", times=4)
    with pytest.raises(pipeline.AgreementsFailed, match="agr_0001"):
        pipeline.load(["agr_0001"], endpoints(), "run-interrupted")
    assert [f["kind"] for f in fired(economic)] == ["lost_answer"] * 4
    zeta = [s for s in state_of(economic, 1)["suppliers"] if s["name"] == TRICKY]
    assert len(zeta) == 1 and zeta[0]["supplierNumber"] not in before
    disarm(economic)

    result = pipeline.load(["agr_0001"], endpoints(), "run-again")  # looks the supplier up before creating

    assert result["agr_0001"]["outcome"] == "ok", result
    suppliers = state_of(economic, 1)["suppliers"]
    assert [s["supplierNumber"] for s in suppliers if s["name"] == TRICKY] == [zeta[0]["supplierNumber"]]
    booked = [e for v in state_of(economic, 1)["vouchers"] for e in v["entries"] if f"[{bill}]" in e["text"]]
    assert booked and {e["supplier"]["supplierNumber"] for e in booked} == {zeta[0]["supplierNumber"]}
    assert {r.status for r in ledger_rows("agr_0001") if r.bill_id == bill} == {"posted"}
    with session() as sess:
        link = sess.scalar(
            select(models.SupplierLink).where(
                models.SupplierLink.agreement_id == "agr_0001", models.SupplierLink.vendor_key.like("name:%zeta%")
            )
        )
    assert link is not None and link.supplier_number == zeta[0]["supplierNumber"]
