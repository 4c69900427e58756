"""The e-conomic sandbox's HTTP side: authentication, routing, answers, control endpoints.

See ``sandboxes.economic`` for the endpoints and the control API. Every request
of an agreement runs under that agreement's lock, so a voucher POST is atomic
and its idempotency answer is stored in the same critical section as the state
change (a ``lost_answer`` fault therefore leaves a replayable answer behind).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from sandboxes import world
from sandboxes.economic import approval
from sandboxes.economic.state import (
    DEFAULT_CONVENTIONS,
    ENTRY_TYPES,
    AgreementState,
    Cached,
    Entry,
    Sandbox,
    Voucher,
    retry_after_seconds,
    year_of_path,
    year_path,
)
from sandboxes.economic.validation import (
    E_PAYMENT_TYPE,
    SUPPLIERS_POST,
    VOUCHERS_POST,
    add_error,
    error_item,
    loads,
    payment_type_problems,
    payment_types,
    plain,
    real_date,
    schema_errors,
)
from sandboxes.httpbase import JsonHandler, Reply

# Error codes the sandbox answers with. Documented: E04041 and E07150 (README "Errors"), E03040 (README
# "Attachments"), E07520 (e-conomic's "Payment type 3 not found"); the others are assumed, in e-conomic's style.
# The client relies on none of the codes (it reports them), so they need no switch.
E_AUTH = "E00100"  # missing, wrong or revoked token
E_MEDIA = "E00415"  # not JSON
E_BAD_REQUEST = "E00400"  # unreadable body, bad paging or filter
E_NOT_FOUND = "E00404"
E_RATE = "E00429"
E_SCANNING = "E03040"  # no scanning add-on
E_PERIOD = "E04041"  # date in no / a closed year, or in a barred period
E_YEAR = "E04042"  # accountingYear.year does not fit the entry dates
E_ENTRIES = "E06020"  # a voucher without entries
E_ACCOUNT = "E07150"  # account missing, barred, heading/sum, blocking direct entries
E_SUPPLIER = "E07160"  # supplier missing
E_VAT = "E07170"  # VAT code missing
E_CURRENCY = "E07180"  # currency unknown
E_ENTRY_TYPE = "E07190"  # entry type not allowed in the journal
E_VOUCHER_NUMBER = "E07200"  # voucher number outside the journal's range or taken
E_MASTER = "E07210"  # supplier group, VAT zone or payment terms unknown
E_ATTACHMENT = "E08010"  # attachment problems (type, size, already there)
# E_PAYMENT_TYPE = "E07520" (sandboxes.economic.validation): payment type not found, as e-conomic answers it

MAX_ATTACHMENT_BYTES = 9 * 1024 * 1024
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 20
ATTACHMENT_TYPES = {
    "pdf": "application/pdf",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
}
BOOKABLE = frozenset({"profitAndLoss", "status"})
SUPPLIER_LAYOUT = 19


def error_body(
    status: int, message: str, code: str | None = None, hint: str | None = None, errors: Any = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message}
    if code:
        body["errorCode"] = code
    body.update(
        {
            "developerHint": hint or message,
            "logId": uuid.uuid4().hex[:20],
            "httpStatusCode": status,
            "logTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        }
    )
    if errors is not None:
        body["errors"] = errors
    return body


def fail(
    status: int,
    message: str,
    code: str | None = None,
    hint: str | None = None,
    errors: Any = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    return Reply(status, error_body(status, message, code, hint, errors), headers)


def validation_failed(errors: Any) -> Reply:
    return fail(400, "Validation error.", None, "The request did not pass validation; see errors.", errors)


# --------------------------------------------------------------------------- filters


class FilterError(ValueError):
    pass


_OPS = ("gte", "lte", "eq", "ne", "gt", "lt", "like", "nin", "in")
_ESCAPED = "$()*"  # what ``$`` escapes inside a value
_CONDITION = re.compile(r"([A-Za-z_][A-Za-z0-9_.]*)\$([a-z]+):")


class _FilterParser:
    """``field$op:value`` joined by ``$and:`` / ``$or:``, with parentheses; ``$and`` binds tighter.

    In values, ``$$ $( $) $*`` stand for the characters themselves (the shared economic-api README,
    "Paging and filtering"); an unescaped ``*`` is the ``$like`` wildcard, and an unescaped ``$or:`` /
    ``$and:`` / ``)`` ends the value, as on e-conomic: a raw ``Zeta $or:name$like:*`` matches everything.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse(self) -> Callable[[dict[str, Any]], bool]:
        pred = self._or()
        if self.pos != len(self.text):
            raise FilterError(f"unexpected {self.text[self.pos :]!r} in filter")
        return pred

    def _or(self) -> Callable[[dict[str, Any]], bool]:
        terms = [self._and()]
        while self.text.startswith("$or:", self.pos):
            self.pos += 4
            terms.append(self._and())
        if len(terms) == 1:
            return terms[0]
        return lambda item: any(t(item) for t in terms)

    def _and(self) -> Callable[[dict[str, Any]], bool]:
        terms = [self._atom()]
        while self.text.startswith("$and:", self.pos):
            self.pos += 5
            terms.append(self._atom())
        if len(terms) == 1:
            return terms[0]
        return lambda item: all(t(item) for t in terms)

    def _atom(self) -> Callable[[dict[str, Any]], bool]:
        if self.text.startswith("(", self.pos):
            self.pos += 1
            pred = self._or()
            if not self.text.startswith(")", self.pos):
                raise FilterError("missing ')' in filter")
            self.pos += 1
            return pred
        m = _CONDITION.match(self.text, self.pos)
        if not m or m.group(2) not in _OPS:
            raise FilterError(f"expected field$operator:value at {self.text[self.pos :]!r}")
        self.pos = m.end()
        tokens = self._value()
        return _condition(m.group(1), m.group(2), tokens)

    def _value(self) -> list[tuple[bool, str]]:
        """(is_wildcard, char) tokens up to the next ``$and:`` / ``$or:`` / ``)``."""
        out: list[tuple[bool, str]] = []
        text, n = self.text, len(self.text)
        while self.pos < n:
            c = text[self.pos]
            if c == "$":
                if text.startswith("and:", self.pos + 1) or text.startswith("or:", self.pos + 1):
                    break
                nxt = text[self.pos + 1 : self.pos + 2]
                if nxt and nxt in _ESCAPED:
                    out.append((False, nxt))
                    self.pos += 2
                    continue
                out.append((False, "$"))
            elif c == ")":
                break
            else:
                out.append((c == "*", c))
            self.pos += 1
        return out


