"""Deterministic Roger bills for the sandbox: pure functions, no HTTP, no clock.

``generate_company(i, ...)`` gives company *i*'s bills in the openapi ``Bill``
shape (``/work/shared/roger-api/openapi.yaml``), plus one private key: a bill
chosen to carry a problem has ``_problem`` set to one of :data:`PROBLEM_KINDS`.
Keys starting with ``_`` are never served (see :func:`public`).

Everything comes from ``random.Random(f"{seed}:{i}")`` and the arguments, so the
same inputs give byte-identical output (``json.dumps`` of the result).

What the data exercises (see ``docs/booking-rules.md``):

- vendors from :data:`sandboxes.world.VENDORS` with their currency, country and CVR
  (sometimes written ``DK 31245871`` or ``3124 5871``), FI code lines for vendors
  with an FI creditor: mostly ``+71``, some ``+73``/``+75``, a few ``+04`` and a
  few that do not parse;
- amounts built from integer øre; ``vat_amount`` = 20 % of the gross (25 % on the
  net) for DKK bills in 25 %-VAT categories, sometimes unknown, sometimes a few
  øre off;
- document types bill / receipt (~10 %, paid at purchase) / credit_note (~5 %);
  every status; ``paid_rate`` of the bills PAID with a payment (foreign ones with
  ``amount_base_currency`` in DKK, sometimes unknown);
- invoice numbers longer than 30 characters or missing, due dates missing,
  bills without a document, tombstones (``deleted: true``), bills at version > 1,
  bills sharing an ``updated_at`` (so the tie-break on ``id`` matters);
- ``problem_rate`` of the bills with exactly one problem each (:data:`PROBLEM_KINDS`).
"""

from __future__ import annotations

import copy
import hashlib
import random
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sandboxes import world

STATUSES = ("ANALYZING", "AWAITING_APPROVAL", "PENDING", "UPCOMING", "INITIALIZED", "PAID", "DUPLICATE")

# one problem per problem bill, chosen in this order (rotated by the company's random start)
PROBLEM_KINDS = (
    "category_null",  # category_id null: goes to the default account (or quarantine without one)
    "category_archived",  # category_id "cat_old", archived in Roger
    "category_unmapped",  # category_id "cat_unmapped_<n>": live in /categories, in no agreement mapping
    "payment_method_unmapped",  # PAID with "pm_mobilepay", not mapped in a typical agreement
    "closed_year",  # issue_date in 2024, a closed accounting year
    "currency_unknown",  # currency "XXX"
    "amount_3_decimals",  # amount like "100.005": breaks the contract's pattern
)

ARCHIVED_CATEGORY = next(cid for cid, _name, archived in world.CATEGORIES if archived)
UNMAPPED_PAYMENT_METHOD = "pm_mobilepay"
assert any(pm[0] == UNMAPPED_PAYMENT_METHOD for pm in world.PAYMENT_METHODS)
PAYMENT_METHODS = tuple(pm[0] for pm in world.PAYMENT_METHODS if not pm[4] and pm[0] != UNMAPPED_PAYMENT_METHOD)
LIVE_CATEGORIES = tuple(cid for cid, _name, archived in world.CATEGORIES if not archived)
_CATEGORY_NAMES = {cid: name for cid, name, _archived in world.CATEGORIES}

# categories whose Danish bills carry 25 % VAT on the document
VAT25_CATEGORIES = frozenset(LIVE_CATEGORIES) - {"cat_meals", "cat_travel"}

# gross amount range in DKK per category, in øre
_RANGES = {
    "cat_office": (9_900, 450_000),
    "cat_software": (4_900, 300_000),
    "cat_phone": (19_900, 150_000),
    "cat_travel": (2_400, 600_000),
    "cat_meals": (8_500, 250_000),
    "cat_rent": (800_000, 3_000_000),
    "cat_utilities": (45_000, 600_000),
    "cat_services": (150_000, 2_500_000),
    "cat_marketing": (50_000, 1_200_000),
}
# DKK per 100 units: (low, high) in hundredths, a plausible spread around the rate
_RATES = {"EUR": (74_580, 74_650), "SEK": (6_750, 7_050)}

_B32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
_ID_BITS = 50
_ID_MASK = (1 << _ID_BITS) - 1
_ID_MULT = 0x2545F4914F6CD & _ID_MASK | 1  # odd: multiplication mod 2**50 is a bijection


# --------------------------------------------------------------------------- small helpers


