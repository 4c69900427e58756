"""Whatever Roger sends, every voucher we plan is one e-conomic accepts.

Generated batches of bills (good, odd and bad) go through prepare → validation
→ transform; every planned voucher is serialised as it is posted
(``jsonnum.dumps``), parsed back with exact decimals, and validated against
e-conomic's voucher POST schema with a draft-03 validator extended by what
e-conomic enforces beyond draft-03 (economic-api/README.md): ``maxDecimal`` /
``maxDecimals`` (2 on amounts, 6 on exchange rates), ``oneOf`` under
``paymentDetails.paymentType`` (exactly one alternative), and dates that are
real dates (the schema's pattern is unanchored).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft3Validator, ValidationError, validators

from roger_economic import transform, validation
from roger_economic.economic import jsonnum
from roger_economic.prepare import prepare
from tests import factories as f
from tests.economic_schema import documented_payment_types

SCHEMA_NAME = "journals.journalNumber.vouchers.post.schema.json"
ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------- e-conomic's validator


def _max_decimals(validator: Any, limit: int, instance: Any, schema: dict) -> Iterator[ValidationError]:
    if isinstance(instance, Decimal) and -instance.as_tuple().exponent > limit:
        yield ValidationError(f"{instance} has more than {limit} decimals")
    elif isinstance(instance, float):
        yield ValidationError(f"{instance!r} was parsed as a float, not an exact decimal")


def _one_of(validator: Any, alternatives: list[dict], instance: Any, schema: dict) -> Iterator[ValidationError]:
    matching = [i for i, alt in enumerate(alternatives) if validator.evolve(schema=alt).is_valid(instance)]
    if len(matching) != 1:
        yield ValidationError(f"{instance!r} matches {len(matching)} of the oneOf alternatives {matching}, not one")


def _full_date(validator: Any, fmt: str, instance: Any, schema: dict) -> Iterator[ValidationError]:
    if fmt != "full-date" or not isinstance(instance, str):
        return
    try:
        ok = re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", instance) is not None and bool(date.fromisoformat(instance))
    except ValueError:
        ok = False
    if not ok:
        yield ValidationError(f"{instance!r} is not a real YYYY-MM-DD date")


EconomicValidator = validators.extend(
    Draft3Validator,
    {"maxDecimal": _max_decimals, "maxDecimals": _max_decimals, "oneOf": _one_of, "format": _full_date},
)


@cache
def voucher_validator() -> Any:
    candidates = [Path(os.environ["ECONOMIC_SCHEMAS_DIR"])] if os.environ.get("ECONOMIC_SCHEMAS_DIR") else []
    candidates += [
        ROOT / "sandboxes" / "economic" / "schemas",
        ROOT.parent / "shared" / "economic-api" / "schemas",
    ]
    path = next(p / SCHEMA_NAME for p in candidates if (p / SCHEMA_NAME).exists())
    schema = json.loads(path.read_text(encoding="utf-8"))
    Draft3Validator.check_schema(schema)
    return EconomicValidator(schema)


def problems(voucher: dict[str, Any]) -> list[str]:
    """What e-conomic would reject in a voucher, after a round trip through the wire format."""
    text = jsonnum.dumps(voucher)
    parsed = json.loads(text, parse_float=Decimal)
    found = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in voucher_validator().iter_errors(parsed)]
    found += [f"float drift in {m.group()}" for m in re.finditer(r"-?[0-9]+\.[0-9]{7,}", text)]
    return found


# ---------------------------------------------------------------------------- the helper itself


def good_voucher(**entry: Any) -> dict[str, Any]:
    base = {
        "supplier": {"supplierNumber": 1},
        "amount": Decimal("-1250.00"),
        "contraAccount": {"accountNumber": 2750},
        "currency": {"code": "EUR"},
        "date": "2026-10-05",
        "text": "x [bill_1]",
    }
    return {
        "accountingYear": {"year": "2026"},
        "journal": {"journalNumber": 2},
        "entries": {"supplierInvoices": [{**base, **entry}]},
    }


@pytest.mark.parametrize(
    ("entry", "complaint"),
    [
        pytest.param({}, None, id="good"),
        pytest.param({"amount": Decimal("-1250.005")}, "more than 2 decimals", id="amount 3 decimals"),
        pytest.param({"contraVatAmount": Decimal("0.001")}, "more than 2 decimals", id="VAT 3 decimals"),
        pytest.param({"exchangeRate": Decimal("745.6045601")}, "more than 6 decimals", id="rate 7 decimals"),
        pytest.param({"exchangeRate": Decimal("745.604560")}, None, id="rate 6 decimals"),
        pytest.param({"date": "2025-11-31"}, "not a real", id="impossible date"),
        pytest.param({"dueDate": "2025-11-30T00:00"}, "not a real", id="date with time"),
        pytest.param(
            {"paymentDetails": {"paymentType": {"fiSupplierNo": "85123456", "ocrLine": "12345"}}},
            "matches 0",
            id="payment type fitting no alternative",
        ),
        pytest.param(
            {
                "paymentDetails": {
                    "paymentType": {"fiSupplierNo": "85123456", "ocrLine": "000000001234567", "message": "2026-0042"}
                }
            },
            "matches 2",
            id="payment type fitting two alternatives",
        ),
        pytest.param(
            {
                "paymentDetails": {
                    "paymentType": {"paymentTypeNumber": 5, "giroAccount": "12345678", "ocrLine": "0000000012345678"}
                }
            },
            None,
            id="+04 shape",
        ),
        pytest.param(
            {
                "paymentDetails": {
                    "paymentType": {
                        "paymentTypeNumber": 17,
                        "fiSupplierNo": "87654321",
                        "ocrLineMessage": "0000000012345678",
                    }
                }
            },
            None,
            id="+75 shape",
        ),
        pytest.param(
            {
                "paymentDetails": {
                    "paymentType": {
                        "paymentTypeNumber": 17,
                        "fiSupplierNo": "87654321",
                        "ocrLineMessage": "000000001234567",
                    }
                }
            },
            "matches 0",
            id="+75 OCR of 15",
        ),
        pytest.param({"supplierInvoiceNumber": "X" * 31}, "is too long", id="invoice number of 31"),
        pytest.param({"text": "x" * 251}, "is too long", id="text of 251"),
    ],
)
def test_the_extended_validator_rejects_what_e_conomic_rejects(entry: dict, complaint: str | None) -> None:
    found = problems(good_voucher(**entry))
    if complaint is None:
        assert found == []
    else:
        assert any(complaint in p for p in found), found


# ---------------------------------------------------------------------------- generated bills


def money(low: int = 1, high: int = 5_000_000_00) -> st.SearchStrategy[str]:
    """A Roger decimal string: integers, one or two decimals (e.g. '0.3', '1250', '17.05')."""

    def text(cents: int, style: int) -> str:
        if style == 0 and cents % 100 == 0:
            return str(cents // 100)
        if style == 1 and cents % 10 == 0:
            return f"{cents // 100}.{cents % 100 // 10}"
        return f"{cents // 100}.{cents % 100:02d}"

    return st.builds(text, st.integers(low, high), st.integers(0, 2))


CODES = [
    "+71<000000001234567+85123456<",
    "+73<+86020310<",
    "+75<0000000012345678+87654321<",
    "+04<0000000012345678+12345678<",
    "+71<12+85123456<",
    "IBAN DK50 0040 0440 1162 43",
    "+73<+76020310<",
]
NAMES = st.one_of(
    st.sampled_from(
        ["Dansk Kontorforsyning ApS", "TDC Erhverv A/S", "frugt til kontoret aps", "DSB", "Hetzner Online GmbH"]
    ),
    st.text(st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=300),
)


@st.composite
def bills(draw: st.DrawFn, index: int) -> dict[str, Any]:
    issue = draw(st.dates(date(2024, 10, 1), date(2027, 3, 31)))
    document_type = draw(st.sampled_from(["bill", "bill", "receipt", "credit_note"]))
    status = "PAID" if document_type == "receipt" else draw(st.sampled_from(["UPCOMING", "INITIALIZED", "PAID"]))
    currency = draw(st.sampled_from(["DKK", "DKK", "EUR", "SEK"]))
    amount = draw(money())
    vat = draw(
        st.one_of(
            st.none(),
            st.just(str((Decimal(amount) / 5).quantize(Decimal("0.01")))),
            money(0, 10_000),
            st.builds(lambda v: f"-{v}", money(1, 10_000)),
        )
    )  # above the gross, or negative: held
    bill = f.bill(
        id=f"bill_{index}_{draw(st.text('0123456789ABCDEFGHJKMNPQRSTVWXYZ', min_size=1, max_size=26))}",
        document_type=document_type,
        status=status,
        currency=currency,
        amount=amount,
        vat_amount=vat,
        issue_date=issue.isoformat(),
        due_date=draw(
            st.one_of(st.none(), st.builds(lambda n: (issue + timedelta(days=n)).isoformat(), st.integers(-5, 60)))
        ),
        category_id=draw(
            st.sampled_from(
                [None, "cat_office", "cat_software", "cat_meals", "cat_rent", "cat_not_mapped", "cat_barred"]
            )
        ),
        invoice_number=draw(
            st.one_of(st.none(), st.text(st.characters(blacklist_categories=["Cs", "Cc"]), max_size=60))
        ),
        payment_code=draw(st.one_of(st.none(), st.sampled_from(CODES))),
        payment=None,
        **{
            "vendor.name": draw(NAMES),
            "vendor.cvr": draw(st.sampled_from([None, "31245871", "DK 40 07 52 91", "19433692", "12345678"])),
        },
    )
    if status == "PAID" and (document_type != "credit_note" or draw(st.booleans())):
        paid_on = issue + timedelta(days=draw(st.integers(0, 45)))
        bill["payment"] = {
            "method_id": draw(st.sampled_from(["pm_bank", "pm_credit"])),
            "paid_date": paid_on.isoformat(),
            "amount": draw(st.one_of(st.just(amount), money())),
            "currency": currency,  # partial/over: held
            "amount_base_currency": draw(st.one_of(st.none(), money(1, 50_000_000_00))),
        }
    return bill


@st.composite
def batches(draw: st.DrawFn) -> list[dict[str, Any]]:
    return [draw(bills(i)) for i in range(draw(st.integers(1, 12)))]


# Few examples of big batches: a validation run costs far more than a bill in it.
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=batches(), policy=st.sampled_from(["quarantine", "next_open_date"]))
def test_every_planned_voucher_is_one_e_conomic_accepts(batch: list[dict[str, Any]], policy: str) -> None:
    ctx = f.context(closed_period_policy=policy)
    contexts = {ctx.settings.id: ctx}
    frame = prepare([(ctx.settings.id, b) for b in batch], contexts)
    entries, outcomes = transform.build(frame, validation.run(frame), contexts)
    assert len(outcomes) == len(batch)
    by_id = {b["id"]: b for b in batch}
    for planned in entries:
        assert problems(planned.voucher) == [], jsonnum.dumps(planned.voucher)
        bill = by_id[planned.bill_id]
        wire = json.loads(jsonnum.dumps(planned.entry), parse_float=Decimal)
        raw = bill["amount"] if planned.kind == "invoice" else bill["payment"]["amount"]
        sign = -1 if (planned.kind == "invoice") == (bill["document_type"] != "credit_note") else 1
        assert wire["amount"] == sign * Decimal(raw)  # exactly Roger's amount, with the entry's sign
        if planned.kind == "payment":  # only money that makes sense: the bill's amount, no partial or over-payment
            assert Decimal(bill["payment"]["amount"]) == Decimal(bill["amount"])
        if "contraVatAmount" in wire:  # part of the gross, of its sign
            assert 0 <= wire["contraVatAmount"] / wire["amount"] <= 1
        if "paymentDetails" in wire:  # the number e-conomic documents for the FI form, with that type's fields
            ptype = wire["paymentDetails"]["paymentType"]
            name, fields = documented_payment_types()[ptype["paymentTypeNumber"]]
            assert name == "+" + bill["payment_code"][1:3]
            assert set(ptype) == {"paymentTypeNumber", *fields}
        assert f"[{bill['id']}]" in wire["text"]
        assert planned.voucher["accountingYear"]["year"] == planned.year
