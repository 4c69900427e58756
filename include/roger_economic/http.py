"""One polite HTTP caller for both APIs: bounded retries, Retry-After, typed errors.

Retries happen on 429 (waiting what ``Retry-After`` asks), on 5xx and on
connection failures. A non-GET request is retried only when it carries an
idempotency key, because only then is a second try harmless when the first
was processed and its answer lost. Every wait comes out of one time budget,
so a throttled agreement gives up with a clear error instead of stalling the
batch. Messages name the service, agreement and endpoint; tokens live only in
the session's headers and never reach a message.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from roger_economic.errors import (
    ApiError,
    AuthError,
    NotFound,
    RateLimited,
    Unreachable,
    ValidationRejected,
)

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def _env_number(name: str, default: float) -> float:
    """A number from the environment (read when a policy is made, so tests and deployments can tune it)."""
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        log.warning("%s=%r is not a number; using %s", name, raw, default)
        return default
    return value if value > 0 else default


@dataclass
class RetryPolicy:
    """How often and how long to retry; defaults from ``ROGER_ECONOMIC_HTTP_*`` environment variables."""

    max_attempts: int = field(default_factory=lambda: int(_env_number("ROGER_ECONOMIC_HTTP_MAX_ATTEMPTS", 6)))
    base_delay: float = field(default_factory=lambda: _env_number("ROGER_ECONOMIC_HTTP_BASE_DELAY", 0.25))
    max_delay: float = field(default_factory=lambda: _env_number("ROGER_ECONOMIC_HTTP_MAX_DELAY", 30.0))
    budget: float = field(  # seconds of waiting per call, at most
        default_factory=lambda: _env_number("ROGER_ECONOMIC_HTTP_BUDGET", 120.0))
    timeout: float = field(  # per request
        default_factory=lambda: _env_number("ROGER_ECONOMIC_HTTP_TIMEOUT", 30.0))
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def from_cache(self) -> bool:
        return self.headers.get("X-ResultFromCache", "").lower() == "true"


class ApiCaller:
    """A ``requests.Session`` for one service and one agreement, with retries."""

    def __init__(
        self,
        service: str,
        agreement: str,
        base_url: str,
        headers: dict[str, str],
        policy: RetryPolicy | None = None,
        on_call: Callable[[str, str], None] | None = None,
    ) -> None:
        self.service = service
        self.agreement = agreement
        self.base_url = base_url.rstrip("/")
        self.policy = policy or RetryPolicy()
        self.session = requests.Session()
        self.session.headers.update(headers)
        # requests reads proxy and CA settings from the environment again on every call (about 2 ms of
        # CPU each, the largest client cost per call in a load): read them once, for this session
        self.session.trust_env = False
        self.session.proxies.update(_environ_proxies(self.base_url))
        ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if ca_bundle:
            self.session.verify = ca_bundle
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=8, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.on_call = on_call
        self.calls = 0

    def close(self) -> None:
        self.session.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | list[tuple[str, Any]] | None = None,
        data: bytes | None = None,
        files: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        content_type: str | None = "application/json",
        raw: bool = False,
        ok_statuses: frozenset[int] = frozenset(),
    ) -> Answer:
        url = f"{self.base_url}{path}"
        headers: dict[str, str] = {}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        if data is not None and content_type:
            headers["Content-Type"] = content_type
        retry_safe = method == "GET" or idempotency_key is not None
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            self.calls += 1
            if self.on_call:
                self.on_call(method, path)
            try:
                resp = self.session.request(
                    method, url, params=params, data=data, files=files, headers=headers,
                    timeout=self.policy.timeout,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                kind = "timeout" if isinstance(exc, requests.Timeout) else "connection lost"
                if retry_safe and attempt < self.policy.max_attempts:
                    delay = self._backoff(attempt, None)
                    if waited + delay <= self.policy.budget:
                        log.warning("%s %s %s: %s, retry %d in %.1fs", self.service, method, path, kind,
                                    attempt, delay)
                        self.policy.sleep(delay)
                        waited += delay
                        continue
                note = f"{kind} (gave up after {attempt} attempt(s), {waited:.1f}s waited)"
                if not retry_safe:
                    note = f"{kind}; not retried: a {method} without an idempotency key may have been processed"
                raise Unreachable(self.service, self.agreement, method, path, None, note) from None
            retryable = resp.status_code in RETRY_STATUSES and resp.status_code not in ok_statuses and (
                retry_safe or resp.status_code == 429)
            if retryable and attempt < self.policy.max_attempts:
                delay = self._backoff(attempt, resp.headers.get("Retry-After"))
                if waited + delay <= self.policy.budget:
                    log.warning("%s %s %s: HTTP %d, retry %d in %.1fs", self.service, method, path,
                                resp.status_code, attempt, delay)
                    self.policy.sleep(delay)
                    waited += delay
                    continue
            if resp.status_code >= 400 and resp.status_code not in ok_statuses:
                gave_up = None
                if resp.status_code in RETRY_STATUSES and (retry_safe or resp.status_code == 429):
                    gave_up = f"gave up after {attempt} attempt(s), {waited:.1f}s waited"
                    if resp.status_code == 429 and resp.headers.get("Retry-After"):
                        gave_up += f", Retry-After {resp.headers['Retry-After']}s"
                raise self._error(method, path, resp, gave_up)
            body: Any
            if raw:
                body = resp.content
            elif resp.content:
                body = resp.json()
            else:
                body = None
            return Answer(resp.status_code, dict(resp.headers), body)

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        """The wait before the next try: what ``Retry-After`` asks (never less), else jittered backoff."""
        if retry_after:
            try:
                asked = float(retry_after)
            except ValueError:
                asked = None
            if asked is not None and asked >= 0:
                return asked  # polite: never sooner than asked; the budget decides whether to wait at all
        delay = self.policy.base_delay * (2 ** (attempt - 1))
        return min(delay * (0.5 + random.random()), self.policy.max_delay)

    def _error(self, method: str, path: str, resp: requests.Response, note: str | None = None) -> ApiError:
        try:
            details = resp.json()
        except ValueError:
            details = None
        message = _message_of(details) or resp.reason or "error"
        if note:
            message = f"{message} ({note})"
        status = resp.status_code
        args = (self.service, self.agreement, method, path, status, message, details)
        if status in (401, 403):
            return AuthError(*args)
        if status == 404:
            return NotFound(*args)
        if status == 429:
            return RateLimited(*args)
        if status == 400 and isinstance(details, dict) and "errors" in details:
            return ValidationRejected(*args)
        return ApiError(*args)


@functools.lru_cache(maxsize=64)
def _environ_proxies(base_url: str) -> dict[str, str]:
    """The proxies the environment names for a service (read once per process and base URL)."""
    return requests.utils.get_environ_proxies(base_url)


def _message_of(details: Any) -> str | None:
    if not isinstance(details, dict):
        return None
    if isinstance(details.get("error"), dict):  # Roger
        err = details["error"]
        return f"{err.get('code', '')}: {err.get('message', '')}".strip(": ")
    message = details.get("message")
    errors = details.get("errors")
    if errors:
        first = ValidationRejected("", "", "", "", 400, "", details).fields[:3]
        if first:
            parts = [f"{path or '(body)'} {code} {msg} (value {value!r})" for path, code, msg, value in first]
            return f"{message}: " + "; ".join(parts)
    if message:
        return str(message)
    return json.dumps(details)[:300]
