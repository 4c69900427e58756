"""The one fictional world both sandboxes and the demo agree on.

The Roger sandbox issues bills from these vendors in these categories; the
e-conomic sandbox gives every agreement this chart of accounts, these journals
and a supplier register in which some of the vendors already exist. The demo
agreements file maps the categories and payment methods below onto the
accounts below. Keep the three in step by changing them here only.

Agreement *i* (1-based) pairs Roger company ``company_id(i)`` with e-conomic
agreement ``agreement_number(i)``; tokens are derived from an index and a
prefix so that a test can choose recognisable secret values.
"""

from __future__ import annotations

from dataclasses import dataclass

# --------------------------------------------------------------------------- identities


def company_id(i: int) -> str:
    """Roger company id of agreement ``i``."""
    return f"cmp_{i:04d}"


def agreement_number(i: int) -> int:
    """e-conomic agreement number of agreement ``i``."""
    return 700000 + i


def agreement_key(i: int) -> str:
    """The project's own agreement id (used in config, database, UI, run params)."""
    return f"agr_{i:04d}"


def roger_token(i: int, prefix: str = "sbx-") -> str:
    return f"{prefix}roger-{i:04d}"


def grant_token(i: int, prefix: str = "sbx-") -> str:
    return f"{prefix}grant-{i:04d}"


DEFAULT_APP_SECRET = "sbx-app-secret"
# the app's public token (its installation URL's ``appPublicToken``) and the name the approval page shows
DEFAULT_APP_PUBLIC_TOKEN = "sbx-app-public"
APP_NAME = "Roger → e-conomic"


def index_of_company(cid: str) -> int:
    return int(cid.removeprefix("cmp_"))


def index_of_grant_token(token: str, prefix: str = "sbx-") -> int | None:
    if not token.startswith(f"{prefix}grant-"):
        return None
    try:
        return int(token.removeprefix(f"{prefix}grant-"))
    except ValueError:
        return None


# --------------------------------------------------------------------------- agreement profiles


@dataclass(frozen=True)
class Profile:
    """What makes one agreement different from the next, derived from its index."""

    split_year: bool  # accounting years run July-June ("2025/2026")
    scanning_addon: bool  # /self lists the Indscanning module
    company_name: str


def profile(i: int) -> Profile:
    names = [
        "Nordlys Rengøring ApS",
        "Havnens Bageri I/S",
        "Kvist Arkitekter A/S",
        "Fjord IT ApS",
        "Lindholm Tømrer ApS",
        "Solsikke Café ApS",
        "Vestjysk Transport A/S",
        "Bølge Design ApS",
    ]
    return Profile(
        split_year=(i % 5 == 2),
        scanning_addon=(i % 10 != 0),
        company_name=f"{names[(i - 1) % len(names)]} ({i:04d})",
    )


# --------------------------------------------------------------------------- vendors


@dataclass(frozen=True)
class Vendor:
    name: str
    cvr: str | None  # 8 digits for Danish vendors
    country: str
    currency: str  # the currency the vendor usually bills in
    fi_creditor: str | None  # 8-digit FI creditor number (starts with 8) for +71/+73/+75 codes
    category: str  # the Roger category a bill from this vendor usually gets
    in_economic: str  # "cvr": exists as supplier with CVR; "name": exists by name only; "no": unknown


