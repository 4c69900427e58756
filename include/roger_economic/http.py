"""One polite HTTP caller for both APIs: bounded retries, Retry-After, typed errors.

Retries happen on 429 (waiting what ``Retry-After`` asks), on 5xx and on
connection failures. A non-GET request is retried only when it carries an
idempotency key, because only then is a second try harmless when the first
was processed and its answer lost. Every wait comes out of one time budget,
so a throttled agreement gives up with a clear error instead of stalling the
batch. Messages name the service, agreement and endpoint; tokens live only in
the caller's headers and never reach a message: an error body that echoes them
is scrubbed (:func:`roger_economic.errors.scrub`) before anything keeps it.

Each try has one deadline for all of it (connect, send, every read): urllib3's
read timeout is per read, so a server that drips a byte at a time would
otherwise hold a call for minutes. A watchdog thread shuts a late call's socket
down (:class:`_Watchdog`).
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import itertools
import json
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode, urlsplit
from urllib.request import getproxies, proxy_bypass

import certifi
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError as TransportError
from urllib3.exceptions import NewConnectionError
from urllib3.exceptions import TimeoutError as TransportTimeout

from roger_economic.errors import (
    ApiError,
    AuthError,
    NotFound,
    RateLimited,
    Unreachable,
    ValidationRejected,
)
from roger_economic.settings import environment

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
SECRET_HEADERS = frozenset({"x-appsecrettoken", "x-agreementgranttoken", "authorization", "proxy-authorization"})


@dataclass
class RetryPolicy:
    """How often and how long to retry; defaults from ``ROGER_ECONOMIC_HTTP_*`` environment variables."""

    max_attempts: int = field(default_factory=lambda: environment().http_max_attempts)
    base_delay: float = field(default_factory=lambda: environment().http_base_delay)
    max_delay: float = field(default_factory=lambda: environment().http_max_delay)
    budget: float = field(default_factory=lambda: environment().http_budget)  # seconds of waiting per call, at most
    # per try, all of it: connect, send and every read of the answer
    timeout: float = field(default_factory=lambda: environment().http_timeout)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)


@dataclass(frozen=True)
class Calls:
    """Whose calls a client makes and how: the agreement its messages and call counts name, the retry policy,
    and a hook called before every try (the benchmark counts calls with it)."""

    agreement: str
    policy: RetryPolicy | None = None
    on_call: Callable[[str, str], None] | None = None


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def from_cache(self) -> bool:
        return self.headers.get("X-ResultFromCache", "").lower() == "true"


class ApiCaller:
    """A connection pool for one service and one agreement, with retries.

    Plain urllib3, not ``requests``: a night's load makes thousands of small calls, and requests'
    per-call machinery (merging settings, hooks, cookies, re-reading proxy settings from an environment
    that holds every agreement's token reference) costs more CPU than the call itself.
    """

    def __init__(
        self,
        service: str,
        base_url: str,
        headers: dict[str, str],
        calls: Calls,
        loads: Callable[[bytes], Any] = json.loads,
        shared: bool = True,
    ) -> None:
        """``loads`` parses a JSON answer (e-conomic's client passes one that keeps decimals exact); ``shared``:
        over the process's connections to the service (False: its own, closed by :meth:`close`)."""
        self.service = service
        self.agreement = calls.agreement
        self.base_url = base_url.rstrip("/")
        self.policy = calls.policy or RetryPolicy()
        self.headers = dict(headers)
        self.shared = shared
        self.pool = _pool_manager(self.base_url) if shared else _new_pool(self.base_url, 1)
        self.on_call = calls.on_call
        self.loads = loads
        self.secrets = _secrets_of(self.headers)

    def close(self) -> None:
        """Its own connections closed; shared ones stay, for the service's other callers (:func:`_pool_manager`):
        clearing them here would cut another agreement's call short."""
        if not self.shared:
            self.pool.clear()

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
        if params:
            url = f"{url}?{urlencode(params)}"
        headers = dict(self.headers)
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        body = data
        if files:
            body, headers["Content-Type"] = urllib3.encode_multipart_formdata(files)
        elif data is not None and content_type:
            headers["Content-Type"] = content_type
        retry_safe = method == "GET" or idempotency_key is not None
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            if self.on_call:
                self.on_call(method, path)
            try:
                resp = self._try(method, url, body, headers)
            except TransportError as exc:
                timed_out = isinstance(exc, TransportTimeout) and not isinstance(exc, NewConnectionError)
                kind = "timeout" if timed_out else "connection lost"
                if retry_safe and attempt < self.policy.max_attempts:
                    delay = self._backoff(attempt, None)
                    if waited + delay <= self.policy.budget:
                        log.warning("%s %s %s: %s, retry %d in %.1fs", self.service, method, path, kind, attempt, delay)
                        self.policy.sleep(delay)
                        waited += delay
                        continue
                note = f"{kind} (gave up after {attempt} attempt(s), {waited:.1f}s waited)"
                if not retry_safe:
                    note = f"{kind}; not retried: a {method} without an idempotency key may have been processed"
                raise Unreachable(
                    self.service, self.agreement, method, path, None, note, secrets=self.secrets
                ) from None
            retryable = (
                resp.status in RETRY_STATUSES and resp.status not in ok_statuses and (retry_safe or resp.status == 429)
            )
            if retryable and attempt < self.policy.max_attempts:
                delay = self._backoff(attempt, resp.headers.get("Retry-After"))
                if waited + delay <= self.policy.budget:
                    log.warning(
                        "%s %s %s: HTTP %d, retry %d in %.1fs", self.service, method, path, resp.status, attempt, delay
                    )
                    self.policy.sleep(delay)
                    waited += delay
                    continue
            if resp.status >= 300 and resp.status not in ok_statuses:  # a redirect is not a success either
                gave_up = None
                if resp.status in RETRY_STATUSES and (retry_safe or resp.status == 429):
                    gave_up = f"gave up after {attempt} attempt(s), {waited:.1f}s waited"
                    asked = retry_after_seconds(resp.headers.get("Retry-After"))
                    if resp.status == 429 and asked is not None:
                        gave_up += f", Retry-After {asked:.0f}s"
                raise self._error(method, path, resp, gave_up)
            answer: Any
            if raw:
                answer = resp.data
            elif resp.data:
                answer = self.loads(resp.data)
            else:
                answer = None
            return Answer(resp.status, dict(resp.headers), answer)

    def _try(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> urllib3.BaseHTTPResponse:
        """One try, over in ``policy.timeout`` seconds however slowly the server answers."""
        with _WATCHDOG.call(self.policy.timeout) as call:
            try:
                resp = self.pool.request(
                    method,
                    url,
                    body=body,
                    headers=headers,
                    retries=False,
                    redirect=False,
                    timeout=urllib3.Timeout(total=self.policy.timeout),
                )
            except TransportError:
                if call.expired:
                    raise DeadlineExceeded(f"no complete answer within {self.policy.timeout:g}s") from None
                raise
        if call.cut:  # the answer may be cut short: not trusted (a deadline that found it read cuts nothing)
            resp.release_conn()
            raise DeadlineExceeded(f"no complete answer within {self.policy.timeout:g}s")
        return resp

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        """The wait before the next try: what ``Retry-After`` asks (never less), else jittered backoff."""
        asked = retry_after_seconds(retry_after)
        if asked is not None:
            return asked  # polite: never sooner than asked; the budget decides whether to wait at all
        delay = self.policy.base_delay * (2 ** (attempt - 1))
        return min(delay * (0.5 + random.random()), self.policy.max_delay)

    def _error(self, method: str, path: str, resp: urllib3.BaseHTTPResponse, note: str | None = None) -> ApiError:
        try:
            details = self.loads(resp.data)
        except ValueError:
            details = None
        message = _message_of(details) or resp.reason or "error"
        if note:
            message = f"{message} ({note})"
        status = resp.status
        args = (self.service, self.agreement, method, path, status, message, details)
        kind = ApiError
        if status in (401, 403):
            kind = AuthError
        elif status == 404:
            kind = NotFound
        elif status == 429:
            kind = RateLimited
        elif status == 400 and isinstance(details, dict) and "errors" in details:
            kind = ValidationRejected
        return kind(*args, secrets=self.secrets)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """What a ``Retry-After`` header asks, in seconds: a number of seconds, or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            log.warning("Retry-After %r is neither seconds nor an HTTP date; backing off instead", value[:40])
            return None
        if when.tzinfo is None:  # "-0000": UTC (RFC 5322)
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
        return max(seconds, 0.0)  # a date gone by: now
    return seconds if seconds >= 0 else None


def _secrets_of(headers: dict[str, str]) -> tuple[str, ...]:
    """The token values in a caller's headers (a bearer token with and without its scheme)."""
    found: list[str] = []
    for name, value in headers.items():
        if name.lower() in SECRET_HEADERS and value:
            found.append(value)
            scheme, _, credential = value.partition(" ")
            if credential and scheme.lower() in ("bearer", "basic"):
                found.append(credential.strip())
    return tuple(found)


class DeadlineExceeded(TransportTimeout):
    """A try that did not end within its deadline (a server dripping its answer)."""


class _Call:
    """One try under a deadline; ``conn`` is the connection it uses (set by :class:`_WatchedConnection`)."""

    __slots__ = ("at", "conn", "cut", "done", "expired", "lock")

    def __init__(self, at: float) -> None:
        self.at = at
        self.conn: Any = None
        self.done = False
        self.expired = False
        self.cut = False  # its connection was shut down mid-try
        self.lock = threading.Lock()

    def expire(self) -> None:
        with self.lock:  # the pool takes the same lock to detach the connection when the answer is read
            if self.done:
                return
            self.expired = True
            conn = self.conn
            if conn is None or getattr(conn, "watched_by", None) is not self:
                return  # no connection yet, or it is back in the shared pool (the answer was read)
            sock = getattr(conn, "sock", None)
            if sock is not None:  # the blocked read returns at once; the connection is not reused
                self.cut = True
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def finish(self) -> None:
        with self.lock:
            self.done = True


class _Watchdog:
    """One thread for the whole process that ends tries whose deadline passed.

    A thread per call (``threading.Timer``) would cost more than a small call; here a call is a heap push.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Call]] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._order = itertools.count()
        self._local = threading.local()

    def reset(self) -> None:
        """After a fork: the parent's thread and lock do not exist in the child."""
        self.__init__()  # type: ignore[misc]

    @contextlib.contextmanager
    def call(self, seconds: float) -> Iterator[_Call]:
        call = _Call(time.monotonic() + seconds)
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="http-deadlines", daemon=True)
                self._thread.start()
            heapq.heappush(self._heap, (call.at, next(self._order), call))
            if self._heap[0][2] is call:
                self._cond.notify()
        self._local.call = call
        try:
            yield call
        finally:
            self._local.call = None
            call.finish()

    def current(self) -> _Call | None:
        return getattr(self._local, "call", None)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                call = heapq.heappop(self._heap)[2]
            call.expire()


_WATCHDOG = _Watchdog()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WATCHDOG.reset)


class _WatchedConnection:
    """Tells the try under way which connection it uses, so that its deadline can close it."""

    def _watched(self) -> None:
        call = _WATCHDOG.current()
        self.watched_by = call  # the try that uses it now (a pooled connection serves one try after another)
        if call is not None:
            call.conn = self
            if call.expired:
                raise DeadlineExceeded("deadline passed before the request was sent")

    def connect(self) -> None:
        self._watched()
        super().connect()  # type: ignore[misc]

    def request(self, *args: Any, **kwargs: Any) -> None:
        self._watched()
        super().request(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_WatchedConnection, HTTPConnection):
    pass


class _HTTPSConnection(_WatchedConnection, HTTPSConnection):
    pass


class _DetachingPool:
    """A connection handed back is detached from its try first, under the try's lock: a deadline firing later
    can no longer cut it, now that it may serve another agreement's call. One its try cut is closed."""

    def _put_conn(self, conn: Any) -> None:
        call = getattr(conn, "watched_by", None)
        if call is not None:
            with call.lock:
                conn.watched_by = None
                cut = call.cut
            if cut:
                conn.close()
        super()._put_conn(conn)  # type: ignore[misc]


class _HTTPPool(_DetachingPool, HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(_DetachingPool, HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


def _pool_manager(base_url: str) -> urllib3.PoolManager:
    """The connections to ``base_url``'s service: through the proxy the environment names, verified with its CA
    bundle (``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``, else certifi's, as ``requests`` did).

    One pool per service and process, shared by every agreement's caller: a connection carries no agreement
    (its tokens are headers of each request), so a night of thousands of agreements opens a handful of
    connections (and TLS handshakes) per service and process instead of one or two per agreement.
    """
    parts = urlsplit(base_url)
    with _SHARED_POOLS_LOCK:  # agreements' threads start together: one pool per service, not one each
        return _shared_pool(f"{parts.scheme}://{parts.netloc}", _ca_bundle(), max(8, environment().load_threads))


def _ca_bundle() -> str:
    return environment().ca_bundle or certifi.where()


_SHARED_POOLS_LOCK = threading.Lock()


@functools.lru_cache(maxsize=32)
def _shared_pool(origin: str, ca_bundle: str, size: int) -> urllib3.PoolManager:
    """``size`` connections kept per host: as many as a step's agreements call at once."""
    return _new_pool(origin, size, ca_bundle)


def _new_pool(base_url: str, size: int, ca_bundle: str | None = None) -> urllib3.PoolManager:
    parts = urlsplit(base_url)
    proxy = _proxy_for(parts.scheme, parts.hostname or "")
    ca_bundle = ca_bundle or _ca_bundle()
    if proxy:
        auth = urllib3.util.parse_url(proxy).auth
        headers = urllib3.make_headers(proxy_basic_auth=auth) if auth else None
        manager: urllib3.PoolManager = urllib3.ProxyManager(
            proxy, num_pools=4, maxsize=size, ca_certs=ca_bundle, proxy_headers=headers
        )
    else:
        manager = urllib3.PoolManager(num_pools=4, maxsize=size, ca_certs=ca_bundle)
    manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}  # tries with a deadline
    return manager


@functools.lru_cache(maxsize=64)
def _proxy_for(scheme: str, host: str) -> str | None:
    """The proxy the environment names for a host (``*_proxy``, ``all_proxy``, ``no_proxy``), read once per
    scheme and host: reading proxy settings scans the whole environment (slow when it holds every
    agreement's token reference), and every agreement has its own base URL on the same host."""
    if host and proxy_bypass(host):
        return None
    proxies = getproxies()
    return proxies.get(scheme) or proxies.get("all")


def _shown(value: Any) -> str:
    """A rejected value as the answer wrote it (a decimal as its digits, not ``Decimal('...')``)."""
    return format(value, "f") if isinstance(value, Decimal) else repr(value)


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
            parts = [f"{path or '(body)'} {code} {msg} (value {_shown(value)})" for path, code, msg, value in first]
            return f"{message}: " + "; ".join(parts)
    if message:
        return str(message)
    return json.dumps(details, default=str)[:300]


def _forget_pools() -> None:
    """After a fork: the child opens its own connections (a socket is one process's), under a fresh lock."""
    global _SHARED_POOLS_LOCK
    _SHARED_POOLS_LOCK = threading.Lock()
    _shared_pool.cache_clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools)