def parse_time(value: str | datetime) -> datetime:
    """An aware UTC datetime from an ISO-8601 string (``Z`` or offset) or a datetime."""
    if isinstance(value, datetime):
        dt = value
    else:
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def format_time(dt: datetime) -> str:
    """``2026-11-25T13:45:12Z`` (microseconds kept only when present)."""
    dt = dt.astimezone(UTC)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def money(ore: int) -> str:
    """Integer øre as a decimal string with two decimals."""
    sign = "-" if ore < 0 else ""
    ore = abs(ore)
    return f"{sign}{ore // 100}.{ore % 100:02d}"


def bill_id(seed: int | str, company: int, n: int) -> str:
    """``bill_`` + 10 Crockford base32 characters, unique per (company, n) for one seed."""
    if not (0 <= company < 1 << 30 and 0 <= n < 1 << 20):
        raise ValueError("company or bill index out of range")
    key = int.from_bytes(hashlib.sha256(f"roger-bill:{seed}".encode()).digest()[:8], "big") & _ID_MASK
    value = (((company << 20) | n) ^ key) * _ID_MULT & _ID_MASK
    chars = []
    for _ in range(10):
        chars.append(_B32[value & 31])
        value >>= 5
    return "bill_" + "".join(reversed(chars))


def public(bill: dict[str, Any]) -> dict[str, Any]:
    """The bill as served: private keys (``_problem``) left out."""
    return {k: v for k, v in bill.items() if not k.startswith("_")}


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _luhn_digit(digits: str) -> str:
    total = 0
    for pos, ch in enumerate(reversed(digits)):
        d = int(ch)
        if pos % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def _ocr(rng: random.Random, length: int) -> str:
    body = "".join(str(rng.randrange(10)) for _ in range(length - 1))
    return body + _luhn_digit(body)


# --------------------------------------------------------------------------- vendors


def _vendor_details(v: world.Vendor) -> dict[str, Any]:
    """Address, e-mail, VAT number and bank of a vendor, the same on every bill."""
    h = _digest(v.name)
    slug = "".join(ch for ch in v.name.lower() if ch.isascii() and ch.isalnum())[:20] or "vendor"
    if v.country == "DK":
        streets = ["Vesterbrogade", "Nørregade", "Algade", "Strandvejen", "Industrivej", "Havnegade"]
        towns = [
            ("1620", "København V"),
            ("8000", "Aarhus C"),
            ("5000", "Odense C"),
            ("9000", "Aalborg"),
            ("2300", "København S"),
            ("7100", "Vejle"),
        ]
        town = towns[(h >> 8) % len(towns)]
        address = f"{streets[h % len(streets)]} {h % 150 + 1}, {town[0]} {town[1]}"
        bank = {"reg_no": f"{h % 9000 + 1000}", "account_no": f"{h % 10**10:010d}", "iban": None, "swift": None}
        vat_number = f"DK{v.cvr}" if v.cvr else None
        email = f"faktura@{slug}.dk"
    else:
        address = {
            "DE": "Industriestr. 25, 91710 Gunzenhausen, Germany",
            "SE": "Regeringsgatan 19, Stockholm",
            "IE": "Gordon House, Barrow Street, Dublin 4",
            "AU": "341 George St, Sydney NSW 2000",
        }.get(v.country)
        iban_digits = f"{h % 10**16:016d}"
        bank = {
            "reg_no": None,
            "account_no": None,
            "iban": f"{v.country}{h % 90 + 10}{iban_digits}",
            "swift": f"{slug[:4].upper():X<4}{v.country}2X",
        }
        vat_number = f"{v.country}{h % 10**9:09d}" if v.country in world.EU_COUNTRIES else None
        email = f"billing@{slug}.com"
    return {"address": address, "email": email, "vat_number": vat_number, "bank": bank}


def _vendor_cvr(rng: random.Random, v: world.Vendor) -> str | None:
    if v.cvr is None:
        return None
    roll = rng.random()
    if roll < 0.10:
        return f"DK {v.cvr}"
    if roll < 0.15:
        return f"{v.cvr[:4]} {v.cvr[4:]}"
    if roll < 0.18:
        return f"DK{v.cvr[:2]} {v.cvr[2:4]} {v.cvr[4:6]} {v.cvr[6:]}"
    return v.cvr


