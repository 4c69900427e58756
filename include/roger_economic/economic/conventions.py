"""e-conomic's conventions, each written once.

- Sign: a minus makes an entry a credit. A supplier invoice credits the
  supplier (negative), a credit note debits it (positive); a supplier payment
  debits the supplier (positive), a refund credits it (negative).
  *(unconfirmed on a live agreement: kept here only)*
- Accounting year ids: ``2024/2025`` is written ``2024_6_2025`` in URL paths.
- Payment type numbers for FI codes in ``paymentDetails`` *(unconfirmed)*.
"""

from __future__ import annotations

from decimal import Decimal

INVOICE_SIGN = {"bill": Decimal(-1), "receipt": Decimal(-1), "credit_note": Decimal(1)}
PAYMENT_SIGN = {"bill": Decimal(1), "receipt": Decimal(1), "credit_note": Decimal(-1)}

PAYMENT_TYPE_NUMBERS = {"+71": 3, "+73": 4, "+75": 6, "+04": 5}

BOOKABLE_ACCOUNT_TYPES = frozenset({"profitAndLoss", "status"})
SCANNING_MODULE_NAMES = frozenset({"indscanning", "scanning"})


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
    return year.replace("/", "_6_")


def voucher_path(journal: int, year: str, voucher_number: int) -> str:
    return f"/journals/{journal}/vouchers/{year_path(year)}-{voucher_number}"


EU_COUNTRIES = frozenset(
    ("AT", "BE", "BG", "CY", "CZ", "DE", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE",
     "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK")
)
VAT_ZONE_DOMESTIC, VAT_ZONE_EU, VAT_ZONE_ABROAD = 1, 2, 3


def vat_zone_for(country: str | None) -> int:
    """Denmark or unknown: domestic; an EU member: EU; elsewhere: abroad."""
    if not country or country.upper() == "DK":
        return VAT_ZONE_DOMESTIC
    return VAT_ZONE_EU if country.upper() in EU_COUNTRIES else VAT_ZONE_ABROAD
