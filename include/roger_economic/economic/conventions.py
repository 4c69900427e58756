"""e-conomic's conventions, each written once, each marked *documented* (and where) or *assumed*.

"README" is ``economic-api/README.md`` in the shared folder, "schema" a file in
``economic-api/schemas``. An *assumed* convention is a best reading that no
e-conomic document confirms: each has a switch here (an environment variable,
read once at import) so that a live agreement that disagrees can be followed
without a code change, and the sandbox has the matching control setting
(``POST /_control/conventions``) so that a test can make the two disagree.

- sign, a minus makes an entry a credit (invoice negative, payment positive): *assumed*
  (README "Journals and vouchers", unconfirmed). Switch ``ECONOMIC_CREDIT_SIGN`` (``-`` / ``+``).
- a split accounting year ``2024/2025`` is written ``2024_6_2025`` in paths: *documented*
  (README "Journals and vouchers").
- payment type numbers 1 (+71), 2 (+73), 5 (+04), 7 (bank transfer), 10 (IBAN), 17 (+75) and their detail
  fields: *documented* (README "Payment types"; schema ``journals.journalNumber.vouchers.post``, ``oneOf``).
- bookable account types ``profitAndLoss`` and ``status``: *documented* (schema ``accounts.get``,
  ``accountType`` enum; booking-rules "Validation": headings and sums take no entries).
- how ``/self`` → ``modules`` spells the scanning add-on (``Indscanning``): *assumed* (README "Attachments"
  names the add-on only). Switch ``ECONOMIC_SCANNING_MODULE_NAMES`` (comma-separated, case-insensitive).
- VAT zone numbers domestic 1, EU 2, abroad 3: *assumed* (schema ``vat-zones.get`` gives numbers, not their
  meaning). Switch ``ECONOMIC_VAT_ZONES`` (``domestic,eu,abroad``, default ``1,2,3``).
- exchange rate per 100 units of the foreign currency: *documented* (booking-rules, "supplier invoice").
- a value inside a filter escapes ``$ ( ) *`` with a ``$``: *documented* (README "Paging and filtering").
- a file over 9 MB answers 413: *assumed* (README "Attachments" gives the limit, not the answer). Switch
  ``ECONOMIC_TOO_LARGE_STATUS`` (default 413).
- deleting a draft entry that is gone (deleted, or booked) answers 404: *assumed* (README "Journals and
  vouchers" documents the DELETE, not this answer). Switch ``ECONOMIC_GONE_ENTRY_STATUS`` (default 404).
"""

from __future__ import annotations

from decimal import Decimal

from roger_economic.settings import environment


def _credit_sign() -> Decimal:
    """``ECONOMIC_CREDIT_SIGN``: ``-`` (the default reading) or ``+`` when a live agreement shows the opposite."""
    value = environment().credit_sign.strip()
    if value not in ("-", "+"):
        raise ValueError(f"ECONOMIC_CREDIT_SIGN must be '-' or '+', not {value!r}")
    return Decimal(-1) if value == "-" else Decimal(1)


# Sign *(assumed: README "Journals and vouchers", unconfirmed on a live agreement)*: a supplier invoice credits
# the supplier, a credit note debits it; a supplier payment debits the supplier, a refund credits it.
CREDIT = _credit_sign()
DEBIT = -CREDIT
INVOICE_SIGN = {"bill": CREDIT, "receipt": CREDIT, "credit_note": DEBIT}
PAYMENT_SIGN = {"bill": DEBIT, "receipt": DEBIT, "credit_note": CREDIT}

# Payment types *(documented: README "Payment types"; the voucher schema's oneOf lists the same shapes)*:
# number -> (name, first detail field, second detail field). 14 (entry only) has no details and is refused on
# draft entries since 2025, so it is never sent.
PAYMENT_TYPES: dict[int, tuple[str, str | None, str | None]] = {
    1: ("+71", "fiSupplierNo", "ocrLine"),
    2: ("+73", "fiSupplierNo", "message"),
    5: ("+04", "giroAccount", "ocrLine"),
    7: ("Bank transfer", "accountNo", "message"),
    10: ("IBAN", "ibanSwift", "message"),
    14: ("Entry only", None, None),
    17: ("+75", "fiSupplierNo", "ocrLineMessage"),
}
PAYMENT_TYPE_NUMBERS = {
    name: number for number, (name, _first, _second) in PAYMENT_TYPES.items() if name.startswith("+")
}  # the FI codes: {"+71": 1, "+73": 2, "+04": 5, "+75": 17}

