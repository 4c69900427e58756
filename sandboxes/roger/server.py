"""The Roger sandbox: the openapi contract in ``/work/shared/roger-api/openapi.yaml``, in memory.

API (all ``GET``, under ``/v1``, ``Authorization: Bearer <world.roger_token(i, prefix)>``):

- ``/companies/{id}``, ``/companies/{id}/bills``, ``/companies/{id}/bills/{bill_id}``,
  ``/companies/{id}/bills/{bill_id}/document`` (PDF; 404 when ``has_document`` is false),
  ``/companies/{id}/categories``, ``/companies/{id}/payment-methods`` (archived included).
- No or unknown token, or a revoked company's token: 401 ``unauthorized``; another company's
  token: 403 ``forbidden``. Errors are ``{"error": {"code", "message", "request_id"}}``.
- ``/bills``: ``updated_since`` (inclusive), ``updated_before`` (exclusive), ``status``
  (repeatable), ``limit`` (1..500, default 100), ``cursor`` (opaque: base64url of
  ``[updated_at, id]`` of the last bill served). Ordered by (updated_at, id); ``next_cursor``
  is null on the last page. Bad limit, status, date or cursor: 400 ``invalid_parameter``.

Faults (``POST /_control/faults``, see ``sandboxes.faults``): ``status`` (429 with
``Retry-After``), ``slow``, ``reset`` and ``lost_answer`` are acted out by the base handler;
``malformed`` (one bill of the next non-empty page loses ``amount``, or gets ``bill_field`` set to
``value`` or to the JSON text ``raw``), ``page_fail`` (the next page requested *with a cursor*
answers 500 ``internal_error``), ``repeat_cursor`` (a page requested with a cursor answers that
cursor again as ``next_cursor``) and ``endless`` (every page answers a fresh ``next_cursor``, past
the last bill too) are acted out here, in the bills listing, so the base never consumes them.

Control endpoints (JSON in, JSON out; ``company_id`` is ``"cmp_0001"`` or the index ``1``):

- ``POST /_control/bills/update`` ``{"company_id", "bill_id", "changes": {<Bill fields>},
  "updated_at": optional ISO-8601, "problem": optional str|null}`` → 200, the new bill.
  ``changes`` may set any Bill field but ``id``/``company_id``/``version``/``updated_at``
  (``vendor`` is merged, the rest replaced; ``"deleted": true`` makes a tombstone). The
  version grows by one; ``updated_at`` defaults to the company's latest ``updated_at`` + 1 s.
  Changing the field a bill's problem lives in clears the problem unless ``problem`` is given.
  Unknown company or bill: 404; unknown field: 400.
- ``POST /_control/bills/add`` ``{"company_id", "bill": {<partial Bill>}, "problem": optional}``
  → 201, the full bill: a freshly generated bill (new id unless given; 409 if it exists)
  with the given fields laid over it, version 1, ``updated_at`` (and ``created_at``) defaulting
  to the company's latest ``updated_at`` + 1 s.
- ``POST /_control/bills/document`` ``{"company_id", "bill_id", "bytes": N}`` → 200: the bill's PDF is
  served padded to ``N`` bytes (a scan too large for e-conomic's 9 MB); ``"bytes": null`` undoes it.
- ``POST /_control/names`` ``{"company_id", "categories": {id: name}, "payment_methods": {id: name}}``
  → 200, the names now served: renames a company's categories and payment methods (a category id
  no bill or list knows is added). Unknown payment method: 404; a name that is not a string: 400.
- ``POST /_control/revoke`` / ``POST /_control/unrevoke`` ``{"company_id"}`` → 200
  ``{"revoked": [company ids]}``; a revoked company's token answers 401.
- ``GET /_control/problems?company_id=cmp_0001`` → ``{bill_id: problem_kind}``
  (kinds: ``sandboxes.roger.data.PROBLEM_KINDS``); without ``company_id``:
  ``{company_id: {bill_id: problem_kind}}`` for every company.
- ``GET /_control/bills?company_id=cmp_0001`` → ``{"data": [every bill, tombstones included,
  in (updated_at, id) order]}``.
- ``GET /_control/stats`` → ``{"companies": {company_id: {kind: count}}}`` with kinds
  ``company``, ``bills_pages``, ``bill``, ``documents``, ``master_data``, ``rejected``
  (401/403); ``DELETE /_control/stats`` resets them.
- ``GET /_control/config`` → the generation parameters.
- ``GET|POST|DELETE /_control/latency``, ``GET|DELETE /_control/timing``: answer latency per call and the
  per-company timing of the answers (``sandboxes.httpbase.Latency``; ``--latency roger`` at start).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import copy
import itertools
import json
import re
import threading
from collections import Counter
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sandboxes import world
from sandboxes.httpbase import JsonHandler, Reply
from sandboxes.roger import data

ROUTE_KINDS = frozenset({"malformed", "page_fail", "repeat_cursor", "endless"})

_PROBLEM_FIELDS = {
    "category_null": {"category_id"},
    "category_archived": {"category_id"},
    "category_unmapped": {"category_id"},
    "payment_method_unmapped": {"payment", "status"},
    "closed_year": {"issue_date"},
    "currency_unknown": {"currency"},
    "amount_3_decimals": {"amount"},
}
_BILL_FIELDS = frozenset(
    {
        "status",
        "deleted",
        "document_type",
        "vendor",
        "invoice_number",
        "issue_date",
        "due_date",
        "currency",
        "amount",
        "vat_amount",
        "category_id",
        "description",
        "payment_code",
        "payment",
        "has_document",
        "created_at",
    }
)
_COMPANY_PATH = re.compile(r"^/v1/companies/(?P<cid>[^/]+)(?P<rest>/.*)?$")


# --------------------------------------------------------------------------- state


class RogerState:
    """Every company's bills, generated on first access, with an index sorted by (updated_at, id)."""

    def __init__(
        self,
        companies: int = 3,
        bills: int = 40,
        seed: int | str = 7,
        token_prefix: str = "sbx-",
        end: str = "2026-11-26T00:00:00Z",
        days: float = 7,
        problem_rate: float = 0.05,
        paid_rate: float = 0.4,
        history_bills: int = 0,
        history_days: float = 7,
        night: str = "",
    ) -> None:
        self.companies = companies
        self.night = night  # "" = ``bills`` for every company, else the skewed night's ranges
        self.history_bills = history_bills  # per company, updated in [end - days - history_days, end - days)
        self.history_days = history_days
        self.bills_per_company = bills
        self.seed = seed
        self.token_prefix = token_prefix
        self.end = data.format_time(data.parse_time(end))
        self.days = days
        self.problem_rate = problem_rate
        self.paid_rate = paid_rate
        self.lock = threading.RLock()
        self.tokens = {world.roger_token(i, token_prefix): i for i in range(1, companies + 1)}
        self.revoked: set[int] = set()
        self.document_bytes: dict[tuple[int, str], int] = {}  # (company, bill) -> padded PDF size
        self.names: dict[tuple[int, str], dict[str, str]] = {}  # (company, "categories"|"payment_methods") -> id: name
        self.stats: dict[str, Counter[str]] = {}
        self._bills: dict[int, dict[str, dict[str, Any]]] = {}
        self._index: dict[int, list[tuple[datetime, str]]] = {}
        self._next_n: dict[int, int] = {}
        self._request_ids = itertools.count(1)

    def config(self) -> dict[str, Any]:
        return {
            "companies": self.companies,
            "bills": self.bills_per_company,
            "seed": self.seed,
            "token_prefix": self.token_prefix,
            "end": self.end,
            "days": self.days,
            "problem_rate": self.problem_rate,
            "paid_rate": self.paid_rate,
            "history_bills": self.history_bills,
            "history_days": self.history_days,
            "night": self.night,
        }

    def bills_of(self, i: int) -> int:
        """How many bills company ``i`` has in the window."""
        if not self.night:
            return self.bills_per_company
        return data.night_bills(self.night, self.seed, i)

    def request_id(self) -> str:
        return f"req_{next(self._request_ids):08d}"

    def count(self, company: str, kind: str) -> None:
        with self.lock:
            self.stats.setdefault(company, Counter())[kind] += 1

    def exists(self, i: int) -> bool:
        return 1 <= i <= self.companies

    # ---- bills
    def _company(self, i: int) -> dict[str, dict[str, Any]]:
        """Company ``i``'s bills by id (generated now if not yet); call with the lock held."""
        if i not in self._bills:
            count = self.bills_of(i)
            bills = data.generate_company(i, count, self.seed, self.end, self.days, self.problem_rate, self.paid_rate)
            if self.history_bills:  # earlier nights' bills (what an agreement that has been running has seen)
                history_end = data.parse_time(self.end) - timedelta(days=self.days)
                bills += data.generate_company(
                    i,
                    self.history_bills,
                    f"{self.seed}:history",
                    history_end,
                    self.history_days,
                    self.problem_rate,
                    self.paid_rate,
                )
            self._bills[i] = {b["id"]: b for b in bills}
            self._index[i] = sorted((data.parse_time(b["updated_at"]), b["id"]) for b in bills)
            self._next_n[i] = count
        return self._bills[i]

    def page(
        self,
        i: int,
        since: datetime | None,
        before: datetime | None,
        statuses: set[str] | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> tuple[list[dict[str, Any]], bool]:
        """Up to ``limit`` bills in the window after ``after``, and whether more follow."""
        with self.lock:
            bills = self._company(i)
            index = self._index[i]
            start = 0 if since is None else bisect.bisect_left(index, (since, ""))
            if after is not None:
                start = max(start, bisect.bisect_right(index, after))
            out: list[dict[str, Any]] = []
            for pos in range(start, len(index)):
                ts, bid = index[pos]
                if before is not None and ts >= before:
                    break
                bill = bills[bid]
                if statuses and bill["status"] not in statuses:
                    continue
                if len(out) == limit:
                    return out, True
                out.append(data.public(bill))
            return out, False

    def bill(self, i: int, bill_id: str) -> dict[str, Any] | None:
        with self.lock:
            found = self._company(i).get(bill_id)
            return None if found is None else copy.deepcopy(found)

    def all_bills(self, i: int) -> list[dict[str, Any]]:
        with self.lock:
            bills = self._company(i)
            return [data.public(bills[bid]) for _ts, bid in self._index[i]]

    def problems(self, i: int) -> dict[str, str]:
        with self.lock:
            bills = self._company(i)
            return {bid: bills[bid]["_problem"] for _ts, bid in self._index[i] if bills[bid].get("_problem")}

    def categories(self, i: int) -> list[dict[str, Any]]:
        out = [{"id": cid, "name": name, "archived": archived} for cid, name, archived in world.CATEGORIES]
        known = {c["id"] for c in out}
        with self.lock:
            extra = sorted(
                {
                    b["category_id"]
                    for b in self._company(i).values()
                    if b.get("category_id") and b["category_id"] not in known
                }
            )
        for cid in extra:
            out.append({"id": cid, "name": f"Ny kategori ({cid.removeprefix('cat_')})", "archived": False})
        renamed = dict(self.names.get((i, "categories"), {}))
        for item in out:
            item["name"] = renamed.pop(item["id"], item["name"])
        out.extend({"id": cid, "name": name, "archived": False} for cid, name in sorted(renamed.items()))
        return out

    def payment_methods(self, i: int) -> list[dict[str, Any]]:
        renamed = self.names.get((i, "payment_methods"), {})
        return [
            {
                "id": pid,
                "name": renamed.get(pid, name),
                "kind": kind,
                "masked_number": masked,
                "currency": "DKK",
                "archived": archived,
            }
            for pid, name, kind, masked, archived in world.PAYMENT_METHODS
        ]

    def _latest(self, i: int) -> datetime:
        index = self._index[i]
        return index[-1][0] if index else data.parse_time(self.end)

    def _store(self, i: int, bill: dict[str, Any], old: dict[str, Any] | None) -> None:
        index = self._index[i]
        if old is not None:
            key = (data.parse_time(old["updated_at"]), old["id"])
            pos = bisect.bisect_left(index, key)
            if pos < len(index) and index[pos] == key:
                del index[pos]
        bisect.insort(index, (data.parse_time(bill["updated_at"]), bill["id"]))
        self._bills[i][bill["id"]] = bill

    def update(
        self, i: int, bill_id: str, changes: dict[str, Any], updated_at: str | None, problem: Any = ...
    ) -> dict[str, Any]:
        unknown = set(changes) - _BILL_FIELDS
        if unknown:
            raise _error(400, "invalid_parameter", f"cannot change {sorted(unknown)}", self)
        with self.lock:
            old = self._company(i).get(bill_id)
            if old is None:
                raise _error(404, "not_found", f"no bill {bill_id}", self)
            new = copy.deepcopy(old)
            for key, value in changes.items():
                if key == "vendor" and isinstance(value, dict):
                    new["vendor"] = {**new["vendor"], **copy.deepcopy(value)}
                else:
                    new[key] = copy.deepcopy(value)
            when = data.parse_time(updated_at) if updated_at else self._latest(i) + timedelta(seconds=1)
            new["updated_at"] = data.format_time(when)
            new["version"] = old["version"] + 1
            if problem is not ...:
                _set_problem(new, problem)
            elif old.get("_problem") and _PROBLEM_FIELDS.get(old["_problem"], set()) & set(changes):
                new.pop("_problem", None)
            self._store(i, new, old)
            return data.public(new)

    def add(self, i: int, partial: dict[str, Any], problem: Any = None) -> dict[str, Any]:
        with self.lock:
            bills = self._company(i)
            if partial.get("id") in bills:
                raise _error(409, "conflict", f"bill {partial['id']} exists", self)
            n = self._next_n[i]
            self._next_n[i] = n + 1
            when = (
                data.parse_time(partial["updated_at"])
                if partial.get("updated_at")
                else self._latest(i) + timedelta(seconds=1)
            )
            overrides = {k: v for k, v in partial.items() if k != "updated_at"}
            overrides.setdefault("created_at", data.format_time(when))
            bill = data.new_bill(self.seed, i, n, when, self.paid_rate, overrides)
            bill["company_id"] = world.company_id(i)
            bill["updated_at"] = data.format_time(when)
            _set_problem(bill, problem)
            self._store(i, bill, None)
            return data.public(bill)


def _set_problem(bill: dict[str, Any], problem: Any) -> None:
    if problem:
        bill["_problem"] = str(problem)
    else:
        bill.pop("_problem", None)


def _error(status: int, code: str, message: str, state: RogerState, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"error": {"code": code, "message": message, "request_id": state.request_id()}}, headers)