def _resolve(item: Any, field: str) -> Any:
    cur = item
    for part in field.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        return Decimal(str(value))
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _condition(field: str, op: str, tokens: list[tuple[bool, str]]) -> Callable[[dict[str, Any]], bool]:
    raw = "".join(c for _, c in tokens)
    if op in ("in", "nin"):
        inner = raw.strip()
        if inner.startswith("[") and inner.endswith("]"):
            inner = inner[1:-1]
        parts = [p.strip() for p in inner.split(",") if p.strip()]
        if len(parts) > 200:
            raise FilterError("$in/$nin take at most 200 values")
        try:
            values = {Decimal(p) for p in parts}
        except InvalidOperation:
            raise FilterError("$in/$nin take numbers only") from None

        def member(item: dict[str, Any]) -> bool:
            num = _number(_resolve(item, field))
            found = num is not None and num in values
            return found if op == "in" else not found

        return member

    if op == "like":
        if any(w for w, _ in tokens):
            pattern = "".join(".*" if w else re.escape(c) for w, c in tokens)
            rx = re.compile(pattern, re.IGNORECASE | re.DOTALL)

            def like(item: dict[str, Any]) -> bool:
                actual = _resolve(item, field)
                return actual is not None and rx.fullmatch(str(actual)) is not None
        else:
            needle = raw.lower()

            def like(item: dict[str, Any]) -> bool:
                actual = _resolve(item, field)
                return actual is not None and needle in str(actual).lower()

        return like

    wanted_num = _number(raw)
    wanted_str = raw.lower()

    def compare(item: dict[str, Any]) -> bool:
        actual = _resolve(item, field)
        if actual is None and wanted_str == "false":
            actual = False  # false booleans are left out of answers
        if wanted_str == "null":
            return (actual is None) == (op == "eq") if op in ("eq", "ne") else False
        if actual is None:
            return op == "ne"
        a: Any
        b: Any
        if isinstance(actual, bool):
            a, b = ("true" if actual else "false"), wanted_str
        elif isinstance(actual, int | float | Decimal) and wanted_num is not None:
            a, b = Decimal(str(actual)), wanted_num
        else:
            a, b = str(actual).lower(), wanted_str
        if op == "eq":
            return a == b
        if op == "ne":
            return a != b
        try:
            if op == "gt":
                return a > b
            if op == "gte":
                return a >= b
            if op == "lt":
                return a < b
            return a <= b
        except TypeError:
            return False

    return compare


def parse_filter(text: str) -> Callable[[dict[str, Any]], bool]:
    return _FilterParser(text).parse()


# --------------------------------------------------------------------------- multipart


def parse_multipart(content_type: str, body: bytes) -> list[tuple[dict[str, str], bytes]]:
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        return []
    boundary = b"--" + m.group(1).encode()
    parts: list[tuple[dict[str, str], bytes]] = []
    for chunk in body.split(boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        if chunk.startswith(b"\r\n"):
            chunk = chunk[2:]
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        if data.endswith(b"\r\n"):
            data = data[:-2]
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        parts.append((headers, data))
    return parts


def _filename(headers: dict[str, str]) -> str:
    m = re.search(r'filename="([^"]*)"', headers.get("content-disposition", "")) or re.search(
        r"filename=([^;]+)", headers.get("content-disposition", "")
    )
    return m.group(1).strip() if m else ""


_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


def count_pages(data: bytes, kind: str) -> int:
    if kind == "pdf":
        return max(1, len(_PDF_PAGE.findall(data)))
    return 1


# --------------------------------------------------------------------------- routes

ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (method, re.compile(pattern), name)
    for method, pattern, name in (
        ("GET", r"/self", "get_self"),
        ("GET", r"/accounts", "list_accounts"),
        ("GET", r"/accounts/(\d+)", "get_account"),
        ("GET", r"/vat-accounts", "list_vat_accounts"),
        ("GET", r"/vat-accounts/([^/]+)", "get_vat_account"),
        ("GET", r"/currencies", "list_currencies"),
        ("GET", r"/currencies/([A-Za-z]{3})", "get_currency"),
        ("GET", r"/journals", "list_journals"),
        ("GET", r"/journals/(\d+)", "get_journal"),
        ("GET", r"/journals/(\d+)/entries", "list_entries"),
        ("GET", r"/journals/(\d+)/entries/(\d+)", "get_entry"),
        ("DELETE", r"/journals/(\d+)/entries/(\d+)", "delete_entry"),
        ("POST", r"/journals/(\d+)/vouchers", "post_vouchers"),
        ("GET", r"/journals/(\d+)/vouchers/([^/]+)", "get_voucher"),
        ("GET", r"/journals/(\d+)/vouchers/([^/]+)/attachment", "get_attachment"),
        ("POST", r"/journals/(\d+)/vouchers/([^/]+)/attachment/file", "post_attachment"),
        ("PATCH", r"/journals/(\d+)/vouchers/([^/]+)/attachment/file", "patch_attachment"),
        ("GET", r"/accounting-years", "list_years"),
        ("GET", r"/accounting-years/([^/]+)", "get_year"),
        ("GET", r"/accounting-years/([^/]+)/periods", "list_periods"),
        ("GET", r"/accounting-years/([^/]+)/periods/(\d+)", "get_period"),
        ("GET", r"/accounting-years/([^/]+)/entries", "list_booked_entries"),
        ("GET", r"/suppliers", "list_suppliers"),
        ("POST", r"/suppliers", "post_supplier"),
        ("GET", r"/suppliers/(\d+)", "get_supplier"),
        ("GET", r"/supplier-groups", "list_supplier_groups"),
        ("GET", r"/vat-zones", "list_vat_zones"),
        ("GET", r"/payment-terms", "list_payment_terms"),
        ("GET", r"/payment-types", "list_payment_types"),
        ("GET", r"/payment-types/(\d+)", "get_payment_type"),
    )
]


def kind_of(path: str) -> str:
    """The counter a request is counted under."""
    if "/attachment" in path:
        return "attachments"
    if path.startswith("/journals/") and "/vouchers" in path:
        return "vouchers"
    if path.startswith("/journals/") and "/entries" in path:
        return "entries"
    if path.startswith("/suppliers"):
        return "suppliers"
    return "reads"


