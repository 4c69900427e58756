"""The Roger API client (see ../shared/roger-api/openapi.yaml)."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from roger_economic.errors import IntegrationError
from roger_economic.http import ApiCaller, Calls
from roger_economic.roger import contract
from roger_economic.settings import environment


def page_limit() -> int:
    """Bills per page of the feed (``ROGER_ECONOMIC_ROGER_PAGE_SIZE``, 1..500; default 500)."""
    return environment().roger_page_size


def max_feed_pages() -> int:
    """Pages one walk of the bill feed may take (``ROGER_ECONOMIC_ROGER_MAX_PAGES``; default 1000, i.e. up to
    500,000 bills at 500 a page): more means a feed that never ends."""
    return environment().roger_max_pages


class FeedBroken(IntegrationError):
    """The bill feed cannot be walked to its end: a cursor that repeats, too many pages, a page that is not one."""


class RogerClient:
    """One Roger business account, read through its bearer token."""

    def __init__(self, base_url: str, company_id: str, token: str, calls: Calls) -> None:
        self.company_id = company_id
        company_url = f"{base_url.rstrip('/')}/companies/{company_id}"
        self.http = ApiCaller(
            "Roger", company_url, {"Authorization": f"Bearer {token}", "Accept": "application/json"}, calls
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
        for page in self.bill_pages(updated_since, updated_before, limit):
            yield from page

    def bill_pages(
        self,
        updated_since: str | None,
        updated_before: str | None,
        limit: int | None = None,
        max_pages: int | None = None,
    ) -> Iterator[list[Any]]:
        """The feed page by page (records as sent, JSON numbers as ``Decimal``), bounded.

        A page whose ``next_cursor`` was followed before (a feed that loops), or more than
        ``max_pages`` pages (``ROGER_ECONOMIC_ROGER_MAX_PAGES``; a feed that never ends) stop the
        walk with :class:`FeedBroken`: the agreement fails with that message, the others go on.
        """
        params: dict[str, Any] = {"limit": limit or page_limit()}
        if updated_since:
            params["updated_since"] = updated_since
        if updated_before:
            params["updated_before"] = updated_before
        cap = max_pages or max_feed_pages()
        followed: set[bytes] = set()  # digests: a cursor is Roger's text, of any length
        cursor: str | None = None
        for number in itertools.count(1):
            page = self._page({**params, **({"cursor": cursor} if cursor else {})}, number)
            yield page["data"]
            cursor = page["next_cursor"]
            if not cursor:
                return
            digest = hashlib.sha256(cursor.encode()).digest()
            if digest in followed:
                raise FeedBroken(
                    f"Roger's bill feed for agreement {self.http.agreement} gave page {number} a "
                    f"next_cursor it had given before (a feed that loops); the walk was stopped"
                )
            if number >= cap:
                raise FeedBroken(
                    f"Roger's bill feed for agreement {self.http.agreement} has more than {cap} "
                    f"pages (ROGER_ECONOMIC_ROGER_MAX_PAGES); the walk was stopped"
                )
            followed.add(digest)

    def _page(self, params: dict[str, Any], number: int) -> dict[str, Any]:
        """One page of the feed, parsed with exact decimals and judged against the page's own schema."""
        raw = self.http.request("GET", "/bills", params=params, raw=True).body
        try:
            body = json.loads(raw, parse_float=Decimal, parse_constant=Decimal)
        except ValueError:  # UnicodeDecodeError too
            raise FeedBroken(
                f"Roger's bill feed for agreement {self.http.agreement}: page {number} is not JSON"
            ) from None
        found = contract.breaks(body, contract.PAGE)
        if found:
            raise FeedBroken(
                f"Roger's bill feed for agreement {self.http.agreement}: page {number} {contract.message(found)}"
            )
        return body

    def document(self, bill_id: str) -> bytes:
        return self.http.request("GET", f"/bills/{_segment(bill_id)}/document", raw=True).body


def _segment(bill_id: str) -> str:
    """A bill id as one URL path segment: an id holding ``/``, ``?``, ``#`` or ``..`` must not name another
    resource (another bill's PDF attached to this bill's voucher)."""
    return quote(bill_id, safe="")