VENDORS: tuple[Vendor, ...] = (
    Vendor("Dansk Kontorforsyning ApS", "31245871", "DK", "DKK", "85123456", "cat_office", "cvr"),
    Vendor("TDC Erhverv A/S", "40075291", "DK", "DKK", "86020310", "cat_phone", "cvr"),
    Vendor("Ørsted Salg & Service A/S", "27446469", "DK", "DKK", "87654321", "cat_utilities", "cvr"),
    Vendor("Københavns Ejendomme ApS", "36987412", "DK", "DKK", "81234567", "cat_rent", "cvr"),
    Vendor("Frugt til Kontoret ApS", "38112233", "DK", "DKK", None, "cat_meals", "name"),
    Vendor("Møller & Søn Revision", "29876543", "DK", "DKK", "83456789", "cat_services", "cvr"),
    Vendor("DSB", "25050053", "DK", "DKK", None, "cat_travel", "name"),
    Vendor("Telenor A/S", "19433692", "DK", "DKK", "84567890", "cat_phone", "no"),
    Vendor("e-conomic International A/S", "29403473", "DK", "DKK", "85551234", "cat_software", "cvr"),
    Vendor("Jysk Papir & Emballage A/S", "17453622", "DK", "DKK", "82223344", "cat_office", "no"),
    Vendor("Café Åben Dør", "41122334", "DK", "DKK", None, "cat_meals", "no"),
    Vendor("Aarhus Vinduespudsning", "35566778", "DK", "DKK", "81112223", "cat_services", "no"),
    Vendor("Hetzner Online GmbH", None, "DE", "EUR", None, "cat_software", "name"),
    Vendor("Spotify AB", None, "SE", "SEK", None, "cat_software", "no"),
    Vendor("Atlassian Pty Ltd", None, "AU", "EUR", None, "cat_software", "no"),
    Vendor("IKEA Danmark A/S", "19028911", "DK", "DKK", "86661234", "cat_office", "cvr"),
    Vendor("Scandic Hotels A/S", "16435771", "DK", "DKK", None, "cat_travel", "no"),
    Vendor("Google Ireland Ltd", None, "IE", "EUR", None, "cat_marketing", "name"),
)

# The EU's member states (a fact of the world, not an e-conomic convention): the sandbox keeps its own list and
# never imports the client's, so that the two can disagree.
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

# --------------------------------------------------------------------------- Roger master data

CATEGORIES: tuple[tuple[str, str, bool], ...] = (  # id, name, archived
    ("cat_office", "Kontorartikler", False),
    ("cat_software", "Software og abonnementer", False),
    ("cat_phone", "Telefon og internet", False),
    ("cat_travel", "Rejser", False),
    ("cat_meals", "Forplejning", False),
    ("cat_rent", "Husleje", False),
    ("cat_utilities", "El, vand og varme", False),
    ("cat_services", "Rådgivning og service", False),
    ("cat_marketing", "Markedsføring", False),
    ("cat_old", "Gammel kategori", True),
)

PAYMENT_METHODS: tuple[tuple[str, str, str, str | None, bool], ...] = (  # id, name, kind, masked, archived
    ("pm_bank", "Erhvervskonto", "bank_account", "****4521", False),
    ("pm_debit", "Visa/Dankort", "debit_card", "****8812", False),
    ("pm_credit", "Mastercard Business", "credit_card", "****3390", False),
    ("pm_mobilepay", "MobilePay Business", "cash", None, False),
)

# --------------------------------------------------------------------------- e-conomic master data


@dataclass(frozen=True)
class Account:
    number: int
    name: str
    account_type: str  # profitAndLoss, status, heading, headingStart, sumInterval, totalFrom, sumAlpha
    vat_code: str | None = None
    barred: bool = False
    block_direct_entries: bool = False


