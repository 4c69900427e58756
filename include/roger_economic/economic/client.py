"""The e-conomic REST client: paging, vouchers, entries, suppliers, attachments.

Kept behind one small interface (the methods below) so that the newer
Journals API can be added beside it without touching the loader.

e-conomic conventions relied on here (``economic-api/README.md`` sections; the assumed ones have a switch in
:mod:`roger_economic.economic.conventions`):

- headers ``X-AppSecretToken`` + ``X-AgreementGrantToken``, JSON bodies, multipart uploads: *documented*
  ("Connection");
- ``skippages``/``pagesize`` (at most 1000) paging that ends when ``nextPage`` is absent: *documented*
  ("Paging and filtering");
- an array of vouchers in one POST, answered as an array in the same order: *documented* ("Journals and
  vouchers");
- ``Idempotency-Key`` on every non-GET, replayed for an hour: *documented* ("Limits and idempotency");
- draft entries under ``/journals/{n}/entries``, deleted with ``DELETE``: *documented*; a gone entry answering
  404: *assumed* (``GONE_ENTRY_STATUS``);
- attachments: one POST, 400 "Voucher already has attachment" for a second one, PATCH adds pages, 9 MB per
  request: *documented* ("Attachments"); 413 for a larger file: *assumed* (``TOO_LARGE_STATUS``).
"""

from __future__ import annotations

from typing import Any

from roger_economic.economic.conventions import GONE_ENTRY_STATUS, TOO_LARGE_STATUS, voucher_path, year_path
from roger_economic.economic.jsonnum import dumps, loads
from roger_economic.errors import AnswerLost, ApiError, IntegrationError, NotFound
from roger_economic.http import Answer, ApiCaller, Calls

PAGE_SIZE = 1000  # the largest page e-conomic allows (documented: "Paging and filtering")
MAX_ATTACHMENT_BYTES = 9 * 1024 * 1024  # per request, the multipart envelope included (documented: "Attachments")
MAX_PAGES = 1000  # pages of one collection at most (a million items): beyond, the paging is taken to be broken
MULTIPART_OVERHEAD = 1024  # boundary and part headers around the file (a few hundred bytes; kept generous)


def fits_one_request(document: bytes) -> bool:
    """Whether the document can go up in one attachment request (9 MB, the multipart envelope included)."""
    return len(document) + MULTIPART_OVERHEAD <= MAX_ATTACHMENT_BYTES


