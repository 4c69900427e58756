"""The e-conomic REST client: paging, vouchers, entries, suppliers, attachments.

Kept behind one small interface (the methods below) so that the newer
Journals API can be added beside it without touching the loader.
"""

from __future__ import annotations

from typing import Any

from roger_economic.economic.conventions import voucher_path, year_path
from roger_economic.economic.jsonnum import dumps, loads
from roger_economic.errors import ApiError, NotFound
from roger_economic.http import Answer, ApiCaller, RetryPolicy

PAGE_SIZE = 1000
MAX_ATTACHMENT_BYTES = 9 * 1024 * 1024  # per request, the multipart envelope included
MULTIPART_OVERHEAD = 1024  # boundary and part headers around the file (a few hundred bytes; kept generous)


def fits_one_request(document: bytes) -> bool:
    """Whether the document can go up in one attachment request (9 MB, the multipart envelope included)."""
    return len(document) + MULTIPART_OVERHEAD <= MAX_ATTACHMENT_BYTES


class EconomicClient:
    """One client agreement (one Agreement Grant Token) of one app (one App Secret Token)."""

    def __init__(
        self,
        base_url: str,
        app_secret_token: str,
        grant_token: str,
        agreement: str,
        policy: RetryPolicy | None = None,
        on_call=None,
    ) -> None:
        self.http = ApiCaller(
            "e-conomic", agreement, base_url,
            {"X-AppSecretToken": app_secret_token, "X-AgreementGrantToken": grant_token,
             "Accept": "application/json"},
            policy, on_call,
        )

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------------ reads
    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.http.request("GET", path, params=params).body

    def collection(self, path: str, filter: str | None = None) -> list[dict[str, Any]]:
        """Every item of a collection, following e-conomic's skippages/pagesize paging."""
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
        """Create several vouchers in one call; the answer is in the same order."""
        answer = self._send("POST", f"/journals/{journal}/vouchers", vouchers, key)
        created = answer.body if isinstance(answer.body, list) else [answer.body]
        if len(created) != len(vouchers):
            raise ApiError("e-conomic", self.http.agreement, "POST", f"/journals/{journal}/vouchers",
                           answer.status, f"sent {len(vouchers)} vouchers, {len(created)} came back")
        return created

    def create_supplier(self, supplier: dict[str, Any], key: str) -> dict[str, Any]:
        return self._send("POST", "/suppliers", supplier, key).body

    def delete_entry(self, journal: int, entry_number: int, key: str) -> bool:
        """Delete a draft entry; ``False`` when it is gone already (deleted, or booked)."""
        answer = self.http.request(
            "DELETE", f"/journals/{journal}/entries/{entry_number}", idempotency_key=key,
            content_type=None, ok_statuses=frozenset({404}),
        )
        return answer.status != 404

    def attach(self, journal: int, year: str, voucher: int, pdf: bytes, filename: str, key: str) -> str:
        """Attach a PDF to a voucher: ``attached``, ``exists`` when it already had one (a rerun, or an
        answer lost after the idempotency key expired: nothing is added twice), ``too_large`` on 413."""
        path = f"{voucher_path(journal, year, voucher)}/attachment/file"
        answer = self.http.request(
            "POST", path, files={"file": (filename, pdf, "application/pdf")}, idempotency_key=key,
            content_type=None, ok_statuses=frozenset({400, 413}),
        )
        if answer.status == 413:
            return "too_large"
        if answer.status == 400:
            if "already has attachment" in str(answer.body).lower():
                return "exists"
            raise ApiError("e-conomic", self.http.agreement, "POST", path, 400, str(answer.body)[:300])
        return "attached"

    def add_pages(self, journal: int, year: str, voucher: int, pdf: bytes, filename: str, key: str) -> None:
        path = f"{voucher_path(journal, year, voucher)}/attachment/file"
        self.http.request("PATCH", path, files={"file": (filename, pdf, "application/pdf")}, idempotency_key=key,
                          content_type=None)
