"""FI payment codes end to end: booked with e-conomic's documented numbers, or held when the agreement lacks the type.

Real sandboxes, the real pipeline steps and database: master data (with ``GET /payment-types``), extract,
validate, load. The e-conomic sandbox judges the payment details by e-conomic's README table and voucher
schema, so a client sending the old guesses (3 for +71, 6 for +75) would be refused with E07520 here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from roger_economic import pipeline
from roger_economic.db import models, session
from tests.faults.helpers import add_bills, control, endpoints, prepare, state_of

DAY = "2026-11-20"
CODES = {"+71": "+71<000000001234567+85123456<", "+75": "+75<0000000012345678+87654321<"}
GOOD = {
    "document_type": "bill",
    "status": "UPCOMING",
    "deleted": False,
    "currency": "DKK",
    "amount": "1250.00",
    "vat_amount": "250.00",
    "issue_date": "2026-11-10",
    "due_date": "2026-11-24",
    "category_id": "cat_office",
    "vendor": {"name": "IKEA Danmark A/S", "cvr": "19028911", "country": "DK"},
    "payment": None,
    "invoice_number": "2026-7101",
    "has_document": True,
}


def _payment_types_booked(economic, i: int) -> dict[str, int]:
    """bill id → the paymentTypeNumber of its invoice in the sandbox's journals."""
    out = {}
    for voucher in state_of(economic, i)["vouchers"]:
        for entry in voucher["payload"]["entries"].get("supplierInvoices", []):
            ptype = (entry.get("paymentDetails") or {}).get("paymentType")
            if ptype:
                out[entry["text"].rsplit("[", 1)[1].rstrip("]")] = ptype["paymentTypeNumber"]
    return out


def _open_quarantine(aid: str) -> dict[str, list[tuple[str, str | None, str]]]:
    with session() as sess:
        rows = sess.scalars(
            select(models.Quarantine).where(
                models.Quarantine.agreement_id == aid, models.Quarantine.released_at.is_(None)
            )
        )
        out: dict[str, list[tuple[str, str | None, str]]] = {}
        for q in rows:
            out.setdefault(q.bill_id, []).append((q.rule, q.value, q.message))
        return out


def _add(roger, i: int, code: str, n: int) -> str:
    bill: dict[str, Any] = {**GOOD, "payment_code": CODES[code], "invoice_number": f"2026-{code[1:]}{n:02d}"}
    return add_bills(roger, i, DAY, 1, **bill)[0]


def test_fi_codes_are_booked_with_documented_numbers_and_a_type_the_agreement_lacks_is_held(demo):
    roger, economic = demo
    control(economic, "POST", "payment-types", {"agreement": 700002, "drop": [17]})  # agreement 2 has no +75
    ids = {(i, code): _add(roger, i, code, i) for i in (1, 2) for code in CODES}
    aids = ["agr_0001", "agr_0002"]
    prepare(aids)
    assert all(r["outcome"] == "ok" for r in pipeline.load(aids, endpoints(), "run-1").values())

    booked_1, booked_2 = _payment_types_booked(economic, 1), _payment_types_booked(economic, 2)
    assert booked_1[ids[(1, "+71")]] == 1 and booked_1[ids[(1, "+75")]] == 17
    assert booked_2[ids[(2, "+71")]] == 1
    assert ids[(2, "+75")] not in booked_2
    held = _open_quarantine("agr_0002")[ids[(2, "+75")]]
    assert held == [
        (
            "payment_type_offered",
            "17",
            "payment type 17 (+75) is not among the agreement's payment types (1, 2, 5, 7, 10, 14)",
        )
    ]
    assert ids[(1, "+75")] not in _open_quarantine("agr_0001")

    # the agreement gets +75: the next master data and run release the bill and book it, nothing twice
    control(economic, "POST", "payment-types", {"agreement": 700002, "add": [17]})
    prepare(aids, "prepare-2")
    pipeline.load(aids, endpoints(), "run-2")
    assert _payment_types_booked(economic, 2)[ids[(2, "+75")]] == 17
    assert ids[(2, "+75")] not in _open_quarantine("agr_0002")
    texts = [
        e["text"]
        for v in state_of(economic, 2)["vouchers"]
        for e in v["payload"]["entries"].get("supplierInvoices", [])
    ]
    assert sum(ids[(2, "+75")] in t for t in texts) == 1
