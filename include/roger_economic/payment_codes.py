"""Danish FI payment code lines (+71, +73, +75, +04) into e-conomic ``paymentDetails``.

The numbers and the field names per type come from one place,
:data:`roger_economic.economic.conventions.PAYMENT_TYPES` (README "Payment types", the voucher schema's
``oneOf``): +71 ``fiSupplierNo`` + ``ocrLine`` (15 digits), +73 ``fiSupplierNo`` + ``message`` (5-100),
+75 ``fiSupplierNo`` + ``ocrLineMessage`` (16 digits here), +04 ``giroAccount`` + ``ocrLine`` (16 digits).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from roger_economic.economic.conventions import PAYMENT_TYPE_NUMBERS, PAYMENT_TYPES

_CODE = re.compile(r"\+?(?P<type>71|73|75|04)<(?P<body>[^<]*)<?")
_CREDITOR = re.compile(r"8[0-9]{7}")
_DIGITS = re.compile(r"[0-9]+")  # ASCII digits only (str.isdigit also takes '²' and other scripts' digits)


def _digits(text: str, length: int | None = None) -> bool:
    return _DIGITS.fullmatch(text) is not None and (length is None or len(text) == length)


@dataclass(frozen=True)
class ParsedCode:
    details: dict[str, Any] | None
    warning: str | None


def parse(code: str | None, message: str | None) -> ParsedCode:
    """``paymentDetails`` for a code line, or a warning when it does not parse (never an error)."""
    if not code:
        return ParsedCode(None, None)
    match = _CODE.fullmatch("".join(str(code).split()))
    if not match:
        return ParsedCode(None, f"payment code {code!r} is not an FI code line")
    kind, body = match["type"], match["body"]
    values: tuple[str, str] | None = None  # (first detail, second detail) as the type's fields name them
    if kind in ("71", "75"):
        ocr, _, creditor = body.partition("+")
        if _digits(ocr, 15 if kind == "71" else 16) and _CREDITOR.fullmatch(creditor):
            values = (creditor, ocr)
    elif kind == "73":
        creditor = body.lstrip("+")
        text = str(message or "").strip()[:100]
        if _CREDITOR.fullmatch(creditor) and len(text) >= 5:
            values = (creditor, text)
    elif kind == "04":
        ocr, _, giro = body.partition("+")
        if _digits(ocr, 16) and _digits(giro):
            values = (giro, ocr)
    if values is None:
        return ParsedCode(None, f"payment code {code!r} does not parse as +{kind}")
    return ParsedCode({"paymentType": payment_type(PAYMENT_TYPE_NUMBERS[f"+{kind}"], *values)}, None)


def payment_type(number: int, first: str, second: str) -> dict[str, Any]:
    """``paymentDetails.paymentType`` of a documented type: its number and its two detail fields."""
    _name, first_field, second_field = PAYMENT_TYPES[number]
    if first_field is None or second_field is None:
        raise ValueError(f"payment type {number} carries no details")
    return {first_field: first, second_field: second, "paymentTypeNumber": number}


def type_number(details: dict[str, Any] | None) -> int | None:
    """The payment type number in ``paymentDetails`` (``None`` when there are none)."""
    if not details:
        return None
    number = (details.get("paymentType") or {}).get("paymentTypeNumber")
    return int(number) if number is not None else None
