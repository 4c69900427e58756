"""Danish FI payment code lines (+71, +73, +75, +04) into e-conomic ``paymentDetails``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from roger_economic.economic.conventions import PAYMENT_TYPE_NUMBERS

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
    fields: dict[str, Any] | None = None
    if kind in ("71", "75"):
        ocr, _, creditor = body.partition("+")
        length = 15 if kind == "71" else 16
        if _digits(ocr, length) and _CREDITOR.fullmatch(creditor):
            key = "ocrLine" if kind == "71" else "ocrLineMessage"
            fields = {"fiSupplierNo": creditor, key: ocr}
    elif kind == "73":
        creditor = body.lstrip("+")
        text = str(message or "").strip()[:100]
        if _CREDITOR.fullmatch(creditor) and len(text) >= 5:
            fields = {"fiSupplierNo": creditor, "message": text}
    elif kind == "04":
        ocr, _, giro = body.partition("+")
        if _digits(ocr, 16) and _digits(giro):
            fields = {"giroAccount": giro, "ocrLine": ocr}
    if fields is None:
        return ParsedCode(None, f"payment code {code!r} does not parse as +{kind}")
    fields["paymentTypeNumber"] = PAYMENT_TYPE_NUMBERS[f"+{kind}"]
    return ParsedCode({"paymentType": fields}, None)
