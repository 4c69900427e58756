"""The Roger API client (see ../shared/roger-api/openapi.yaml)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from roger_economic.http import ApiCaller, RetryPolicy

BOOKABLE_FEED_STATUSES = None  # the feed is read whole: waiting and withdrawn bills matter too


def page_limit() -> int:
    """Bills per page of the feed (``ROGER_ECONOMIC_ROGER_PAGE_SIZE``, 1..500; default 500)."""
    try:
        return max(1, min(500, int(os.environ.get("ROGER_ECONOMIC_ROGER_PAGE_SIZE") or 500)))
    except ValueError:
        return 500


class RogerClient:
    """One Roger business account, read through its bearer token."""

    def __init__(
        self, base_url: str, company_id: str, token: str, agreement: str, policy: RetryPolicy | None = None,
        on_call=None,
    ) -> None:
        self.company_id = company_id
        self.http = ApiCaller(
            "Roger", agreement, f"{base_url.rstrip('/')}/companies/{company_id}",
            {"Authorization": f"Bearer {token}", "Accept": "application/json"}, policy, on_call,
        )

    def close(self) -> None:
        self.http.close()

    def company(self) -> dict[str, Any]:
        return self.http.request("GET", "").body

    def categories(self) -> list[dict[str, Any]]:
        return self.http.request("GET", "/categories").body["data"]

    def payment_methods(self) -> list[dict[str, Any]]:
        return self.http.request("GET", "/payment-methods").body["data"]

    def bills(self, updated_since: str | None, updated_before: str | None, limit: int | None = None) -> Iterator[dict]:
        """Every bill changed in ``[updated_since, updated_before)``, oldest change first."""
        params: dict[str, Any] = {"limit": limit or page_limit()}
        if updated_since:
            params["updated_since"] = updated_since
        if updated_before:
            params["updated_before"] = updated_before
        cursor: str | None = None
        while True:
            page = self.http.request("GET", "/bills", params={**params, **({"cursor": cursor} if cursor else {})})
            yield from page.body.get("data", [])
            cursor = page.body.get("next_cursor")
            if not cursor:
                return

    def bill(self, bill_id: str) -> dict[str, Any]:
        return self.http.request("GET", f"/bills/{bill_id}").body

    def document(self, bill_id: str) -> bytes:
        return self.http.request("GET", f"/bills/{bill_id}/document", raw=True).body