# *(documented: the accounts schema's accountType enum; headings and sums take no entries, booking-rules)*
BOOKABLE_ACCOUNT_TYPES = frozenset({"profitAndLoss", "status"})
# *(assumed: how /self spells the scanning add-on)*, compared case-folded
SCANNING_MODULE_NAMES = frozenset(
    name.strip().casefold() for name in environment().scanning_module_names.split(",") if name.strip()
)


def _status(name: str, given: str) -> int:
    value = given.strip()
    if not value.isdigit() or not 400 <= int(value) <= 499:
        raise ValueError(f"{name} must be an HTTP 4xx status, not {value!r}")
    return int(value)


# *(assumed)* the answers to an attachment over 9 MB, and to a DELETE of an entry no longer a draft
TOO_LARGE_STATUS = _status("ECONOMIC_TOO_LARGE_STATUS", environment().too_large_status)
GONE_ENTRY_STATUS = _status("ECONOMIC_GONE_ENTRY_STATUS", environment().gone_entry_status)


def invoice_amount(document_type: str, gross: Decimal) -> Decimal:
    return INVOICE_SIGN[document_type] * gross


def payment_amount(document_type: str, paid: Decimal) -> Decimal:
    return PAYMENT_SIGN[document_type] * paid


# The filter language's own characters, each escaped with a ``$`` inside a value (shared economic-api README,
# "Paging and filtering"); ``$`` first, so that the escapes themselves are not escaped again.
FILTER_ESCAPES = (("$", "$$"), ("(", "$("), (")", "$)"), ("*", "$*"))


def filter_value(value: object) -> str:
    """A value as a literal inside an e-conomic ``filter=``: a vendor named ``Zeta $or:name$like:*`` must
    find itself, not every supplier. Every filter the project builds puts its values through this."""
    text = str(value)
    for char, escaped in FILTER_ESCAPES:
        text = text.replace(char, escaped)
    return text


def filter_eq(field: str, value: object) -> str:
    """``field$eq:value`` with the value escaped."""
    return f"{field}$eq:{filter_value(value)}"


def year_path(year: str) -> str:
    """*(documented: README "Journals and vouchers")* ``2024/2025`` is written ``2024_6_2025`` in a path."""
    return year.replace("/", "_6_")


def voucher_path(journal: int, year: str, voucher_number: int) -> str:
    """*(documented: README "Journals and vouchers", "Attachments")* ``{accountingYear}-{voucherNumber}``."""
    return f"/journals/{journal}/vouchers/{year_path(year)}-{voucher_number}"


EU_COUNTRIES = frozenset(
    (
        "AT",
        "BE",
        "BG",
        "CY",
        "CZ",
        "DE",
        "EE",
        "ES",
        "FI",
        "FR",
        "GR",
        "HR",
        "HU",
        "IE",
        "IT",
        "LT",
        "LU",
        "LV",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SE",
        "SI",
        "SK",
    )
)


def _vat_zones() -> tuple[int, int, int]:
    """``ECONOMIC_VAT_ZONES``: the domestic, EU and abroad zone numbers *(assumed: 1, 2, 3)*."""
    text = environment().vat_zones
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"ECONOMIC_VAT_ZONES must be three numbers 'domestic,eu,abroad', not {text!r}")
    return int(parts[0]), int(parts[1]), int(parts[2])


VAT_ZONE_DOMESTIC, VAT_ZONE_EU, VAT_ZONE_ABROAD = _vat_zones()


def vat_zone_for(country: str | None) -> int:
    """Denmark or unknown: domestic; an EU member: EU; elsewhere: abroad (booking-rules "create policy")."""
    if not country or country.upper() == "DK":
        return VAT_ZONE_DOMESTIC
    return VAT_ZONE_EU if country.upper() in EU_COUNTRIES else VAT_ZONE_ABROAD
