"""Per-agreement state of the e-conomic sandbox, built lazily from ``sandboxes.world``.

Agreement *i* comes to life the first time its grant token is used. Everything
an agreement owns (master data copies that tests may change, suppliers,
vouchers, draft and booked entries, attachments, the idempotency cache, request
counters, the rate-limit bucket) lives in one :class:`AgreementState` guarded by
its own lock, so agreements never wait for each other.

Hot paths are index lookups: vouchers by ``(journal, year, number)``, entries by
number, drafts per journal (insertion-ordered), the next voucher number per
``(journal, year)``, and an insertion-ordered idempotency cache that expires
from its oldest end.
"""

from __future__ import annotations

import calendar
import math
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sandboxes import world
from sandboxes.economic.validation import payment_types

IDEMPOTENCY_TTL = 3600.0  # seconds an Idempotency-Key answer is kept
API_MODULE_NUMBER = 1
SCANNING_MODULE_NUMBER = 2

COUNTRY_NAMES = {
    "DK": "Danmark",
    "DE": "Tyskland",
    "SE": "Sverige",
    "NO": "Norge",
    "AU": "Australien",
    "IE": "Irland",
    "GB": "Storbritannien",
    "US": "USA",
}

# Conventions the sandbox cannot read from e-conomic's documents (README/schemas) are *assumed*; each can be
# changed while the sandbox runs (``POST /_control/conventions``) so that a test can make the sandbox disagree
# with the client. Documented ones (payment types, year paths, the schemas) are read from the README and the
# schemas and have no switch.
DEFAULT_CONVENTIONS: dict[str, Any] = {
    # README "Journals and vouchers" *(unconfirmed)*: a minus makes an entry a credit ("-"); "+" turns it round.
    # The sandbox reads each entry's side with it (``side`` in /_control/state).
    "credit_sign": "-",
    # README "Attachments" names the add-on, not how /self → modules spells it.
    "scanning_module_name": world.SCANNING_MODULE,
    # the vatZones schema gives numbers, not their meaning: number -> name
    "vat_zones": {n: name for n, name in world.VAT_ZONES},
    # README "Attachments" gives the 9 MB limit, not the status of the answer to a larger file
    "too_large_status": 413,
    # README "Journals and vouchers" documents DELETE of a draft entry, not the answer once it is gone
    "gone_entry_status": 404,
}

# plural key in a voucher's ``entries`` -> entryType
ENTRY_TYPES: dict[str, str] = {
    "financeVouchers": "financeVoucher",
    "supplierInvoices": "supplierInvoice",
    "supplierPayments": "supplierPayment",
    "customerPayments": "customerPayment",
    "manualCustomerInvoices": "manualCustomerInvoice",
}


def year_path(year: str) -> str:
    """README "Journals and vouchers": a split year ``2024/2025`` is written ``2024_6_2025`` in a path."""
    return year.replace("/", "_6_")


def year_of_path(segment: str) -> str:
    return segment.replace("_6_", "/")


def vat_zone_for(country: str) -> int:
    if country in ("", "DK"):
        return 1
    if country in world.EU_COUNTRIES:
        return 2
    return 3


@dataclass
class Period:
    number: int
    from_date: date
    to_date: date
    barred: bool = False


@dataclass
class Year:
    year: str
    from_date: date
    to_date: date
    closed: bool
    periods: list[Period]


@dataclass
class Entry:
    number: int  # journalEntryNumber
    journal: int
    entry_type: str
    year: str
    voucher_number: int
    answer: dict[str, Any]  # the entry as GET answers it (plain JSON)
    status: str = "draft"  # draft | booked | deleted


@dataclass
class Voucher:
    journal: int
    year: str
    number: int
    payload: Any  # the voucher as it was posted (plain JSON)
    entries: list[int]  # journalEntryNumbers, in payload order
    created_at: float
    status: str = "draft"  # draft | booked | deleted
    attachment: dict[str, Any] | None = None  # {pages, bytes, files: [...], createdAt}


@dataclass
class Cached:
    method: str
    path: str
    status: int
    body: Any
    headers: dict[str, str]
    at: float


def _monthly_periods(start: date, end: date) -> list[Period]:
    periods: list[Period] = []
    y, m = start.year, start.month
    n = 1
    while date(y, m, 1) <= end:
        last = date(y, m, calendar.monthrange(y, m)[1])
        periods.append(Period(n, max(date(y, m, 1), start), min(last, end)))
        n += 1
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return periods