class EconomicClient:
    """One client agreement (one Agreement Grant Token) of one app (one App Secret Token)."""

    def __init__(self, base_url: str, app_secret_token: str, grant_token: str, calls: Calls) -> None:
        tokens = {"X-AppSecretToken": app_secret_token, "X-AgreementGrantToken": grant_token}
        # every answer is parsed with exact decimals (amounts, rates)
        self.http = ApiCaller("e-conomic", base_url, {**tokens, "Accept": "application/json"}, calls, loads)

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------------ reads
    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.http.request("GET", path, params=params).body

    def collection(self, path: str, filter: str | None = None) -> list[dict[str, Any]]:
        """Every item of a collection, following e-conomic's skippages/pagesize paging.

        ``filter`` is written in e-conomic's filter language: build it with
        :func:`~roger_economic.economic.conventions.filter_eq` / ``filter_value``, never from raw text.
        """
        items: list[dict[str, Any]] = []
        skip = 0
        while True:
            params: dict[str, Any] = {"skippages": skip, "pagesize": PAGE_SIZE}
            if filter:
                params["filter"] = filter
            page = self.get(path, params)
            items.extend(page.get("collection", []))
            if not page.get("pagination", {}).get("nextPage"):
                return items
            skip += 1
            if skip >= MAX_PAGES:  # a collection that never ends holds no agreement's night hostage
                raise IntegrationError(
                    f"agreement {self.http.agreement}: e-conomic's {path} still had a next page after {MAX_PAGES} "
                    f"pages of {PAGE_SIZE}: stopped reading it"
                )

    def self_(self) -> dict[str, Any]:
        return self.get("/self")

    def accounting_year_periods(self, year: str) -> list[dict[str, Any]]:
        return self.collection(f"/accounting-years/{year_path(year)}/periods")

    def entries(self, journal: int, filter: str | None = None) -> list[dict[str, Any]]:
        """Draft entries of a journal (booked ones have left it)."""
        return self.collection(f"/journals/{journal}/entries", filter)

    def booked_entries(self, year: str, filter: str | None = None) -> list[dict[str, Any]]:
        """Booked entries of an accounting year (where a journal's drafts go when the accountant books it).

        The answer's shape (entryNumber, entryType, text, voucherNumber, date, ...) is *assumed*: the
        shared e-conomic schemas do not include this endpoint.
        """
        return self.collection(f"/accounting-years/{year_path(year)}/entries", filter)

    def entry(self, journal: int, entry_number: int) -> dict[str, Any] | None:
        try:
            return self.get(f"/journals/{journal}/entries/{entry_number}")
        except NotFound:
            return None

    # ------------------------------------------------------------------ writes
    def _send(self, method: str, path: str, body: Any, key: str) -> Answer:
        answer = self.http.request(method, path, data=dumps(body).encode(), idempotency_key=key, raw=True)
        answer.body = loads(answer.body) if answer.body else None
        return answer

    def post_vouchers(self, journal: int, vouchers: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
        """Create several vouchers in one call; the answer is in the same order.

        An answer that does not account for every voucher sent raises :class:`AnswerLost`: the vouchers
        may exist, so the caller leaves its rows ``posting`` for recovery to look up.
        """
        path = f"/journals/{journal}/vouchers"
        answer = self._send("POST", path, vouchers, key)
        created = answer.body if isinstance(answer.body, list) else [answer.body]
        problem = unusable_answer(vouchers, created)
        if problem:
            raise AnswerLost(
                "e-conomic",
                self.http.agreement,
                "POST",
                path,
                answer.status,
                f"the answer does not match the {len(vouchers)} voucher(s) sent: {problem}; "
                "treated as a lost answer (they are looked up before anything is sent again)",
                secrets=self.http.secrets,
            )
        return created

    def create_supplier(self, supplier: dict[str, Any], key: str) -> dict[str, Any]:
        return self._send("POST", "/suppliers", supplier, key).body

    def delete_entry(self, journal: int, entry_number: int, key: str) -> bool:
        """Delete a draft entry; ``False`` when it is gone already (deleted, or booked)."""
        answer = self.http.request(
            "DELETE",
            f"/journals/{journal}/entries/{entry_number}",
            idempotency_key=key,
            content_type=None,
            ok_statuses=frozenset({GONE_ENTRY_STATUS}),
        )
        return answer.status != GONE_ENTRY_STATUS

    def attach(self, journal: int, year: str, voucher: int, pdf: bytes, filename: str, key: str) -> str:
        """Attach a PDF to a voucher: ``attached``, ``exists`` when it already had one (a rerun, or an
        answer lost after the idempotency key expired: nothing is added twice), ``too_large`` on 413
        (``TOO_LARGE_STATUS``)."""
        path = f"{voucher_path(journal, year, voucher)}/attachment/file"
        answer = self.http.request(
            "POST",
            path,
            files={"file": (filename, pdf, "application/pdf")},
            idempotency_key=key,
            content_type=None,
            ok_statuses=frozenset({400, TOO_LARGE_STATUS}),
        )
        if answer.status == 400 and "already has attachment" in str(answer.body).lower():
            return "exists"
        if answer.status == TOO_LARGE_STATUS:
            return "too_large"
        if answer.status == 400:
            raise ApiError(
                "e-conomic", self.http.agreement, "POST", path, 400, str(answer.body)[:300], secrets=self.http.secrets
            )
        return "attached"


def unusable_answer(sent: list[dict[str, Any]], created: list[Any]) -> str | None:
    """Why a voucher POST's answer cannot be recorded, or ``None``: one voucher back per voucher sent, each
    with an integer voucher number, its accounting year and, per kind of entry sent, as many entries with
    their journal entry numbers."""
    if len(created) != len(sent):
        return f"{len(created)} came back"
    for i, (mine, theirs) in enumerate(zip(sent, created, strict=True)):
        if not isinstance(theirs, dict):
            return f"[{i}] is not a voucher"
        number = theirs.get("voucherNumber")
        if not isinstance(number, int) or isinstance(number, bool):
            return f"[{i}] has no voucher number"
        if not isinstance(theirs.get("accountingYear"), dict) or not (theirs["accountingYear"].get("year")):
            return f"[{i}] has no accounting year"
        entries = theirs.get("entries")
        if not isinstance(entries, dict):
            return f"[{i}] has no entries"
        for kind, items in (mine.get("entries") or {}).items():
            got = entries.get(kind)
            if not isinstance(got, list) or len(got) != len(items):
                return f"[{i}] has not its {len(items)} {kind}"
            if not all(isinstance(e, dict) and isinstance(e.get("journalEntryNumber"), int) for e in got):
                return f"[{i}] has {kind} without a journal entry number"
    return None
