"""FI code lines into e-conomic ``paymentDetails`` (docs/booking-rules.md, "Payment codes").

+71 ``<15-digit OCR>+<creditor>``, +73 ``+<creditor>`` with a message (the
invoice number, else the vendor name, 5-100 characters), +75
``<16-digit OCR>+<creditor>``; creditor numbers are 8 digits starting with 8.
A code that does not parse is left out with a warning, never an error.
"""

from __future__ import annotations

import pytest

from roger_economic import payment_codes


def details(payment_type_number: int, **fields: str) -> dict:
    return {"paymentType": {**fields, "paymentTypeNumber": payment_type_number}}


PARSES = [
    pytest.param(
        "+71<000000001234567+85123456<",
        "2026-0042",
        details(1, fiSupplierNo="85123456", ocrLine="000000001234567"),
        id="+71 OCR line",
    ),
    pytest.param(
        "71<000000001234567+85123456<",
        None,
        details(1, fiSupplierNo="85123456", ocrLine="000000001234567"),
        id="+71 without the leading plus",
    ),
    pytest.param(
        " +71 < 000000001234567 + 85123456 < ",
        None,
        details(1, fiSupplierNo="85123456", ocrLine="000000001234567"),
        id="+71 with spaces as printed",
    ),
    pytest.param(
        "+73<+86020310<",
        "2026-0042",
        details(2, fiSupplierNo="86020310", message="2026-0042"),
        id="+73 message is the invoice number",
    ),
    pytest.param(
        "+73<+86020310<",
        "  TDC Erhverv A/S ",
        details(2, fiSupplierNo="86020310", message="TDC Erhverv A/S"),
        id="+73 message trimmed",
    ),
    pytest.param(
        "+73<+86020310<", "x" * 140, details(2, fiSupplierNo="86020310", message="x" * 100), id="+73 message cut to 100"
    ),
    pytest.param(
        "+75<0000000012345678+87654321<",
        None,
        details(17, fiSupplierNo="87654321", ocrLineMessage="0000000012345678"),
        id="+75 OCR line",
    ),
    pytest.param(
        "+04<0000000012345678+12345678<",
        None,
        details(5, giroAccount="12345678", ocrLine="0000000012345678"),
        id="+04 giro OCR line",
    ),
]


@pytest.mark.parametrize(("code", "message", "expected"), PARSES)
def test_code_line_becomes_payment_details(code: str, message: str | None, expected: dict) -> None:
    parsed = payment_codes.parse(code, message)
    assert parsed == payment_codes.ParsedCode(expected, None)


NOT_PARSING = [
    pytest.param("+71<12345+85123456<", None, id="+71 OCR too short"),
    pytest.param("+71<0000000012345678+85123456<", None, id="+71 OCR of 16 digits"),
    pytest.param("+71<000000001234567+75123456<", None, id="+71 creditor not starting with 8"),
    pytest.param("+71<000000001234567+8512345<", None, id="+71 creditor of 7 digits"),
    pytest.param("+71<00000000123456A+85123456<", None, id="+71 OCR with a letter"),
    pytest.param("+71<٠٠٠٠٠٠٠٠١٢٣٤٥٦٧+85123456<", None, id="+71 OCR in non-ASCII digits"),
    pytest.param("+73<+86020310<", "42", id="+73 message under 5 characters"),
    pytest.param("+73<+86020310<", None, id="+73 without any message"),
    pytest.param("+75<000000001234567+87654321<", None, id="+75 OCR of 15 digits"),
    pytest.param("+04<000000001234567+12345678<", None, id="+04 OCR of 15 digits"),
    pytest.param("+04<0000000012345678+<", None, id="+04 without a giro account"),
    pytest.param("+72<000000001234567+85123456<", None, id="unknown type +72"),
    pytest.param("Reg. 1234 konto 5678901", None, id="a bank account, not a code line"),
]


@pytest.mark.parametrize(("code", "message"), NOT_PARSING)
def test_code_that_does_not_parse_is_left_out_with_a_warning(code: str, message: str | None) -> None:
    parsed = payment_codes.parse(code, message)
    assert parsed.details is None
    assert parsed.warning is not None and code in parsed.warning


@pytest.mark.parametrize("code", [None, ""], ids=["none", "empty"])
def test_no_code_gives_nothing_and_no_warning(code: str | None) -> None:
    assert payment_codes.parse(code, "2026-0042") == payment_codes.ParsedCode(None, None)


# The numbers are e-conomic's documented ones (economic-api/README.md "Payment types"): 1 +71, 2 +73, 5 +04,
# 17 +75. The old guess (3, 4, 6 and 5) is refused by e-conomic with "E07520 Payment type 3 not found".
@pytest.mark.parametrize(
    ("code", "number", "fields"),
    [
        pytest.param("+71<000000001234567+85123456<", 1, {"fiSupplierNo", "ocrLine"}, id="+71 is 1"),
        pytest.param("+73<+86020310<", 2, {"fiSupplierNo", "message"}, id="+73 is 2"),
        pytest.param("+04<0000000012345678+12345678<", 5, {"giroAccount", "ocrLine"}, id="+04 is 5"),
        pytest.param("+75<0000000012345678+87654321<", 17, {"fiSupplierNo", "ocrLineMessage"}, id="+75 is 17"),
    ],
)
def test_each_fi_code_carries_e_conomics_documented_number_and_fields(code: str, number: int, fields: set) -> None:
    details = payment_codes.parse(code, "2026-0042").details
    assert details is not None
    assert payment_codes.type_number(details) == number
    assert set(details["paymentType"]) == fields | {"paymentTypeNumber"}