class TokenBucket:
    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self.tokens = self.capacity
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> float:
        """0 when a token was taken, else the seconds to wait for the next one."""
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return 0.0
            return (1.0 - self.tokens) / self.rate


class AgreementState:
    """One e-conomic agreement: its own copy of the world, and everything posted to it."""

    def __init__(self, index: int, rate_limit: float | None = None) -> None:
        self.index = index
        self.number = world.agreement_number(index)
        self.profile = world.profile(index)
        self.lock = threading.Lock()
        self.accounts: dict[int, dict[str, Any]] = {
            a.number: {
                "name": a.name,
                "accountType": a.account_type,
                "vatCode": a.vat_code,
                "barred": a.barred,
                "blockDirectEntries": a.block_direct_entries,
            }
            for a in world.CHART_OF_ACCOUNTS
        }
        self.vat_accounts = {
            code: (name, Decimal(rate), acc, contra) for code, name, rate, acc, contra in world.VAT_ACCOUNTS
        }
        self.currencies = dict(world.CURRENCIES)
        self.journals = {
            n: {"name": name, "restricted": restricted, "min": lo, "max": hi}
            for n, name, restricted, lo, hi in world.JOURNALS
        }
        self.years: dict[str, Year] = {}
        for year, start, end, closed in world.accounting_years(index):
            s, e = date.fromisoformat(start), date.fromisoformat(end)
            self.years[year] = Year(year, s, e, closed, _monthly_periods(s, e))
        self.supplier_groups = dict(world.SUPPLIER_GROUPS)
        self.vat_zones = dict(world.VAT_ZONES)
        # README "Payment types": every documented type, until a test drops some (/_control/payment-types)
        self.payment_types: set[int] = set(payment_types())
        self.payment_terms = {n: (name, days) for n, name, days in world.PAYMENT_TERMS}
        self.suppliers: dict[int, dict[str, Any]] = {}
        for vendor in world.VENDORS:
            if vendor.in_economic == "no":
                continue
            number = len(self.suppliers) + 1
            group = 1 if vendor.country == "DK" else 2 if vendor.country in world.EU_COUNTRIES else 3
            sup: dict[str, Any] = {
                "supplierNumber": number,
                "name": vendor.name,
                "currency": vendor.currency,
                "country": COUNTRY_NAMES.get(vendor.country, vendor.country),
                "supplierGroup": {"supplierGroupNumber": group},
                "vatZone": {"vatZoneNumber": vat_zone_for(vendor.country)},
                "paymentTerms": {"paymentTermsNumber": 1},
            }
            if vendor.in_economic == "cvr" and vendor.cvr:
                sup["corporateIdentificationNumber"] = vendor.cvr
            self.suppliers[number] = sup
        self.next_supplier = len(self.suppliers) + 1
        # vouchers and entries
        self.vouchers: dict[tuple[int, str, int], Voucher] = {}
        self.next_voucher: dict[tuple[int, str], int] = {}
        self.entries: dict[int, Entry] = {}
        self.drafts: dict[int, dict[int, Entry]] = {n: {} for n in self.journals}
        self.next_entry = 1
        # booked entries per accounting year (what GET /accounting-years/{year}/entries lists), and the
        # next entryNumber of the agreement's booked ledger (a numbering of its own, not journalEntryNumber)
        self.booked: dict[str, list[dict[str, Any]]] = {}
        self.next_booked = 1
        # idempotency, counters, limits
        self.idempotency: OrderedDict[str, Cached] = OrderedDict()
        self.counters: dict[str, dict[str, int]] = {}
        self.bucket = TokenBucket(rate_limit) if rate_limit else None

    # ------------------------------------------------------------------ lookups
    def year_of(self, day: date) -> Year | None:
        for y in self.years.values():
            if y.from_date <= day <= y.to_date:
                return y
        return None

    @staticmethod
    def period_of(year: Year, day: date) -> Period | None:
        for p in year.periods:
            if p.from_date <= day <= p.to_date:
                return p
        return None

    def take_voucher_number(self, journal: int, year: str, claimed: set[int] | None = None) -> int | None:
        """The next free voucher number of ``journal`` in ``year`` (None: the range is used up)."""
        j = self.journals[journal]
        n = self.next_voucher.get((journal, year), j["min"])
        while n <= j["max"] and ((journal, year, n) in self.vouchers or (claimed and n in claimed)):
            n += 1
        if n > j["max"]:
            return None
        return n

    def count(self, kind: str, method: str) -> None:
        per = self.counters.setdefault(kind, {})
        per[method] = per.get(method, 0) + 1

    # ------------------------------------------------------------------ idempotency
    def cached(self, key: str, now: float) -> Cached | None:
        while self.idempotency:
            oldest_key, oldest = next(iter(self.idempotency.items()))
            if now - oldest.at < IDEMPOTENCY_TTL:
                break
            del self.idempotency[oldest_key]
        hit = self.idempotency.get(key)
        if hit is not None and now - hit.at >= IDEMPOTENCY_TTL:
            del self.idempotency[key]
            return None
        return hit

    def remember(self, key: str, cached: Cached) -> None:
        self.idempotency.pop(key, None)
        self.idempotency[key] = cached


