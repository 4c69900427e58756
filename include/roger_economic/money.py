"""Exact money: amounts are ``Decimal`` from the wire to the payload, never floats."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

ORE = Decimal("0.01")
RATE = Decimal("0.000001")
_AMOUNT = re.compile(r"^-?[0-9]+(\.[0-9]{1,2})?$")


def parse_amount(value: object) -> Decimal | None:
    """A Roger decimal string as ``Decimal``; ``None`` when absent or not a 2-decimal number."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    if not _AMOUNT.match(text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def exchange_rate(amount: Decimal, amount_base: Decimal) -> Decimal:
    """e-conomic's rate per 100 units: base / amount x 100, to 6 decimals."""
    return (amount_base / amount * 100).quantize(RATE, rounding=ROUND_HALF_UP)


def vat_fits(gross: Decimal, vat: Decimal, rate_percent: Decimal) -> bool:
    """Whether Roger's VAT amount is what the code's rate gives on this gross (within 1 øre per 100)."""
    expected = (gross * rate_percent / (100 + rate_percent)).quantize(ORE, rounding=ROUND_HALF_UP)
    tolerance = max(ORE, (gross / 10000).quantize(ORE))
    return abs(expected - vat) <= tolerance
