"""Exact money: Roger's amount strings read to the øre or not at all, rates and VAT checks without floats."""

from __future__ import annotations

from decimal import Decimal

import pytest

from roger_economic.money import exchange_rate, parse_amount, vat_fits


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1234.56", Decimal("1234.56")),
        ("0.10", Decimal("0.10")),
        ("0.1", Decimal("0.1")),
        ("12", Decimal("12")),
        ("0", Decimal("0")),
        ("0.00", Decimal("0")),
        ("-0.01", Decimal("-0.01")),
        ("-1234.50", Decimal("-1234.50")),
        (" 99.95 ", Decimal("99.95")),
        ("99999999999.99", Decimal("99999999999.99")),  # beyond a float's exact øre: still exact
        (12, Decimal("12")),
    ],
)
def test_a_roger_amount_is_read_exactly(raw, expected):
    parsed = parse_amount(raw)
    assert isinstance(parsed, Decimal)
    assert parsed == expected
    assert parsed.as_tuple().exponent >= -2  # never finer than the øre


@pytest.mark.parametrize(
    "raw",
    [
        "1.234,56",  # Danish thousands and decimal separators: not Roger's wire format
        "12,50",  # a Danish decimal comma is not read as 1250 or 12.5
        "1.234",  # a Danish thousands point is not read as 1.234 kr
        "1 234.56",
        "kr. 12.50",
        "12.50 DKK",
        "12.505",  # a fraction of an øre
        "0.001",
        "1e3",
        "+5.00",
        ".50",
        "5.",
        "--1",
        "NaN",
        "Infinity",
        "",
        "   ",
        None,
        True,
        False,
    ],
)
def test_anything_else_is_no_amount_rather_than_a_guess(raw):
    assert parse_amount(raw) is None


def test_the_exchange_rate_is_per_100_units_to_six_decimals():
    assert exchange_rate(Decimal("100.00"), Decimal("745.12")) == Decimal("745.120000")
    assert exchange_rate(Decimal("3.00"), Decimal("1.00")) == Decimal("33.333333")
    assert exchange_rate(Decimal("3.00"), Decimal("2.00")) == Decimal("66.666667")
    assert exchange_rate(Decimal("-50.00"), Decimal("-372.56")) == Decimal("745.120000")  # a credit note


def test_an_exchange_rate_halfway_rounds_up():
    """0.01 / 128 x 100 = 0.0078125: half up gives ...13 (banker's rounding would give ...12)."""
    assert exchange_rate(Decimal("128.00"), Decimal("0.01")) == Decimal("0.007813")


@pytest.mark.parametrize(
    ("gross", "vat", "rate", "fits"),
    [
        ("125.00", "25.00", "25", True),
        ("125.00", "24.99", "25", True),  # within one øre
        ("125.00", "25.01", "25", True),
        ("125.00", "25.02", "25", False),
        ("125.00", "24.98", "25", False),
        ("100.00", "0.00", "0", True),
        ("100.00", "0.02", "0", False),
        ("-125.00", "-25.00", "25", True),  # a credit note: both negative
        ("-125.00", "25.00", "25", False),  # the sign matters
        ("0.00", "0.00", "25", True),
        ("1000000.00", "200000.00", "25", True),
        ("1000000.00", "200099.00", "25", True),  # large amounts: 1 øre per 100 kr
        ("1000000.00", "200101.00", "25", False),
    ],
)
def test_vat_fits_the_codes_rate_within_one_ore_per_hundred(gross, vat, rate, fits):
    assert vat_fits(Decimal(gross), Decimal(vat), Decimal(rate)) is fits