class Sandbox:
    """The whole sandbox: configuration, the clock, and the agreements that have shown up."""

    def __init__(
        self,
        agreements: int,
        token_prefix: str = "sbx-",
        app_secret: str = world.DEFAULT_APP_SECRET,
        rate_limit: float | None = None,
        base_url: str = "https://restapi.e-conomic.com",
        app_public_token: str = world.DEFAULT_APP_PUBLIC_TOKEN,
        app_name: str = world.APP_NAME,
    ) -> None:
        self.agreements = agreements
        self.token_prefix = token_prefix
        self.app_secret = app_secret
        self.rate_limit = rate_limit
        self.base_url = base_url
        self.clock_offset = 0.0
        self.conventions: dict[str, Any] = dict(DEFAULT_CONVENTIONS)
        self.revoked: set[int] = set()
        # the approval flow (README "Connection"): the app the installation URL names, the agreement the
        # approval page grants (the one "logged in": POST /_control/approval chooses), the grants it issued
        self.app_public_token = app_public_token
        self.app_name = app_name
        self.approval_index = 1
        self.issued: dict[str, int] = {}  # fresh grant token -> agreement index
        self.revoked_tokens: set[str] = set()
        self._states: dict[int, AgreementState] = {}
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.time() + self.clock_offset

    def index_of_token(self, token: str | None) -> int | None:
        if not token or token in self.revoked_tokens:
            return None
        if token in self.issued:
            return self.issued[token]
        i = world.index_of_grant_token(token, self.token_prefix)
        if i is None or not 1 <= i <= self.agreements or token != world.grant_token(i, self.token_prefix):
            return None
        return i

    def index_of_number(self, number: Any) -> int | None:
        try:
            i = int(number) - world.agreement_number(0)
        except (TypeError, ValueError):
            return None
        return i if 1 <= i <= self.agreements else None

    def agreement(self, index: int) -> AgreementState:
        state = self._states.get(index)
        if state is None:
            with self._lock:
                state = self._states.get(index)
                if state is None:
                    state = AgreementState(index, self.rate_limit)
                    state.vat_zones = dict(self.conventions["vat_zones"])
                    self._states[index] = state
        return state

    def grant(self, index: int) -> str:
        """A fresh agreement grant token for agreement ``index`` ("Tilføj app" clicked): unguessable, one per click."""
        token = f"{self.token_prefix}grant-{index:04d}-{secrets.token_urlsafe(16)}"
        with self._lock:
            self.issued[token] = index
        return token

    def set_vat_zones(self, zones: dict[int, str]) -> None:
        """The assumed VAT zone numbering, for the agreements already alive and those still to come."""
        with self._lock:
            for state in self._states.values():
                state.vat_zones = dict(zones)

    def set_rate_limit(self, rate: float | None) -> None:
        """Every agreement's token bucket, now and for agreements first seen later."""
        with self._lock:
            self.rate_limit = rate
            for state in self._states.values():
                state.bucket = TokenBucket(rate) if rate else None

    def reset(self) -> None:
        with self._lock:
            self._states.clear()
            self.revoked.clear()
            self.issued.clear()
            self.revoked_tokens.clear()
            self.approval_index = 1
            self.clock_offset = 0.0
            self.conventions = dict(DEFAULT_CONVENTIONS)


def retry_after_seconds(wait: float) -> int:
    return max(1, math.ceil(wait))