class EconomicHandler(JsonHandler):
    """One request against the e-conomic sandbox."""

    # Headers and body go out in two writes: without TCP_NODELAY, Nagle + delayed ACK stall
    # every keep-alive answer.
    disable_nagle_algorithm = True

    # ------------------------------------------------------------------ base hooks
    def scope_of(self, path: str) -> str:
        i = self.server.state.index_of_token(self.headers.get("X-AgreementGrantToken"))
        return str(world.agreement_number(i)) if i else "?"

    def fault_body(self, status: int) -> Any:
        return error_body(status, f"Injected fault {status}", None, "Sandbox fault injection.")

    @property
    def sandbox(self) -> Sandbox:
        return self.server.state

    def route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, Any, dict]:
        sb = self.sandbox
        if path.rstrip("/").lower() == approval.PATH.lower():  # a browser page, not the REST API: no tokens
            return approval.handle(sb, method, query, body)
        if self.headers.get("X-AppSecretToken") != sb.app_secret:
            raise fail(
                401, "The app secret token is missing or not valid.", E_AUTH, "Send a valid X-AppSecretToken header."
            )
        index = sb.index_of_token(self.headers.get("X-AgreementGrantToken"))
        if index is None or world.agreement_number(index) in sb.revoked:
            raise fail(
                401,
                "The agreement grant token is missing, not valid or revoked.",
                E_AUTH,
                "Send a valid X-AgreementGrantToken header.",
            )
        agr = sb.agreement(index)
        if agr.bucket is not None:
            wait = agr.bucket.take()
            if wait > 0:
                raise fail(
                    429,
                    "Too many requests.",
                    E_RATE,
                    "Slow down; see Retry-After.",
                    headers={"Retry-After": str(retry_after_seconds(wait))},
                )
        path = unquote(path.rstrip("/")) or "/"
        self._check_content_type(method, path, body)
        key = self.headers.get("Idempotency-Key") if method != "GET" else None
        with agr.lock:
            agr.count(kind_of(path), method)
            if not key:
                return self._dispatch(agr, method, path, query, body)
            now = sb.now()
            hit = agr.cached(key, now)
            if hit is not None:
                if (hit.method, hit.path) != (method, path):
                    raise fail(
                        400,
                        "The idempotency key was used with another URL.",
                        "URLChanged",
                        f"Key {key!r} was first used for {hit.method} {hit.path}.",
                    )
                return hit.status, hit.body, {**hit.headers, "X-ResultFromCache": "true"}
            status, payload, headers = self._dispatch(agr, method, path, query, body)
            if status < 400:
                agr.remember(key, Cached(method, path, status, payload, dict(headers), now))
            return status, payload, headers

    def _check_content_type(self, method: str, path: str, body: bytes) -> None:
        if method == "GET" or (method == "DELETE" and not body):
            return
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if path.endswith("/attachment/file"):
            if ctype != "multipart/form-data":
                raise fail(415, "Attachments must be sent as multipart/form-data.", E_MEDIA)
            return
        if ctype != "application/json":
            raise fail(
                415,
                "Unsupported media type: only application/json is accepted.",
                E_MEDIA,
                f"Content-Type was {ctype or 'missing'}.",
            )

    def _dispatch(
        self, agr: AgreementState, method: str, path: str, query: dict[str, list[str]], body: bytes
    ) -> tuple[int, Any, dict]:
        allowed = False
        for route_method, pattern, name in ROUTES:
            m = pattern.fullmatch(path)
            if m is None:
                continue
            if route_method != method:
                allowed = True
                continue
            return getattr(self, name)(agr, *m.groups(), query=query, body=body, path=path)
        if allowed:
            raise fail(405, f"Method {method} is not allowed on {path}.", "E00405")
        raise fail(404, f"No resource at {path}.", E_NOT_FOUND)

    # ------------------------------------------------------------------ helpers
    @property
    def base(self) -> str:
        return self.sandbox.base_url

    def collection(self, items: list[dict[str, Any]], query: dict[str, list[str]], path: str) -> tuple[int, Any, dict]:
        q = {k.lower(): v[-1] for k, v in query.items() if v}
        try:
            skip = int(q.get("skippages", 0))
            size = int(q.get("pagesize", DEFAULT_PAGE_SIZE))
        except ValueError:
            raise fail(400, "skippages and pagesize must be integers.", E_BAD_REQUEST) from None
        if skip < 0 or size < 1 or size > MAX_PAGE_SIZE:
            raise fail(400, f"pagesize must be 1..{MAX_PAGE_SIZE} and skippages at least 0.", E_BAD_REQUEST)
        flt = q.get("filter")
        if flt:
            try:
                pred = parse_filter(flt)
            except FilterError as exc:
                raise fail(400, f"Invalid filter: {exc}", E_BAD_REQUEST) from None
            items = [item for item in items if pred(item)]
        total = len(items)
        last = max(0, (total - 1) // size)

        def url(s: int) -> str:
            params: dict[str, Any] = {"skippages": s, "pagesize": size}
            if flt:
                params["filter"] = flt
            return f"{self.base}{path}?{urlencode(params)}"

        pagination: dict[str, Any] = {
            "skipPages": skip,
            "pageSize": size,
            "maxPageSizeAllowed": MAX_PAGE_SIZE,
            "results": total,
            "firstPage": url(0),
        }
        if skip > 0:
            pagination["previousPage"] = url(min(skip - 1, last))
        if skip < last:
            pagination["nextPage"] = url(skip + 1)
        pagination["lastPage"] = url(last)
        return (
            200,
            {"collection": items[skip * size : (skip + 1) * size], "pagination": pagination, "self": url(skip)},
            {},
        )

    def _agreement_year(self, agr: AgreementState, segment: str):
        year = agr.years.get(year_of_path(segment))
        if year is None:
            raise fail(404, f"Accounting year {year_of_path(segment)} not found.", E_NOT_FOUND)
        return year

    def _journal(self, agr: AgreementState, number: str) -> int:
        jn = int(number)
        if jn not in agr.journals:
            raise fail(404, f"Journal {jn} not found.", E_NOT_FOUND)
        return jn

    def _voucher(self, agr: AgreementState, jn: int, voucher_id: str) -> Voucher:
        year_seg, _, num = voucher_id.rpartition("-")
        voucher = None
        if year_seg and num.isdigit():
            voucher = agr.vouchers.get((jn, year_of_path(year_seg), int(num)))
        if voucher is None or voucher.status == "deleted":
            raise fail(404, f"Voucher {voucher_id} not found in journal {jn}.", E_NOT_FOUND)
        return voucher

    # ------------------------------------------------------------------ answers
    def account_answer(self, number: int, acc: dict[str, Any]) -> dict[str, Any]:
        b = self.base
        out: dict[str, Any] = {
            "accountNumber": number,
            "accountType": acc["accountType"],
            "balance": 0,
            "debitCredit": "debit",
            "name": acc["name"],
        }
        if acc["barred"]:
            out["barred"] = True
        if acc["blockDirectEntries"]:
            out["blockDirectEntries"] = True
        if acc["vatCode"]:
            out["vatAccount"] = {"vatCode": acc["vatCode"], "self": f"{b}/vat-accounts/{acc['vatCode']}"}
        out["accountingYears"] = f"{b}/accounts/{number}/accounting-years"
        out["self"] = f"{b}/accounts/{number}"
        return out

    def vat_answer(self, code: str, vat: tuple[str, Decimal, int, int | None]) -> dict[str, Any]:
        b = self.base
        name, rate, account, contra = vat
        out: dict[str, Any] = {
            "vatCode": code,
            "name": name,
            "ratePercentage": plain(rate),
            "account": {"accountNumber": account, "self": f"{b}/accounts/{account}"},
        }
        if contra:
            out["contraAccount"] = {"accountNumber": contra, "self": f"{b}/accounts/{contra}"}
        out["self"] = f"{b}/vat-accounts/{code}"
        return out

    def journal_answer(self, jn: int, j: dict[str, Any]) -> dict[str, Any]:
        b = self.base
        settings: dict[str, Any] = {
            "voucherNumbers": {"minimumVoucherNumber": j["min"], "maximumVoucherNumber": j["max"]}
        }
        if j["restricted"]:
            settings["entryTypeRestrictedTo"] = j["restricted"]
        return {
            "journalNumber": jn,
            "name": j["name"],
            "settings": settings,
            "vouchers": f"{b}/journals/{jn}/vouchers",
            "entries": f"{b}/journals/{jn}/entries",
            "self": f"{b}/journals/{jn}",
        }

    def year_answer(self, y) -> dict[str, Any]:
        b = self.base
        yp = f"{b}/accounting-years/{year_path(y.year)}"
        out: dict[str, Any] = {"year": y.year, "fromDate": y.from_date.isoformat(), "toDate": y.to_date.isoformat()}
        if y.closed:
            out["closed"] = True
        out.update(
            {
                "periods": f"{yp}/periods",
                "entries": f"{yp}/entries",
                "totals": f"{yp}/totals",
                "vouchers": f"{yp}/vouchers",
                "self": yp,
            }
        )
        return out

    def period_answer(self, y, p) -> dict[str, Any]:
        yp = f"{self.base}/accounting-years/{year_path(y.year)}"
        out: dict[str, Any] = {
            "periodNumber": p.number,
            "accountingYear": {"year": y.year, "self": yp},
            "fromDate": p.from_date.isoformat(),
            "toDate": p.to_date.isoformat(),
        }
        if p.barred or y.closed:
            out["closed"] = True
        if p.barred:
            out["barred"] = True
        out["self"] = f"{yp}/periods/{p.number}"
        return out

    def supplier_answer(self, sup: dict[str, Any]) -> dict[str, Any]:
        b = self.base
        out = dict(sup)
        n = sup["supplierNumber"]
        g = (sup.get("supplierGroup") or {}).get("supplierGroupNumber")
        if g is not None:
            out["supplierGroup"] = {**sup["supplierGroup"], "self": f"{b}/supplier-groups/{g}"}
        z = (sup.get("vatZone") or {}).get("vatZoneNumber")
        out["vatZone"] = {**sup.get("vatZone", {}), "self": f"{b}/vat-zones/{z}"}
        t = (sup.get("paymentTerms") or {}).get("paymentTermsNumber")
        out["paymentTerms"] = {**sup.get("paymentTerms", {}), "self": f"{b}/payment-terms/{t}"}
        layout = (sup.get("layout") or {}).get("layoutNumber", SUPPLIER_LAYOUT)
        out["layout"] = {"layoutNumber": layout, "self": f"{b}/layouts/{layout}"}
        if not out.get("barred"):
            out.pop("barred", None)
        out["contacts"] = f"{b}/suppliers/{n}/contacts"
        out["self"] = f"{b}/suppliers/{n}"
        return out

    def entry_answer(self, jn: int, etype: str, year: str, vn: int, jen: int, e: dict[str, Any]) -> dict[str, Any]:
        b = self.base
        yp = f"{b}/accounting-years/{year_path(year)}"
        out: dict[str, Any] = dict(e)
        out["journalEntryNumber"] = jen
        out["entryType"] = etype
        for prop in ("contraAccount", "account"):
            if isinstance(e.get(prop), dict) and "accountNumber" in e[prop]:
                out[prop] = {
                    "accountNumber": e[prop]["accountNumber"],
                    "self": f"{b}/accounts/{e[prop]['accountNumber']}",
                }
        for prop in ("contraVatAccount", "vatAccount"):
            if isinstance(e.get(prop), dict) and "vatCode" in e[prop]:
                out[prop] = {"vatCode": e[prop]["vatCode"], "self": f"{b}/vat-accounts/{e[prop]['vatCode']}"}
        if isinstance(e.get("supplier"), dict) and "supplierNumber" in e["supplier"]:
            n = e["supplier"]["supplierNumber"]
            out["supplier"] = {"supplierNumber": n, "self": f"{b}/suppliers/{n}"}
        if isinstance(e.get("customer"), dict) and "customerNumber" in e["customer"]:
            n = e["customer"]["customerNumber"]
            out["customer"] = {"customerNumber": n, "self": f"{b}/customers/{n}"}
        code = str((e.get("currency") or {}).get("code") or "DKK").upper()
        out["currency"] = {"code": code, "self": f"{b}/currencies/{code}"}
        details = e.get("paymentDetails")
        if isinstance(details, dict) and isinstance(details.get("paymentType"), dict):
            ptype = dict(details["paymentType"])
            number = ptype.get("paymentTypeNumber")
            ptype["self"] = f"{b}/payment-types/{number}" if number else f"{b}/payment-types"
            out["paymentDetails"] = {**details, "paymentType": ptype}
        amount = e.get("amount")
        if isinstance(amount, Decimal | int):
            if code == "DKK":
                out["amountDefaultCurrency"] = amount
            elif e.get("exchangeRate") is not None:
                out["amountDefaultCurrency"] = (Decimal(amount) * Decimal(e["exchangeRate"]) / 100).quantize(
                    Decimal("0.01")
                )
        vself = f"{b}/journals/{jn}/vouchers/{year_path(year)}-{vn}"
        out["voucher"] = {"voucherNumber": vn, "accountingYear": {"year": year, "self": yp}, "self": vself}
        out["accountingYear"] = {"year": year, "self": yp}
        out["journal"] = {"journalNumber": jn, "self": f"{b}/journals/{jn}"}
        out["self"] = f"{b}/journals/{jn}/entries/{jen}"
        return plain(out)

    def voucher_answer(self, agr: AgreementState, v: Voucher) -> dict[str, Any]:
        b = self.base
        vself = f"{b}/journals/{v.journal}/vouchers/{year_path(v.year)}-{v.number}"
        grouped: dict[str, list[dict[str, Any]]] = {}
        plural_of = {t: p for p, t in ENTRY_TYPES.items()}
        for jen in v.entries:
            entry = agr.entries[jen]
            grouped.setdefault(plural_of[entry.entry_type], []).append(entry.answer)
        return {
            "accountingYear": {"year": v.year, "self": f"{b}/accounting-years/{year_path(v.year)}"},
            "journal": {"journalNumber": v.journal, "self": f"{b}/journals/{v.journal}"},
            "entries": grouped,
            "voucherNumber": v.number,
            "attachment": f"{vself}/attachment",
            "self": vself,
        }

    def attachment_answer(self, v: Voucher) -> dict[str, Any]:
        vself = f"{self.base}/journals/{v.journal}/vouchers/{year_path(v.year)}-{v.number}"
        out: dict[str, Any] = {"pages": v.attachment["pages"] if v.attachment else 0}
        if v.attachment:
            out["createdAt"] = v.attachment["createdAt"]
            out["file"] = f"{vself}/attachment/file"
        out["self"] = f"{vself}/attachment"
        return out

    # ------------------------------------------------------------------ master data
    def get_self(self, agr: AgreementState, **_: Any) -> tuple[int, Any, dict]:
        b = self.base
        modules = [{"moduleNumber": 1, "name": world.API_MODULE, "self": f"{b}/modules/1"}]
        if agr.profile.scanning_addon:
            name = self.sandbox.conventions["scanning_module_name"]  # assumed spelling: a control setting
            modules.append({"moduleNumber": 2, "name": name, "self": f"{b}/modules/2"})
        return (
            200,
            {
                "agreementNumber": agr.number,
                "agreementType": {"agreementTypeNumber": 1, "name": "Small"},
                "company": {"name": agr.profile.company_name, "country": "Danmark"},
                "settings": {"baseCurrency": "DKK"},
                "modules": modules,
                "userName": f"sandbox-{agr.index:04d}",
                "self": f"{b}/self",
            },
            {},
        )

    def list_accounts(self, agr: AgreementState, query, path, **_: Any):
        return self.collection([self.account_answer(n, a) for n, a in agr.accounts.items()], query, path)

    def get_account(self, agr: AgreementState, number: str, **_: Any):
        acc = agr.accounts.get(int(number))
        if acc is None:
            raise fail(404, f"Account {number} not found.", E_NOT_FOUND)
        return 200, self.account_answer(int(number), acc), {}

    def list_vat_accounts(self, agr: AgreementState, query, path, **_: Any):
        return self.collection([self.vat_answer(c, v) for c, v in agr.vat_accounts.items()], query, path)

    def get_vat_account(self, agr: AgreementState, code: str, **_: Any):
        if code not in agr.vat_accounts:
            raise fail(404, f"VAT account {code} not found.", E_NOT_FOUND)
        return 200, self.vat_answer(code, agr.vat_accounts[code]), {}

    def _currency(self, code: str, name: str) -> dict[str, Any]:
        return {"code": code, "name": name, "self": f"{self.base}/currencies/{code}"}

    def list_currencies(self, agr: AgreementState, query, path, **_: Any):
        return self.collection([self._currency(c, n) for c, n in agr.currencies.items()], query, path)

    def get_currency(self, agr: AgreementState, code: str, **_: Any):
        code = code.upper()
        if code not in agr.currencies:
            raise fail(404, f"Currency {code} not found.", E_NOT_FOUND)
        return 200, self._currency(code, agr.currencies[code]), {}

    def list_journals(self, agr: AgreementState, query, path, **_: Any):
        return self.collection([self.journal_answer(n, j) for n, j in agr.journals.items()], query, path)

    def get_journal(self, agr: AgreementState, number: str, **_: Any):
        jn = self._journal(agr, number)
        return 200, self.journal_answer(jn, agr.journals[jn]), {}

    def list_years(self, agr: AgreementState, query, path, **_: Any):
        return self.collection([self.year_answer(y) for y in agr.years.values()], query, path)

    def get_year(self, agr: AgreementState, segment: str, **_: Any):
        return 200, self.year_answer(self._agreement_year(agr, segment)), {}

    def list_periods(self, agr: AgreementState, segment: str, query, path, **_: Any):
        y = self._agreement_year(agr, segment)
        return self.collection([self.period_answer(y, p) for p in y.periods], query, path)

    def get_period(self, agr: AgreementState, segment: str, number: str, **_: Any):
        y = self._agreement_year(agr, segment)
        for p in y.periods:
            if p.number == int(number):
                return 200, self.period_answer(y, p), {}
        raise fail(404, f"Period {number} of {y.year} not found.", E_NOT_FOUND)

    def list_suppliers(self, agr: AgreementState, query, path, **_: Any):
        return self.collection([self.supplier_answer(s) for s in agr.suppliers.values()], query, path)

    def get_supplier(self, agr: AgreementState, number: str, **_: Any):
        sup = agr.suppliers.get(int(number))
        if sup is None:
            raise fail(404, f"Supplier {number} not found.", E_NOT_FOUND)
        return 200, self.supplier_answer(sup), {}

    def list_supplier_groups(self, agr: AgreementState, query, path, **_: Any):
        b = self.base
        items = [
            {
                "supplierGroupNumber": n,
                "name": name,
                "account": {"accountNumber": 6800, "self": f"{b}/accounts/6800"},
                "self": f"{b}/supplier-groups/{n}",
            }
            for n, name in agr.supplier_groups.items()
        ]
        return self.collection(items, query, path)

    def list_vat_zones(self, agr: AgreementState, query, path, **_: Any):
        b = self.base
        items = [
            {
                "vatZoneNumber": n,
                "name": name,
                "enabledForCustomer": True,
                "enabledForSupplier": True,
                "self": f"{b}/vat-zones/{n}",
            }
            for n, name in agr.vat_zones.items()
        ]
        return self.collection(items, query, path)

    def list_payment_terms(self, agr: AgreementState, query, path, **_: Any):
        b = self.base
        items = [
            {
                "paymentTermsNumber": n,
                "daysOfCredit": days,
                "name": name,
                "paymentTermsType": "invoiceMonth" if "måned" in name else "net",
                "self": f"{b}/payment-terms/{n}",
            }
            for n, (name, days) in agr.payment_terms.items()
        ]
        return self.collection(items, query, path)

    def payment_type_answer(self, number: int) -> dict[str, Any]:
        return {
            "paymentTypeNumber": number,
            "name": payment_types()[number].name,
            "self": f"{self.base}/payment-types/{number}",
        }

    def list_payment_types(self, agr: AgreementState, query, path, **_: Any):
        """The documented types (README "Payment types") the agreement has (a test may drop some)."""
        items = [self.payment_type_answer(n) for n in sorted(agr.payment_types)]
        return self.collection(items, query, path)

    def get_payment_type(self, agr: AgreementState, number: str, **_: Any):
        if int(number) in agr.payment_types:
            return 200, self.payment_type_answer(int(number)), {}
        raise fail(404, f"Payment type {number} not found.", E_PAYMENT_TYPE)

    # ------------------------------------------------------------------ suppliers
    def _json_body(self, body: bytes) -> Any:
        try:
            return loads(body) if body else None
        except ValueError as exc:
            raise fail(400, f"The body is not valid JSON: {exc}", E_BAD_REQUEST) from None

    def post_supplier(self, agr: AgreementState, body: bytes, **_: Any):
        data = self._json_body(body)
        tree = schema_errors(SUPPLIERS_POST, data)
        if not tree and isinstance(data, dict):
            checks = (
                ("supplierGroup", "supplierGroupNumber", agr.supplier_groups),
                ("vatZone", "vatZoneNumber", agr.vat_zones),
                ("paymentTerms", "paymentTermsNumber", agr.payment_terms),
            )
            for prop, key, known in checks:
                number = (data.get(prop) or {}).get(key)
                if number not in known:
                    add_error(tree, [prop, key], error_item(E_MASTER, f"{prop} {number} not found.", key, number))
            if str(data["currency"]).upper() not in agr.currencies:
                add_error(
                    tree,
                    ["currency"],
                    error_item(E_CURRENCY, f"Currency {data['currency']} not found.", "currency", data["currency"]),
                )
            wanted = data.get("supplierNumber")
            if wanted is not None and wanted in agr.suppliers:
                add_error(
                    tree,
                    ["supplierNumber"],
                    error_item(E_MASTER, f"Supplier {wanted} already exists.", "supplierNumber", wanted),
                )
        if tree:
            raise validation_failed(tree)
        sup = plain(data)
        number = sup.get("supplierNumber")
        if number is None:
            while agr.next_supplier in agr.suppliers:
                agr.next_supplier += 1
            number = agr.next_supplier
            agr.next_supplier += 1
        sup["supplierNumber"] = number
        sup["currency"] = str(sup["currency"]).upper()
        for transient in ("self", "contacts"):
            sup.pop(transient, None)
        agr.suppliers[number] = sup
        return 201, self.supplier_answer(sup), {}

    # ------------------------------------------------------------------ vouchers
    def _account_problem(self, agr: AgreementState, number: Any) -> str | None:
        acc = agr.accounts.get(number) if isinstance(number, int) else None
        if acc is None:
            return f"Account {number} not found."
        if acc["barred"]:
            return f"Account {number} is barred."
        if acc["accountType"] not in BOOKABLE:
            return f"Account {number} is a {acc['accountType']} account and cannot be posted to."
        if acc["blockDirectEntries"]:
            return f"Account {number} blocks direct entries."
        return None

    def _check_voucher(
        self, agr: AgreementState, jn: int, v: dict[str, Any], tree: dict[str, Any], claimed: dict[str, set[int]]
    ) -> tuple[str, int, list[tuple[str, int, dict]]] | None:
        journal = agr.journals[jn]
        entries = v.get("entries") or {}
        items = [(plural, i, e) for plural in ENTRY_TYPES for i, e in enumerate(entries.get(plural) or [])]
        if not items:
            add_error(tree, ["entries"], error_item(E_ENTRIES, "A voucher needs at least one entry.", "entries"))
            return None
        years_seen: set[str] = set()
        for plural, i, e in items:
            etype = ENTRY_TYPES[plural]
            at: list[str | int] = ["entries", plural, i]
            restricted = journal["restricted"]
            if restricted and etype != restricted:
                add_error(
                    tree,
                    [*at, "entryType"],
                    error_item(E_ENTRY_TYPE, f"Journal {jn} only accepts {restricted} entries.", "entryType", etype),
                )
            for prop in ("contraAccount", "account"):
                ref = e.get(prop)
                if isinstance(ref, dict) and "accountNumber" in ref:
                    problem = self._account_problem(agr, ref["accountNumber"])
                    if problem:
                        add_error(tree, [*at, prop], error_item(E_ACCOUNT, problem, prop, ref["accountNumber"]))
            if etype in ("supplierInvoice", "supplierPayment") and not e.get("supplier") and not e.get("contraAccount"):
                add_error(
                    tree,
                    [*at, "supplier"],
                    error_item(E_SUPPLIER, "Either 'supplier' or 'contraAccount' is required.", "supplier"),
                )
            if etype == "financeVoucher" and not e.get("account") and not e.get("contraAccount"):
                add_error(
                    tree,
                    [*at, "account"],
                    error_item(E_ACCOUNT, "Either 'account' or 'contraAccount' is required.", "account"),
                )
            sup = e.get("supplier")
            if isinstance(sup, dict):
                number = sup.get("supplierNumber")
                if number not in agr.suppliers:
                    add_error(
                        tree,
                        [*at, "supplier"],
                        error_item(E_SUPPLIER, f"Supplier {number} not found.", "supplier", number),
                    )
            for prop in ("contraVatAccount", "vatAccount"):
                ref = e.get(prop)
                if isinstance(ref, dict) and "vatCode" in ref and ref["vatCode"] not in agr.vat_accounts:
                    add_error(
                        tree,
                        [*at, prop],
                        error_item(E_VAT, f"VAT code {ref['vatCode']} not found.", prop, ref["vatCode"]),
                    )
            ptype = (e.get("paymentDetails") or {}).get("paymentType")
            if isinstance(ptype, dict):
                for prop, message, value in payment_type_problems(ptype, agr.payment_types):
                    add_error(
                        tree,
                        [*at, "paymentDetails", "paymentType", prop],
                        error_item(E_PAYMENT_TYPE, message, prop, value),
                    )
            code = (e.get("currency") or {}).get("code")
            if code is not None and str(code).upper() not in agr.currencies:
                add_error(
                    tree, [*at, "currency"], error_item(E_CURRENCY, f"Currency {code} not found.", "currency", code)
                )
            day = real_date(e.get("date"))
            if day is not None:
                year = agr.year_of(day)
                if year is None:
                    add_error(
                        tree, [*at, "date"], error_item(E_PERIOD, f"No accounting year holds {day}.", "date", e["date"])
                    )
                else:
                    years_seen.add(year.year)
                    period = agr.period_of(year, day)
                    if year.closed:
                        add_error(
                            tree,
                            [*at, "date"],
                            error_item(E_PERIOD, f"Accounting year {year.year} is closed.", "date", e["date"]),
                        )
                    elif period is not None and period.barred:
                        add_error(
                            tree,
                            [*at, "date"],
                            error_item(
                                E_PERIOD,
                                f"The period {period.from_date}..{period.to_date} is barred.",
                                "date",
                                e["date"],
                            ),
                        )
        given = (v.get("accountingYear") or {}).get("year")
        year_name: str | None = None
        if given is not None:
            year_name = year_of_path(given)
            if year_name not in agr.years:
                add_error(
                    tree,
                    ["accountingYear", "year"],
                    error_item(E_YEAR, f"Accounting year {given} not found.", "year", given),
                )
            elif years_seen and years_seen != {year_name}:
                add_error(
                    tree,
                    ["accountingYear", "year"],
                    error_item(
                        E_YEAR,
                        f"The entry dates lie in accounting year {', '.join(sorted(years_seen))}, not {year_name}.",
                        "year",
                        given,
                    ),
                )
        if len(years_seen) > 1:
            add_error(
                tree,
                ["accountingYear"],
                error_item(E_YEAR, "All entries of one voucher must lie in one accounting year.", "accountingYear"),
            )
        if tree:
            return None
        year_name = year_name or next(iter(years_seen))
        taken = claimed.setdefault(year_name, set())
        wanted = v.get("voucherNumber")
        if wanted is not None:
            number = int(wanted)
            if number != wanted or not journal["min"] <= number <= journal["max"]:
                add_error(
                    tree,
                    ["voucherNumber"],
                    error_item(
                        E_VOUCHER_NUMBER,
                        f"Voucher number must lie in {journal['min']}..{journal['max']} for journal {jn}.",
                        "voucherNumber",
                        wanted,
                    ),
                )
            elif (jn, year_name, number) in agr.vouchers or number in taken:
                add_error(
                    tree,
                    ["voucherNumber"],
                    error_item(
                        E_VOUCHER_NUMBER,
                        f"Voucher number {number} is already used in {year_name}.",
                        "voucherNumber",
                        wanted,
                    ),
                )
        else:
            found = agr.take_voucher_number(jn, year_name, taken)
            if found is None:
                add_error(
                    tree,
                    ["voucherNumber"],
                    error_item(
                        E_VOUCHER_NUMBER,
                        f"Journal {jn} has no free voucher number left in {year_name}.",
                        "voucherNumber",
                    ),
                )
            number = found or 0
        if tree:
            return None
        taken.add(number)
        return year_name, number, items

    def post_vouchers(self, agr: AgreementState, number: str, body: bytes, **_: Any):
        jn = self._journal(agr, number)
        data = self._json_body(body)
        many = isinstance(data, list)
        vouchers = data if many else [data]
        if many and not vouchers:
            raise fail(400, "The array of vouchers is empty.", E_BAD_REQUEST)
        trees: list[dict[str, Any]] = []
        plans: list[Any] = []
        claimed: dict[str, set[int]] = {}
        for voucher in vouchers:
            tree = schema_errors(VOUCHERS_POST, voucher)
            plans.append(None if tree else self._check_voucher(agr, jn, voucher, tree, claimed))
            trees.append(tree)
        if any(trees):
            if many:
                raise validation_failed([{"arrayIndex": i, **t} for i, t in enumerate(trees) if t])
            raise validation_failed(trees[0])
        now = self.sandbox.now()
        answers = []
        for voucher, (year, vn, items) in zip(vouchers, plans, strict=True):
            numbers: list[int] = []
            for plural, _i, e in items:
                jen = agr.next_entry
                agr.next_entry += 1
                etype = ENTRY_TYPES[plural]
                entry = Entry(jen, jn, etype, year, vn, self.entry_answer(jn, etype, year, vn, jen, e))
                agr.entries[jen] = entry
                agr.drafts[jn][jen] = entry
                numbers.append(jen)
            v = Voucher(jn, year, vn, plain(voucher), numbers, now)
            agr.vouchers[(jn, year, vn)] = v
            if agr.next_voucher.get((jn, year), agr.journals[jn]["min"]) == vn:
                agr.next_voucher[(jn, year)] = vn + 1
            answers.append(self.voucher_answer(agr, v))
        return 201, answers if many else answers[0], {}

    def get_voucher(self, agr: AgreementState, number: str, voucher_id: str, **_: Any):
        jn = self._journal(agr, number)
        return 200, self.voucher_answer(agr, self._voucher(agr, jn, voucher_id)), {}

    # ------------------------------------------------------------------ entries
    def list_entries(self, agr: AgreementState, number: str, query, path, **_: Any):
        jn = self._journal(agr, number)
        return self.collection([e.answer for e in agr.drafts[jn].values()], query, path)

    def list_booked_entries(self, agr: AgreementState, segment: str, query, path, **_: Any):
        """The booked entries of an accounting year (*assumed* shape: ../shared has no schema for it)."""
        year = self._agreement_year(agr, segment)
        return self.collection(agr.booked.get(year.year, []), query, path)

    def booked_entry_answer(self, agr: AgreementState, entry: Entry) -> dict[str, Any]:
        """A draft entry as the accounting year lists it once booked.

        *Assumed* shape: ../shared documents only that booked entries leave the journal for the
        accounting year; the fields follow e-conomic's entries of an accounting year (entryNumber,
        entryType, text, voucherNumber, amount, account, date, ...), not a schema in ../shared.
        Each journal entry is one booked entry, on its contra account (the supplier is the other side).
        """
        b = self.base
        draft = entry.answer
        number = agr.next_booked
        agr.next_booked += 1
        yp = f"{b}/accounting-years/{year_path(entry.year)}"
        out: dict[str, Any] = {
            "entryNumber": number,
            "entryType": entry.entry_type,
            "voucherNumber": entry.voucher_number,
            "date": draft.get("date"),
            "amount": draft.get("amount"),
            "currency": draft.get("currency", {}).get("code"),
            "text": draft.get("text", ""),
            "accountingYear": {"year": entry.year, "self": yp},
            "self": f"{yp}/entries/{number}",
        }
        if "amountDefaultCurrency" in draft:
            out["amountInBaseCurrency"] = draft["amountDefaultCurrency"]
        account = draft.get("contraAccount") or draft.get("account")
        if isinstance(account, dict):
            out["account"] = account
        for prop in ("supplier", "supplierInvoiceNumber", "dueDate"):
            if prop in draft:
                out[prop] = draft[prop]
        return out

    def _draft(self, agr: AgreementState, number: str, entry_number: str) -> Entry:
        jn = self._journal(agr, number)
        entry = agr.entries.get(int(entry_number))
        if entry is None or entry.journal != jn or entry.status != "draft":
            status = int(self.sandbox.conventions["gone_entry_status"])  # assumed: 404
            raise fail(status, f"Entry {entry_number} not found in journal {jn}.", E_NOT_FOUND)
        return entry

    def get_entry(self, agr: AgreementState, number: str, entry_number: str, **_: Any):
        return 200, self._draft(agr, number, entry_number).answer, {}

    def delete_entry(self, agr: AgreementState, number: str, entry_number: str, **_: Any):
        entry = self._draft(agr, number, entry_number)
        entry.status = "deleted"
        agr.drafts[entry.journal].pop(entry.number, None)
        voucher = agr.vouchers.get((entry.journal, entry.year, entry.voucher_number))
        if voucher is not None:
            voucher.entries.remove(entry.number)
            if not voucher.entries:
                voucher.status = "deleted"
        return 204, None, {}

    # ------------------------------------------------------------------ attachments
    def _scanning(self, agr: AgreementState) -> None:
        if not agr.profile.scanning_addon:
            raise fail(
                403,
                "The agreement must be authorized to use the Scanning add-on module "
                "(Indscanning) to work with attachments.",
                E_SCANNING,
            )

    def get_attachment(self, agr: AgreementState, number: str, voucher_id: str, **_: Any):
        self._scanning(agr)
        jn = self._journal(agr, number)
        return 200, self.attachment_answer(self._voucher(agr, jn, voucher_id)), {}

    def _upload(self, body: bytes) -> tuple[str, str, bytes]:
        if len(body) > MAX_ATTACHMENT_BYTES:
            status = int(self.sandbox.conventions["too_large_status"])  # assumed: 413
            raise fail(status, "The file is larger than 9 MB.", E_ATTACHMENT)
        parts = parse_multipart(self.headers.get("Content-Type") or "", body)
        files = [(h, d) for h, d in parts if _filename(h)] or parts
        if len(files) != 1:
            raise fail(400, "Send exactly one file part.", E_ATTACHMENT)
        headers, data = files[0]
        filename = _filename(headers)
        ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        kind = ext if ext in ATTACHMENT_TYPES else next((k for k, t in ATTACHMENT_TYPES.items() if t == ctype), None)
        if kind is None:
            raise fail(400, "Only pdf, jpg, jpeg, png and gif files can be attached.", E_ATTACHMENT)
        if not data:
            raise fail(400, "The file is empty.", E_ATTACHMENT)
        return filename or f"attachment.{kind}", kind, data

    def post_attachment(self, agr: AgreementState, number: str, voucher_id: str, body: bytes, **_: Any):
        self._scanning(agr)
        jn = self._journal(agr, number)
        voucher = self._voucher(agr, jn, voucher_id)
        filename, kind, data = self._upload(body)
        if voucher.attachment is not None:
            raise fail(
                400, "Voucher already has attachment", E_ATTACHMENT, "Use PATCH to add pages to an existing attachment."
            )
        pages = count_pages(data, kind)
        voucher.attachment = {
            "pages": pages,
            "bytes": len(data),
            "createdAt": date.today().isoformat(),
            "files": [{"filename": filename, "type": kind, "bytes": len(data), "pages": pages}],
        }
        return 201, self.attachment_answer(voucher), {}

    def patch_attachment(self, agr: AgreementState, number: str, voucher_id: str, body: bytes, **_: Any):
        self._scanning(agr)
        jn = self._journal(agr, number)
        voucher = self._voucher(agr, jn, voucher_id)
        filename, kind, data = self._upload(body)
        if voucher.attachment is None:
            raise fail(400, "Voucher has no attachment to add pages to; POST one first.", E_ATTACHMENT)
        pages = count_pages(data, kind)
        voucher.attachment["pages"] += pages
        voucher.attachment["bytes"] += len(data)
        voucher.attachment["files"].append({"filename": filename, "type": kind, "bytes": len(data), "pages": pages})
        return 200, self.attachment_answer(voucher), {}

    # ------------------------------------------------------------------ control
    def _control_agreement(self, data: Any) -> AgreementState:
        number = data.get("agreement") if isinstance(data, dict) else None
        index = self.sandbox.index_of_number(number)
        if index is None:
            raise Reply(404, {"error": f"unknown agreement {number!r}"})
        return self.sandbox.agreement(index)

    def control(self, method: str, name: str, data: Any) -> tuple[int, Any]:
        sb = self.sandbox
        if not isinstance(data, dict):
            data = {}
        if name == "state" and method == "GET" and "agreement" not in data:
            query = parse_qs(urlsplit(self.path).query)
            if "agreement" in query:
                data = {"agreement": query["agreement"][-1]}
        if name == "reset":
            sb.reset()
            self.server.faults.clear()
            return 200, {"reset": True}
        if name == "clock":
            if "offset_seconds" in data:
                sb.clock_offset = float(data["offset_seconds"])
            if "advance_seconds" in data:
                sb.clock_offset += float(data["advance_seconds"])
            return 200, {"offset_seconds": sb.clock_offset, "now": sb.now()}
        if name == "conventions":
            return 200, self._conventions(method, data)
        if name == "rate-limit":  # {"rate": N} requests/second per agreement (token bucket), {} for none
            if method == "POST":
                sb.set_rate_limit(float(data["rate"]) if data.get("rate") else None)
            return 200, {"rate": sb.rate_limit}
        if name == "approval":
            if method == "POST":
                sb.approval_index = self._control_agreement(data).index
            return 200, {
                "agreement": world.agreement_number(sb.approval_index),
                "app": sb.app_name,
                "appPublicToken": sb.app_public_token,
                "grants": [
                    {"agreement": world.agreement_number(i), "revoked": t in sb.revoked_tokens}
                    for t, i in sb.issued.items()
                ],
            }
        if name in ("revoke", "unrevoke") and "token" in data:  # one grant (Settings → Apps → remove)
            token = str(data["token"])
            if token not in sb.issued:
                raise Reply(404, {"error": "no such grant token"})
            if name == "revoke":
                sb.revoked_tokens.add(token)
            else:
                sb.revoked_tokens.discard(token)
            return 200, {"agreement": world.agreement_number(sb.issued[token]), "revoked": token in sb.revoked_tokens}
        if name in ("revoke", "unrevoke"):
            agr = self._control_agreement(data)
            if name == "revoke":
                sb.revoked.add(agr.number)
            else:
                sb.revoked.discard(agr.number)
            return 200, {"agreement": agr.number, "revoked": agr.number in sb.revoked}
        agr = self._control_agreement(data)
        for key in ("accountNumber", "period", "journal"):
            if isinstance(data.get(key), str) and data[key].isdigit():
                data[key] = int(data[key])
        with agr.lock:
            if name == "state":
                return 200, self._state_dump(agr)
            if name == "accounting-years":
                year = agr.years.get(year_of_path(str(data.get("year"))))
                if year is None:
                    raise Reply(404, {"error": f"unknown accounting year {data.get('year')!r}"})
                year.closed = bool(data.get("closed", year.closed))
                return 200, self.year_answer(year)
            if name == "periods":
                year = agr.years.get(year_of_path(str(data.get("year"))))
                period = next((p for p in (year.periods if year else []) if p.number == data.get("period")), None)
                if year is None or period is None:
                    raise Reply(404, {"error": f"unknown period {data.get('year')!r}/{data.get('period')!r}"})
                period.barred = bool(data.get("barred", True))
                return 200, self.period_answer(year, period)
            if name == "accounts":
                number = data.get("accountNumber")
                acc = agr.accounts.get(number)
                if acc is None:
                    raise Reply(404, {"error": f"unknown account {number!r}"})
                for key in ("barred", "blockDirectEntries"):
                    if key in data:
                        acc[key] = bool(data[key])
                if "accountType" in data:
                    acc["accountType"] = str(data["accountType"])
                return 200, self.account_answer(number, acc)
            if name == "payment-types":
                if "numbers" in data:
                    agr.payment_types = {int(n) for n in data["numbers"]} & set(payment_types())
                agr.payment_types -= {int(n) for n in data.get("drop", [])}
                agr.payment_types |= {int(n) for n in data.get("add", []) if int(n) in payment_types()}
                return 200, {"agreement": agr.number, "paymentTypes": sorted(agr.payment_types)}
            if name == "book":
                jn = data.get("journal")
                if jn not in agr.drafts:
                    raise Reply(404, {"error": f"unknown journal {jn!r}"})
                drafts = agr.drafts[jn]
                vouchers: set[tuple[int, str, int]] = set()
                for entry in drafts.values():  # the accountant books the journal: drafts move to the year
                    entry.status = "booked"
                    vouchers.add((entry.journal, entry.year, entry.voucher_number))
                    agr.booked.setdefault(entry.year, []).append(self.booked_entry_answer(agr, entry))
                count = len(drafts)
                drafts.clear()
                for key in vouchers:
                    if key in agr.vouchers:
                        agr.vouchers[key].status = "booked"
                return 200, {
                    "agreement": agr.number,
                    "journal": jn,
                    "booked_entries": count,
                    "booked_vouchers": len(vouchers),
                }
        raise Reply(404, {"error": f"no control endpoint {name}"})

    def _conventions(self, method: str, data: dict[str, Any]) -> dict[str, Any]:
        """The assumed conventions (state.DEFAULT_CONVENTIONS): ``GET`` reads them, ``POST`` changes the keys
        given, ``DELETE`` restores the defaults. VAT zones apply to every agreement at once."""
        sb = self.sandbox
        if method == "DELETE":
            sb.conventions = dict(DEFAULT_CONVENTIONS)
        elif method == "POST":
            unknown = set(data) - set(DEFAULT_CONVENTIONS)
            if unknown:
                raise Reply(400, {"error": f"unknown conventions {sorted(unknown)}"})
            for key in ("too_large_status", "gone_entry_status"):
                if key in data and not 400 <= int(data[key]) <= 499:
                    raise Reply(400, {"error": f"{key} must be a 4xx status"})
            if "credit_sign" in data and data["credit_sign"] not in ("-", "+"):
                raise Reply(400, {"error": "credit_sign must be '-' or '+'"})
            if "vat_zones" in data:
                data["vat_zones"] = {int(n): str(name) for n, name in dict(data["vat_zones"]).items()}
            sb.conventions.update(data)
        if method != "GET":
            sb.set_vat_zones(sb.conventions["vat_zones"])
        return {**sb.conventions, "vat_zones": {str(n): name for n, name in sb.conventions["vat_zones"].items()}}

    def _side(self, amount: Any) -> str | None:
        """Debit or credit, read with the sandbox's sign convention (a minus is a credit by default)."""
        if not isinstance(amount, Decimal | int | float) or amount == 0:
            return None
        negative_is_credit = self.sandbox.conventions["credit_sign"] == "-"
        return "credit" if (amount < 0) == negative_is_credit else "debit"

    def _state_dump(self, agr: AgreementState) -> dict[str, Any]:
        vouchers = []
        for v in agr.vouchers.values():
            vouchers.append(
                {
                    "journal": v.journal,
                    "accountingYear": v.year,
                    "voucherNumber": v.number,
                    "status": v.status,
                    "payload": v.payload,
                    "entries": [
                        {
                            **agr.entries[n].answer,
                            "status": agr.entries[n].status,
                            "side": self._side(agr.entries[n].answer.get("amount")),
                        }
                        for n in v.entries
                    ],
                    "attachment": v.attachment,
                }
            )
        return {
            "agreement": agr.number,
            "revoked": agr.number in self.sandbox.revoked,
            "vouchers": vouchers,
            "entries": {
                "draft": sum(len(d) for d in agr.drafts.values()),
                "booked": sum(1 for e in agr.entries.values() if e.status == "booked"),
                "deleted": sum(1 for e in agr.entries.values() if e.status == "deleted"),
            },
            "suppliers": [self.supplier_answer(s) for s in agr.suppliers.values()],
            "accountingYears": [
                {**self.year_answer(y), "barredPeriods": [p.number for p in y.periods if p.barred]}
                for y in agr.years.values()
            ],
            "counters": agr.counters,
            "idempotencyKeys": len(agr.idempotency),
        }