def _payment_code(rng: random.Random, v: world.Vendor) -> str | None:
    if v.fi_creditor is None or rng.random() < 0.08:
        return None
    cred = v.fi_creditor
    roll = rng.random()
    if roll < 0.62:
        return f"+71<{_ocr(rng, 15)}+{cred}<"
    if roll < 0.74:
        return f"+73<+{cred}<"
    if roll < 0.86:
        return f"+75<{_ocr(rng, 16)}+{cred}<"
    if roll < 0.93:
        return f"+04<{_ocr(rng, 16)}+{rng.randrange(10**7, 8 * 10**7)}<"
    broken = [
        f"+71<{_ocr(rng, 9)}+{cred}<",  # OCR too short
        f"+71<{_ocr(rng, 15)}+1{cred[1:]}<",  # creditor not starting with 8
        f"FI 71 {_ocr(rng, 15)} {cred}",  # written out, not a code line
        f"+75<{_ocr(rng, 14)}X+{cred}<",  # a letter in the OCR line
    ]
    return rng.choice(broken)


def _pick_vendor(rng: random.Random) -> world.Vendor:
    weights = [3 if v.currency == "DKK" else 1 for v in world.VENDORS]
    return rng.choices(world.VENDORS, weights=weights)[0]


# --------------------------------------------------------------------------- one bill


def _invoice_number(rng: random.Random, issue: date, v: world.Vendor) -> str | None:
    roll = rng.random()
    if roll < 0.05:
        return None
    if roll < 0.10:
        prefix = "".join(ch for ch in v.name.upper() if ch.isascii() and ch.isalpha())[:12]
        return f"INV/{issue.year}/{prefix}/{rng.randrange(10**6):06d}-ABONNEMENT-KVARTAL"
    if roll < 0.25:
        return f"{rng.randrange(10**7, 10**8)}"
    return f"{issue.year}-{rng.randrange(1, 10000):04d}"