CHART_OF_ACCOUNTS: tuple[Account, ...] = (
    Account(1000, "OMSÆTNING", "headingStart"),
    Account(1010, "Salg af ydelser m/moms", "profitAndLoss", "U25"),
    Account(1300, "VAREFORBRUG", "headingStart"),
    Account(1310, "Varekøb m/moms", "profitAndLoss", "I25"),
    Account(1320, "Varekøb EU", "profitAndLoss", "IEUV"),
    Account(1399, "Vareforbrug i alt", "sumInterval"),
    Account(2000, "SALGSOMKOSTNINGER", "headingStart"),
    Account(2200, "Annoncer og reklame", "profitAndLoss", "I25"),
    Account(2250, "Repræsentation", "profitAndLoss", "REP"),
    Account(2700, "ADMINISTRATIONSOMKOSTNINGER", "headingStart"),
    Account(2750, "Kontorartikler", "profitAndLoss", "I25"),
    Account(2760, "Software og abonnementer", "profitAndLoss", "I25"),
    Account(2765, "Software fra udlandet", "profitAndLoss", "IEUY"),
    Account(2770, "Telefon og internet", "profitAndLoss", "I25"),
    Account(2780, "Rejseudgifter", "profitAndLoss", "I25"),
    Account(2785, "Kørsel og transport", "profitAndLoss"),
    Account(2790, "Forsikringer", "profitAndLoss"),
    Account(2795, "Lukket konto (spærret)", "profitAndLoss", "I25", barred=True),
    Account(2796, "Afstemningskonto (ingen direkte posteringer)", "profitAndLoss", block_direct_entries=True),
    Account(2800, "Rådgivning og revision", "profitAndLoss", "I25"),
    Account(3400, "Husleje", "profitAndLoss", "I25"),
    Account(3410, "El, vand og varme", "profitAndLoss", "I25"),
    Account(3990, "Diverse omkostninger", "profitAndLoss", "I25"),
    Account(3999, "Omkostninger i alt", "sumInterval"),
    Account(5800, "LIKVIDE BEHOLDNINGER", "headingStart"),
    Account(5820, "Bank", "status"),
    Account(5830, "Betalingskort", "status"),
    Account(5840, "Kasse / MobilePay", "status"),
    Account(6600, "Kreditkort", "status"),
    Account(6700, "Kassekredit", "status"),
    Account(6800, "Leverandører", "status"),
    Account(7000, "MOMS", "headingStart"),
    Account(7010, "Indgående moms", "status"),
    Account(7020, "Udgående moms", "status"),
    Account(7030, "Moms af EU-køb", "status"),
    Account(7040, "Moms af ydelser fra udlandet", "status"),
)

VAT_ACCOUNTS: tuple[tuple[str, str, str, int, int | None], ...] = (
    # vatCode, name, rate (decimal string), account, contra account
    ("I25", "Indgående moms 25%", "25", 7010, None),
    ("U25", "Udgående moms 25%", "25", 7020, None),
    ("IEUV", "Moms af varekøb i EU 25%", "25", 7030, 7020),
    ("IEUY", "Moms af ydelseskøb i udlandet 25%", "25", 7040, 7020),
    ("REP", "Repræsentation 25% (25% fradrag)", "6.25", 7010, None),
)

CURRENCIES: tuple[tuple[str, str], ...] = (
    ("DKK", "Danske kroner"),
    ("EUR", "Euro"),
    ("SEK", "Svenske kroner"),
    ("NOK", "Norske kroner"),
    ("USD", "US dollar"),
    ("GBP", "Britiske pund"),
)

# journalNumber, name, entryTypeRestrictedTo or None, min voucher, max voucher
JOURNALS: tuple[tuple[int, str, str | None, int, int], ...] = (
    (1, "Kassekladde", None, 1, 9999),
    (2, "Leverandørfakturaer", "supplierInvoice", 10000, 19999),
    (3, "Leverandørbetalinger", "supplierPayment", 20000, 29999),
    (4, "Kundeindbetalinger", "customerPayment", 30000, 39999),
)

SUPPLIER_GROUPS: tuple[tuple[int, str], ...] = (
    (1, "Indenlandske leverandører"),
    (2, "EU-leverandører"),
    (3, "Udenlandske leverandører"),
)
VAT_ZONES: tuple[tuple[int, str], ...] = ((1, "Domestic"), (2, "EU"), (3, "Abroad"), (4, "Domestic exempt"))
PAYMENT_TERMS: tuple[tuple[int, str, int], ...] = (
    (1, "Netto 8 dage", 8),
    (2, "Netto 14 dage", 14),
    (3, "Løbende måned + 30 dage", 30),
)

SCANNING_MODULE = "Indscanning"
API_MODULE = "API"


def accounting_years(i: int) -> list[tuple[str, str, str, bool]]:
    """(year, fromDate, toDate, closed) for agreement ``i``: the oldest year is closed."""
    if profile(i).split_year:
        return [
            ("2024/2025", "2024-07-01", "2025-06-30", True),
            ("2025/2026", "2025-07-01", "2026-06-30", False),
            ("2026/2027", "2026-07-01", "2027-06-30", False),
        ]
    return [
        ("2024", "2024-01-01", "2024-12-31", True),
        ("2025", "2025-01-01", "2025-12-31", False),
        ("2026", "2026-01-01", "2026-12-31", False),
        ("2027", "2027-01-01", "2027-12-31", False),
    ]