# --------------------------------------------------------------------------- cursor


def encode_cursor(bill: dict[str, Any]) -> str:
    raw = json.dumps([bill["updated_at"], bill["id"]], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (updated_at, id) a cursor stands for; ``ValueError`` when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ts, bid = json.loads(raw)
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError, TypeError, ValueError) as exc:
        raise ValueError(f"invalid cursor {cursor!r}") from exc
    if not isinstance(ts, str) or not isinstance(bid, str):
        raise ValueError(f"invalid cursor {cursor!r}")
    return data.parse_time(ts), bid


# --------------------------------------------------------------------------- faults


# --------------------------------------------------------------------------- handler


class RogerHandler(JsonHandler):
    kinds_before = JsonHandler.kinds_before - ROUTE_KINDS

    @property
    def state(self) -> RogerState:
        return self.server.state

    def scope_of(self, path: str) -> str:
        match = _COMPANY_PATH.match(path)
        return match["cid"] if match else "*"

    def fault_body(self, status: int) -> Any:
        code = {429: "rate_limited", 500: "internal_error", 502: "bad_gateway", 503: "unavailable", 504: "timeout"}.get(
            status, "error"
        )
        return {"error": {"code": code, "message": f"Injected fault {status}", "request_id": self.state.request_id()}}

    # ---- API
    def _authorize(self, cid: str) -> int:
        header = self.headers.get("Authorization") or ""
        scheme, _, token = header.partition(" ")
        index = self.state.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if index is None or index in self.state.revoked:
            self.state.count(cid, "rejected")
            raise _error(
                401,
                "unauthorized",
                "missing, unknown or revoked token",
                self.state,
                {"WWW-Authenticate": 'Bearer realm="roger"'},
            )
        if world.company_id(index) != cid:
            self.state.count(cid, "rejected")
            raise _error(403, "forbidden", f"the token does not give access to company {cid}", self.state)
        return index

    def route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, Any, dict]:
        match = _COMPANY_PATH.match(path)
        if match is None:
            raise _error(404, "not_found", f"no such path {path}", self.state)
        if method != "GET":
            raise _error(405, "method_not_allowed", f"{method} is not allowed here", self.state)
        cid, rest = match["cid"], match["rest"] or ""
        i = self._authorize(cid)
        state = self.state
        if rest == "":
            state.count(cid, "company")
            prof = world.profile(i)
            return (
                200,
                {"id": cid, "name": prof.company_name, "cvr": f"{40000000 + i * 1013:08d}", "base_currency": "DKK"},
                {},
            )
        if rest == "/bills":
            state.count(cid, "bills_pages")
            return self._bills(i, cid, path, query)
        if rest in ("/categories", "/payment-methods"):
            state.count(cid, "master_data")
            if rest == "/categories":
                return 200, {"data": state.categories(i)}, {}
            return 200, {"data": state.payment_methods(i)}, {}
        bill_match = re.fullmatch(r"/bills/(?P<bid>[^/]+)(?P<doc>/document)?", rest)
        if bill_match is None:
            raise _error(404, "not_found", f"no such path {path}", state)
        bill = state.bill(i, unquote(bill_match["bid"]))  # a path segment is percent-decoded, as any server does
        if bill_match["doc"]:
            state.count(cid, "documents")
            if bill is None or not bill.get("has_document"):
                raise _error(404, "not_found", f"no document for bill {bill_match['bid']}", state)
            pdf = data.document_pdf(bill)
            size = state.document_bytes.get((i, bill["id"]))
            if size and size > len(pdf):
                pdf += b"%" + b"0" * (size - len(pdf) - 2) + b"\n"  # a PDF comment after %%EOF
            return 200, pdf, {"Content-Type": "application/pdf"}
        state.count(cid, "bill")
        if bill is None:
            raise _error(404, "not_found", f"no bill {bill_match['bid']}", state)
        return 200, data.public(bill), {}

    def _bills(self, i: int, cid: str, path: str, query: dict[str, list[str]]) -> tuple[int, Any, dict]:
        state = self.state

        def bad(message: str) -> Reply:
            return _error(400, "invalid_parameter", message, state)

        def one(name: str) -> str | None:
            values = query.get(name)
            return values[-1] if values else None

        limit_text = one("limit")
        if limit_text is None or limit_text == "":
            limit = 100
        else:
            try:
                limit = int(limit_text)
            except ValueError:
                raise bad(f"limit must be an integer, not {limit_text!r}") from None
            if not 1 <= limit <= 500:
                raise bad(f"limit must be 1..500, not {limit}")
        window: dict[str, datetime | None] = {}
        for name in ("updated_since", "updated_before"):
            text = one(name)
            try:
                window[name] = data.parse_time(text) if text else None
            except ValueError:
                raise bad(f"{name} is not an ISO-8601 date-time: {text!r}") from None
        statuses = {s for s in query.get("status", []) if s}
        unknown = statuses - set(data.STATUSES)
        if unknown:
            raise bad(f"unknown status {sorted(unknown)}")
        cursor = one("cursor") or None
        after = None
        if cursor is not None:
            try:
                after = decode_cursor(cursor)
            except ValueError as exc:
                raise bad(str(exc)) from None
        page, more = state.page(i, window["updated_since"], window["updated_before"], statuses or None, after, limit)
        kinds = {"endless"}
        if page:
            kinds.add("malformed")
        if cursor is not None:
            kinds |= {"page_fail", "repeat_cursor"}
        fault = self.server.faults.take(cid, "GET", path, kinds=frozenset(kinds))
        next_cursor = encode_cursor(page[-1]) if more else None
        if fault is not None and fault.kind == "page_fail":
            raise _error(500, "internal_error", "injected page failure", state)
        if fault is not None and fault.kind == "repeat_cursor":
            next_cursor = cursor
        if fault is not None and fault.kind == "endless":  # a cursor just after the last bill served (or asked for)
            ts, bid = (
                (page[-1]["updated_at"], page[-1]["id"])
                if page
                else ((data.format_time(after[0]), after[1]) if after else (state.end, ""))
            )
            next_cursor = encode_cursor({"updated_at": ts, "id": f"{bid.split('~')[0]}~{fault.fired}"})
        if fault is not None and fault.kind == "malformed":
            return self._malformed(page, next_cursor, fault)
        return 200, {"data": page, "next_cursor": next_cursor}, {}

    @staticmethod
    def _malformed(page: list[dict[str, Any]], next_cursor: str | None, fault: Any) -> tuple[int, Any, dict]:
        """The page with one record (the middle one) broken as the rule says (see ``sandboxes.faults``)."""
        record = page[len(page) // 2]
        if not fault.bill_field:
            record.pop("amount", None)
            return 200, {"data": page, "next_cursor": next_cursor}, {}
        *parents, name = fault.bill_field.split(".")
        node = record
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        if not fault.raw:
            node[name] = fault.value
            return 200, {"data": page, "next_cursor": next_cursor}, {}
        mark = "\u0000raw-fault\u0000"
        node[name] = mark
        text = json.dumps({"data": page, "next_cursor": next_cursor}).replace(json.dumps(mark), fault.raw, 1)
        return 200, text.encode(), {"Content-Type": "application/json"}

    # ---- control
    def _company_arg(self, value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            i = value
        elif isinstance(value, str) and value.startswith("cmp_"):
            try:
                i = world.index_of_company(value)
            except ValueError:
                i = 0
        elif isinstance(value, str) and value.isdigit():
            i = int(value)
        else:
            raise Reply(400, {"error": f"company_id required, got {value!r}"})
        if not self.state.exists(i):
            raise Reply(404, {"error": f"no company {value!r}"})
        return i

    @staticmethod
    def _rename(state: RogerState, i: int, body: dict[str, Any]) -> dict[str, Any]:
        known_methods = {pid for pid, *_ in world.PAYMENT_METHODS}
        for kind in ("categories", "payment_methods"):
            names = body.get(kind) or {}
            if not isinstance(names, dict) or not all(isinstance(v, str) for v in names.values()):
                raise Reply(400, {"error": f"{kind} must map ids to names"})
            if kind == "payment_methods" and set(names) - known_methods:
                raise Reply(404, {"error": f"no payment method {sorted(set(names) - known_methods)}"})
            with state.lock:
                state.names.setdefault((i, kind), {}).update({str(k): v for k, v in names.items()})
        return {"categories": state.categories(i), "payment_methods": state.payment_methods(i)}

    def control(self, method: str, name: str, data_in: Any) -> tuple[int, Any]:
        state = self.state
        body = data_in if isinstance(data_in, dict) else {}
        params = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
        company = params.get("company_id", body.get("company_id"))
        if (method, name) == ("POST", "bills/update"):
            i = self._company_arg(company)
            changes = body.get("changes") or {}
            if not isinstance(changes, dict):
                raise Reply(400, {"error": "changes must be an object"})
            extra = {"problem": body["problem"]} if "problem" in body else {}
            try:
                bill = state.update(i, str(body.get("bill_id")), changes, body.get("updated_at"), **extra)
            except Reply as reply:
                raise Reply(reply.status, {"error": reply.body["error"]["message"]}) from None
            return 200, bill
        if (method, name) == ("POST", "bills/add"):
            i = self._company_arg(company)
            partial = body.get("bill") or {}
            if not isinstance(partial, dict):
                raise Reply(400, {"error": "bill must be an object"})
            try:
                return 201, state.add(i, partial, body.get("problem"))
            except Reply as reply:
                raise Reply(reply.status, {"error": reply.body["error"]["message"]}) from None
        if (method, name) == ("POST", "bills/document"):
            i = self._company_arg(company)
            bill_id, size = str(body.get("bill_id")), body.get("bytes")
            if state.bill(i, bill_id) is None:
                raise Reply(404, {"error": f"no bill {bill_id}"})
            with state.lock:
                if size is None:
                    state.document_bytes.pop((i, bill_id), None)
                else:
                    state.document_bytes[(i, bill_id)] = int(size)
            return 200, {"bill_id": bill_id, "bytes": size}
        if (method, name) == ("POST", "names"):
            i = self._company_arg(company)
            return 200, self._rename(state, i, body)
        if method == "POST" and name in ("revoke", "unrevoke"):
            i = self._company_arg(company)
            with state.lock:
                if name == "revoke":
                    state.revoked.add(i)
                else:
                    state.revoked.discard(i)
                return 200, {"revoked": [world.company_id(r) for r in sorted(state.revoked)]}
        if (method, name) == ("GET", "problems"):
            if company is None:
                return 200, {world.company_id(i): state.problems(i) for i in range(1, state.companies + 1)}
            return 200, state.problems(self._company_arg(company))
        if (method, name) == ("GET", "bills"):
            return 200, {"data": state.all_bills(self._company_arg(company))}
        if name == "stats":
            with state.lock:
                if method == "DELETE":
                    state.stats.clear()
                    return 200, {"companies": {}}
                return 200, {"companies": {c: dict(counts) for c, counts in sorted(state.stats.items())}}
        if (method, name) == ("GET", "config"):
            return 200, state.config()
        raise Reply(404, {"error": f"no control endpoint {method} {name}"})
