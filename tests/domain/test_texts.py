"""Entry texts (docs/booking-rules.md, "text"): readable, at most 250 characters, with the Roger bill id
verbatim so the entry can be traced back and found with ``text$like:``; when too long the vendor is cut,
never the id."""

from __future__ import annotations

import pytest

from roger_economic.texts import TEXT_MAX, bill_id_in, entry_text

ID = "bill_01J9ZK3X4Q"

TEXTS = [
    pytest.param("Acme ApS", "bill", "2025-0042", False, "Acme ApS faktura 2025-0042 [bill_01J9ZK3X4Q]", id="bill"),
    pytest.param("Acme ApS", "receipt", "R-17", False, "Acme ApS kvittering R-17 [bill_01J9ZK3X4Q]", id="receipt"),
    pytest.param(
        "Acme ApS", "credit_note", "CN-3", False, "Acme ApS kreditnota CN-3 [bill_01J9ZK3X4Q]", id="credit note"
    ),
    pytest.param("Acme ApS", "bill", "2025-0042", True, "Acme ApS betaling 2025-0042 [bill_01J9ZK3X4Q]", id="payment"),
    pytest.param("Acme ApS", "bill", None, False, "Acme ApS faktura [bill_01J9ZK3X4Q]", id="no invoice number"),
    pytest.param(
        "  Acme \n ApS\t", "bill", "7", False, "Acme ApS faktura 7 [bill_01J9ZK3X4Q]", id="vendor whitespace collapsed"
    ),
    pytest.param("", "bill", "7", False, "faktura 7 [bill_01J9ZK3X4Q]", id="no vendor name"),
]


@pytest.mark.parametrize(("vendor", "doc", "number", "payment", "expected"), TEXTS)
def test_text_reads_vendor_kind_number_and_id(
    vendor: str, doc: str, number: str | None, payment: bool, expected: str
) -> None:
    assert entry_text(vendor, doc, number, ID, payment=payment) == expected


LONG = [
    pytest.param("V" * 300, "2025-0042", ID, id="long vendor"),
    pytest.param("Ærø Æbleplantage & Søn " * 20, "X" * 30, ID, id="long vendor, longest invoice number"),
    pytest.param("V" * 300, "2025-0042", "bill_" + "9" * 120, id="long vendor, long id"),
    pytest.param("V" * 219, "2025-0042", ID, id="vendor exactly one character too long"),
]


@pytest.mark.parametrize(("vendor", "number", "bill_id"), LONG)
def test_too_long_text_cuts_the_vendor_never_the_id(vendor: str, number: str, bill_id: str) -> None:
    text = entry_text(vendor, "bill", number, bill_id, payment=False)
    assert len(text) == TEXT_MAX
    assert text.endswith(f" faktura {number} [{bill_id}]")
    assert text.startswith(vendor[:10])
    assert "…" in text
    assert bill_id_in(text) == bill_id


def test_text_that_fits_is_not_cut() -> None:
    vendor = "V" * (TEXT_MAX - len(f" faktura 2025-0042 [{ID}]"))
    text = entry_text(vendor, "bill", "2025-0042", ID, payment=False)
    assert len(text) == TEXT_MAX
    assert text == f"{vendor} faktura 2025-0042 [{ID}]"


@pytest.mark.parametrize("vendor", ["Acme [DK] ApS", "Acme ApS [", "Acme ] ApS"], ids=["brackets", "open", "close"])
def test_bill_id_is_found_again_whatever_the_vendor_writes(vendor: str) -> None:
    assert bill_id_in(entry_text(vendor, "bill", "1", ID, payment=True)) == ID


def test_text_of_another_system_has_no_bill_id() -> None:
    assert bill_id_in("Manuel postering husleje") is None


def test_an_id_holding_brackets_is_found_again_among_the_ids_looked_for():
    """The Roger contract allows any string as a bill id: recovery must still find ``bill[01``'s entry
    (the last ``[`` of its text is inside the id), or it would post the entry a second time."""
    for bill_id in ("bill[01", "bill]x[y", "[x]"):
        text = entry_text("Acme [DK] ApS", "bill", "F-1", bill_id, payment=False)
        assert bill_id_in(text, {bill_id, "01", "y", "x"}) == bill_id
    assert bill_id_in(entry_text("Acme", "bill", "F-1", "bill_1", payment=False), {"bill_2"}) is None