def _vat(rng: random.Random, gross: int, currency: str, category: str | None) -> str | None:
    if currency != "DKK":
        return None
    if category in VAT25_CATEGORIES or category is None:
        roll = rng.random()
        if roll < 0.12:
            return None
        vat = (gross + 2) // 5  # 20 % of the gross, rounded half up
        if roll < 0.20:
            vat += rng.choice([-50, -7, -1, 1, 3, 40])  # read a little off the document
        return money(max(vat, 0))
    return money((gross + 2) // 5) if rng.random() < 0.3 else None


def _base_amount(rng: random.Random, amount: str, currency: str) -> str | None:
    if currency == "DKK":
        return amount
    if currency not in _RATES or rng.random() < 0.2:
        return None
    low, high = _RATES[currency]
    rate = Decimal(rng.randint(low, high)) / 100  # DKK per 100 units, e.g. 746.12
    return str((Decimal(amount) * rate / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _payment(rng: random.Random, bill: dict[str, Any], paid: date, method: str | None = None) -> dict[str, Any]:
    return {
        "method_id": method or rng.choice(PAYMENT_METHODS),
        "paid_date": paid.isoformat(),
        "amount": bill["amount"],
        "currency": bill["currency"],
        "amount_base_currency": _base_amount(rng, bill["amount"], bill["currency"]),
    }


def _status(rng: random.Random, paid_rate: float) -> str:
    if rng.random() < paid_rate:
        return "PAID"
    return rng.choices(
        ["UPCOMING", "INITIALIZED", "ANALYZING", "AWAITING_APPROVAL", "PENDING", "DUPLICATE"],
        weights=[55, 20, 6, 7, 6, 6],
    )[0]


def make_bill(
    rng: random.Random,
    seed: int | str,
    company: int,
    n: int,
    updated: datetime,
    paid_rate: float,
    *,
    document_type: str | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    """One ordinary bill (version 1, created when last updated); the caller adds the oddities."""
    v = _pick_vendor(rng)
    if document_type is None:
        roll = rng.random()
        document_type = "receipt" if roll < 0.10 else "credit_note" if roll < 0.15 else "bill"
    if status is None:
        status = "PAID" if document_type == "receipt" else _status(rng, paid_rate)
    category = v.category if rng.random() < 0.9 else rng.choice(LIVE_CATEGORIES)
    low, high = _RANGES[category]
    gross = rng.randint(low, high)
    if v.currency == "EUR":
        gross = max(gross * 100 // 74_612, 100)
    elif v.currency == "SEK":
        gross = max(gross * 100 // 6_890, 100)
    if document_type == "credit_note":
        gross = max(gross // 4, 100)
    updated_day = updated.date()
    if document_type == "receipt":
        issue = updated_day - timedelta(days=rng.randint(0, 40))
    else:
        issue = updated_day - timedelta(days=rng.randint(1 if status == "PAID" else 0, 40))
    due = None if document_type == "receipt" or rng.random() < 0.1 else issue + timedelta(days=rng.randint(8, 30))
    details = _vendor_details(v)
    bill: dict[str, Any] = {
        "id": bill_id(seed, company, n),
        "company_id": world.company_id(company),
        "version": 1,
        "status": status,
        "deleted": False,
        "document_type": document_type,
        "vendor": {
            "name": v.name,
            "cvr": _vendor_cvr(rng, v),
            "vat_number": details["vat_number"],
            "country": v.country,
            "address": details["address"] if rng.random() < 0.9 else None,
            "email": details["email"] if rng.random() < 0.7 else None,
            "bank": details["bank"] if rng.random() < 0.85 else None,
        },
        "invoice_number": _invoice_number(rng, issue, v),
        "issue_date": issue.isoformat(),
        "due_date": due.isoformat() if due else None,
        "currency": v.currency,
        "amount": money(gross),
        "vat_amount": _vat(rng, gross, v.currency, category),
        "category_id": category,
        "description": None if rng.random() < 0.3 else f"{_CATEGORY_NAMES[category]} – {v.name}",
        "payment_code": _payment_code(rng, v) if document_type == "bill" else None,
        "payment": None,
        "has_document": rng.random() < 0.92,
        "created_at": format_time(updated),
        "updated_at": format_time(updated),
    }
    if status == "PAID":
        if document_type == "receipt":
            paid = issue
            method = rng.choice([m for m in PAYMENT_METHODS if m != "pm_bank"] or PAYMENT_METHODS)
        else:
            gap = max((updated_day - issue).days, 1)
            if due is not None and due <= updated_day and rng.random() < 0.2:
                paid = due  # marked as paid by hand: Roger uses the due date
            else:
                paid = issue + timedelta(days=rng.randint(1, min(gap, 30)))
            method = None
        bill["payment"] = _payment(rng, bill, paid, method)
    return bill


def _apply_problem(rng: random.Random, bill: dict[str, Any], kind: str, n: int) -> None:
    bill["_problem"] = kind
    if kind == "category_null":
        bill["category_id"] = None
    elif kind == "category_archived":
        bill["category_id"] = ARCHIVED_CATEGORY
    elif kind == "category_unmapped":
        bill["category_id"] = f"cat_unmapped_{n}"
    elif kind == "payment_method_unmapped":
        bill["document_type"] = "bill"
        bill["status"] = "PAID"
        issue = date.fromisoformat(bill["issue_date"])
        updated_day = parse_time(bill["updated_at"]).date()
        paid = min(issue + timedelta(days=rng.randint(1, 10)), max(updated_day, issue + timedelta(days=1)))
        bill["payment"] = _payment(rng, bill, paid, UNMAPPED_PAYMENT_METHOD)
    elif kind == "closed_year":
        issue = date(2024, 7, 1) + timedelta(days=rng.randint(0, 170))
        bill["issue_date"] = issue.isoformat()
        if bill["due_date"] is not None:
            bill["due_date"] = (issue + timedelta(days=rng.randint(8, 30))).isoformat()
        if bill["payment"] is not None:
            paid = issue if bill["document_type"] == "receipt" else issue + timedelta(days=rng.randint(1, 20))
            bill["payment"]["paid_date"] = paid.isoformat()
        if bill["invoice_number"] and bill["invoice_number"][:4].isdigit():
            bill["invoice_number"] = "2024" + bill["invoice_number"][4:]
    elif kind == "currency_unknown":
        bill["currency"] = "XXX"
        bill["vat_amount"] = None
        if bill["payment"] is not None:
            bill["payment"]["currency"] = "XXX"
            bill["payment"]["amount_base_currency"] = None
    elif kind == "amount_3_decimals":
        bill["amount"] = f"{bill['amount']}{rng.randint(1, 9)}"
    else:  # pragma: no cover - guarded by PROBLEM_KINDS
        raise ValueError(kind)


# --------------------------------------------------------------------------- a company


def night_bills(spec: str, seed: int | str, company: int) -> int:
    """Company ``company``'s bill count in a skewed night: ``LOW-HIGH:SHARE,...`` ranges (shares in any
    unit), one range picked by share and a count uniform in it, both seeded per company."""
    ranges = []
    for part in spec.split(","):
        span, _, share = part.strip().partition(":")
        low, _, high = span.partition("-")
        ranges.append((int(low), int(high or low), float(share or 1)))
    rng = random.Random(f"{seed}:night:{company}")
    pick = rng.random() * sum(share for _lo, _hi, share in ranges)
    for low, high, share in ranges:
        if pick < share:
            return rng.randint(low, high)
        pick -= share
    return rng.randint(ranges[-1][0], ranges[-1][1])


def generate_company(
    i: int, bills: int, seed: int | str, end: str | datetime, days: float, problem_rate: float, paid_rate: float
) -> list[dict[str, Any]]:
    """Company ``i``'s bills (with ``_problem`` on problem bills), sorted by (updated_at, id)."""
    rng = random.Random(f"{seed}:{i}")
    end_dt = parse_time(end).replace(microsecond=0)
    span = max(int(days * 86400), 1)
    times = [end_dt - timedelta(seconds=span - rng.randrange(span)) for _ in range(bills)]
    # a few bills share an updated_at (the feed's tie-break on id must hold)
    ties = max(1, bills // 20) if bills >= 10 else 0
    for _ in range(ties):
        a, b = rng.sample(range(bills), 2)
        times[b] = times[a]

    # every status shows up when there are enough bills
    forced: dict[int, str] = {}
    if bills >= 20:
        for n, status in zip(rng.sample(range(bills), len(STATUSES)), STATUSES, strict=True):
            forced[n] = status

    out = []
    for n in range(bills):
        if n in forced:
            bill = make_bill(rng, seed, i, n, times[n], paid_rate, document_type="bill", status=forced[n])
        else:
            bill = make_bill(rng, seed, i, n, times[n], paid_rate)
        out.append(bill)

    # problems: exactly one each, kinds in a fixed rotation
    n_problems = min(bills, round(bills * problem_rate))
    problem_idx = sorted(rng.sample(range(bills), n_problems))
    start = rng.randrange(len(PROBLEM_KINDS))
    for k, n in enumerate(problem_idx):
        _apply_problem(rng, out[n], PROBLEM_KINDS[(start + k) % len(PROBLEM_KINDS)], n)

    # later versions and tombstones, on bills without a problem
    healthy = [n for n in range(bills) if n not in set(problem_idx)]
    n_changed = min(len(healthy), max(2, bills // 20) if bills >= 10 else 0)
    n_deleted = min(len(healthy) - n_changed, max(1, bills // 25) if bills >= 10 else 0)
    picked = rng.sample(healthy, n_changed + n_deleted)
    for pos, n in enumerate(picked):
        bill = out[n]
        bill["version"] = rng.randint(2, 4)
        created = parse_time(bill["updated_at"]) - timedelta(seconds=rng.randint(3600, 10 * 86400))
        bill["created_at"] = format_time(created)
        if pos >= n_changed:
            bill["deleted"] = True

    out.sort(key=lambda b: (b["updated_at"], b["id"]))
    return out


def new_bill(
    seed: int | str,
    company: int,
    n: int,
    updated: datetime,
    paid_rate: float = 0.4,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A fresh bill number ``n`` of a company (for ``/_control/bills/add``), with fields overridden."""
    rng = random.Random(f"{seed}:{company}:add:{n}")
    bill = make_bill(rng, seed, company, n, updated, paid_rate)
    for key, value in (overrides or {}).items():
        if key == "vendor" and isinstance(value, dict):
            bill["vendor"] = {**bill["vendor"], **value}
        else:
            bill[key] = copy.deepcopy(value)
    return bill


# --------------------------------------------------------------------------- the document


def _pdf_text(text: str) -> str:
    raw = text.encode("cp1252", errors="replace").decode("latin-1")
    return raw.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def document_pdf(bill: dict[str, Any]) -> bytes:
    """A small valid one-page PDF naming the vendor, the bill id and the amount (deterministic)."""
    lines = [
        ("F2", 16, "Faktura" if bill.get("document_type") != "credit_note" else "Kreditnota"),
        ("F1", 11, str((bill.get("vendor") or {}).get("name") or "")),
        ("F1", 11, f"Bilag: {bill.get('id', '')}"),
        ("F1", 11, f"Fakturanr.: {bill.get('invoice_number') or '-'}"),
        ("F1", 11, f"Dato: {bill.get('issue_date') or '-'}   Forfald: {bill.get('due_date') or '-'}"),
        ("F1", 11, f"Beløb: {bill.get('amount', '')} {bill.get('currency', '')}"),
    ]
    ops = ["BT", "72 770 Td", "14 TL"]
    for font, size, text in lines:
        ops.append(f"/{font} {size} Tf ({_pdf_text(text)}) Tj T*")
    ops.append("ET")
    stream = "\n".join(ops).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R /F2 5 0 R >> >> /Contents 6 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for num, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{num} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)
