"""What both sandbox servers share: JSON in and out, faults, starting and stopping.

Each sandbox subclasses :class:`JsonHandler`, implements ``route()`` and
``scope_of()``, and is served by a ``ThreadingHTTPServer``. Faults are acted
out here, once, so that both sandboxes fail in exactly the same ways, and so is
network latency (:class:`Latency`, ``--latency`` or ``/_control/latency``) and
the per-scope timing of the answers (``/_control/timing``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from statistics import NormalDist
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sandboxes.faults import FaultBook, FaultRule


class Reply(Exception):
    """Raised inside a route to answer at once with a status and a JSON body."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


@dataclass
class Latency:
    """How long an answer takes, drawn per call (an *assumed* shape: neither API publishes its latency).

    Log-normal around ``median_ms`` (``sigma``: the spread of its logarithm), held in
    [``min_ms``, ``max_ms``], plus ``per_kb_ms`` for every KiB sent or answered (an upload or a PDF is
    slower by its size). A call whose path matches a ``slower`` rule's regex takes that rule's median
    (``{"path": "/attachment", "median_ms": 250}``). The draw is a hash of (``seed``, scope, method,
    path and query), not a random stream, so the same call takes the same time whoever makes it and in
    whatever order: the benchmark's floor replays the run's calls with the run's latencies. The time a
    request spends in the sandbox counts towards it (an answer is sent no sooner than its latency).
    """

    median_ms: float = 0.0
    sigma: float = 0.6
    min_ms: float = 0.0
    max_ms: float = 1000.0
    per_kb_ms: float = 0.0
    seed: int = 7
    slower: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Latency:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown latency fields: {sorted(unknown)}")
        latency = cls(**data)
        for rule in latency.slower:
            re.compile(str(rule.get("path", "")))
            float(rule.get("median_ms", latency.median_ms))
        return latency

    @classmethod
    def parse(cls, text: str) -> Latency | None:
        """A ``--latency`` value: a preset's name (:data:`LATENCY_PRESETS`), JSON, or ``off``."""
        if text in ("", "off", "none"):
            return None
        if text in LATENCY_PRESETS:
            return cls.from_json(LATENCY_PRESETS[text])
        return cls.from_json(json.loads(text))

    def seconds(self, scope: str, method: str, target: str, size: int) -> float:
        median = self.median_ms
        for rule in self.slower:
            if re.search(str(rule.get("path", "")), target):
                median = float(rule.get("median_ms", median))
                break
        if median <= 0 and self.per_kb_ms <= 0:
            return 0.0
        digest = hashlib.blake2b(f"{self.seed}|{scope}|{method}|{target}".encode(), digest_size=8).digest()
        u = (int.from_bytes(digest, "big") + 0.5) / 2**64
        ms = median * math.exp(self.sigma * _NORMAL.inv_cdf(u)) if median > 0 else 0.0
        ms = min(max(ms, self.min_ms), self.max_ms) + self.per_kb_ms * size / 1024
        return ms / 1000


_NORMAL = NormalDist()
# The production-shaped latencies the benchmark assumes: e-conomic about 120 ms with a tail to a second,
# attachments slower (and slower by size); Roger about 60 ms, its PDFs a little slower.
LATENCY_PRESETS: dict[str, dict[str, Any]] = {
    "economic": {
        "median_ms": 120,
        "sigma": 0.6,
        "min_ms": 30,
        "max_ms": 1000,
        "per_kb_ms": 1.0,
        "slower": [{"path": "/attachment", "median_ms": 250}],
    },
    "roger": {
        "median_ms": 60,
        "sigma": 0.5,
        "min_ms": 15,
        "max_ms": 600,
        "per_kb_ms": 0.5,
        "slower": [{"path": "/document$", "median_ms": 90}],
    },
}


class Timing:
    """Per scope (agreement or company): first request, last answer, calls, 429s, latency slept."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.scopes: dict[str, list[float]] = {}

    def record(self, scope: str, start: float, end: float, status: int, slept: float) -> None:
        with self.lock:
            row = self.scopes.get(scope)
            if row is None:
                self.scopes[scope] = [start, end, 1, float(status == 429), slept]
            else:
                row[0], row[1] = min(row[0], start), max(row[1], end)
                row[2] += 1
                row[3] += status == 429
                row[4] += slept

    def dump(self) -> dict[str, dict[str, float]]:
        with self.lock:
            return {
                scope: {"first": r[0], "last": r[1], "calls": r[2], "throttled": r[3], "slept_s": round(r[4], 3)}
                for scope, r in self.scopes.items()
            }

    def clear(self) -> None:
        with self.lock:
            self.scopes.clear()


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        state: Any,
        latency: Latency | None = None,
    ) -> None:
        super().__init__(address, handler)
        self.state = state
        self.faults = FaultBook()
        self.latency = latency
        self.timing = Timing()


class JsonHandler(BaseHTTPRequestHandler):
    """Routes a request, applies armed faults around it, and answers JSON."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: without this, a delayed ACK each
    server: SandboxServer
    # the rest a route acts out itself
    kinds_before = frozenset({"status", "slow", "reset", "lost_answer", "drip", "echo", "junk"})

    # ---- to implement
    def route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, Any, dict]:
        raise NotImplementedError

    def scope_of(self, path: str) -> str:
        """The agreement or company the request is about (for scoped faults)."""
        return "*"

    # ---- plumbing
    def log_message(self, format: str, *args: Any) -> None:
        if os.environ.get("SANDBOX_VERBOSE"):
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        self._started = time.time()
        self._timed = False  # control calls take no latency and are not timed
        parts = urlsplit(self.path)
        path = parts.path
        query = parse_qs(parts.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.fault: FaultRule | None = None
        if path.startswith("/_control/"):
            self._control(method, path, body)
            return
        self._timed = True
        self._scope = self.scope_of(path)
        self._sent = length
        try:
            self._answer(method, path, parts.query, query, body)
        finally:
            self.server.timing.record(
                self._scope, self._started, time.time(), getattr(self, "_status", 0), getattr(self, "_slept", 0.0)
            )

    def _answer(self, method: str, path: str, raw_query: str, query: dict[str, list[str]], body: bytes) -> None:
        fault = self.server.faults.take(self.scope_of(path), method, path, kinds=self.kinds_before)
        if fault is not None:
            self.fault = fault
            if fault.kind == "status":
                headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                self.send_json(fault.status, self.fault_body(fault.status), headers)
                return
            if fault.kind == "echo":
                self.send_json(fault.status, self.echo_body(fault.status, method, raw_query))
                return
            if fault.kind == "reset":
                self._drop()
                return
            if fault.kind == "slow":
                time.sleep(fault.delay)
        try:
            status, payload, headers = self.route(method, path, query, body)
        except Reply as reply:
            status, payload, headers = reply.status, reply.body, reply.headers
        if fault is not None and fault.kind == "lost_answer":
            self._drop()
            return
        if fault is not None and fault.kind == "junk":
            count = len(payload) if isinstance(payload, list) else 1
            status, payload, headers = 200, [{"id": n, "status": "ok"} for n in range(count)], {}
        if fault is not None and fault.kind == "drip":
            self._drip(fault.delay, status, payload, headers)
            return
        self.send_json(status, payload, headers)

    def echo_body(self, status: int, method: str, query: str) -> Any:
        """An error body that repeats the request, its headers (tokens) included."""
        request = {"method": method, "path": self.path, "query": query, "headers": dict(self.headers.items())}
        body: dict[str, Any] = {
            "message": f"Upstream error {status} for {method} {self.path}; request was {request}",
            "httpStatusCode": status,
            "request": request,
        }
        if status == 400:  # as a validation error tree, so that it is kept with the rejected record
            body["errors"] = {
                "request": {
                    "errors": [{"errorCode": "E00400", "message": f"rejected: {request}", "value": request["headers"]}]
                }
            }
        return body

    def _drip(self, delay: float, status: int, payload: Any, headers: dict[str, str]) -> None:
        """Send the whole answer one byte at a time, ``delay`` seconds apart (stops when the client leaves)."""
        real, self.wfile = self.wfile, io.BytesIO()
        try:
            self.send_json(status, payload, headers)
            data = self.wfile.getvalue()
        finally:
            self.wfile = real
        self.close_connection = True
        try:
            for i in range(len(data)):
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
                time.sleep(delay)
        except OSError:
            pass

    def fault_body(self, status: int) -> Any:
        return {"message": f"Injected fault {status}", "httpStatusCode": status}

    def _drop(self) -> None:
        """Close the socket without a word: the client sees a reset / empty reply."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        if isinstance(payload, bytes | bytearray):
            data = bytes(payload)
            content_type = (headers or {}).pop("Content-Type", "application/octet-stream")
        else:
            data = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode()
            content_type = "application/json; charset=utf-8"
        self._status, self._slept = status, 0.0
        latency = self.server.latency
        if latency is not None and getattr(self, "_timed", False):
            due = latency.seconds(self._scope, self.command, self.path, self._sent + len(data))
            wait = self._started + due - time.time()
            if wait > 0:
                time.sleep(wait)
                self._slept = wait
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    def _control(self, method: str, path: str, body: bytes) -> None:
        """``/_control/faults`` (POST a rule, DELETE all, GET list) and the sandbox's own ``control()``."""
        data = json.loads(body) if body else {}
        if path == "/_control/faults":
            if method == "POST":
                rules = data if isinstance(data, list) else [data]
                try:
                    for rule in rules:
                        self.server.faults.add(FaultRule.from_json(rule))
                except (TypeError, ValueError) as exc:
                    self.send_json(400, {"error": str(exc)})
                    return
                self.send_json(201, {"armed": len(rules)})
            elif method == "DELETE":
                self.server.faults.clear(seed=data.get("seed") if isinstance(data, dict) else None)
                self.send_json(204, None)
            else:
                self.send_json(200, {"rules": self.server.faults.rules(), "log": self.server.faults.log})
            return
        if path == "/_control/health":
            self.send_json(200, {"ok": True})
            return
        if path == "/_control/latency":  # GET reads, POST sets (a Latency as JSON, or {} for none), DELETE: none
            try:
                if method == "POST":
                    self.server.latency = Latency.from_json(data) if data else None
                elif method == "DELETE":
                    self.server.latency = None
            except (TypeError, ValueError, re.error) as exc:
                self.send_json(400, {"error": str(exc)})
                return
            self.send_json(200, asdict(self.server.latency) if self.server.latency else {})
            return
        if path == "/_control/timing":  # GET: per scope {first, last, calls, throttled, slept_s}; DELETE resets
            if method == "DELETE":
                self.server.timing.clear()
            self.send_json(200, self.server.timing.dump())
            return
        try:
            status, payload = self.control(method, path.removeprefix("/_control/"), data)
        except Reply as reply:
            status, payload = reply.status, reply.body
        self.send_json(status, payload)

    def control(self, method: str, name: str, data: Any) -> tuple[int, Any]:
        raise Reply(404, {"error": f"no control endpoint {name}"})


def serve_in_thread(
    handler: type[JsonHandler], state: Any, host: str = "127.0.0.1", port: int = 0, latency: Latency | None = None
):
    """Start a sandbox inside this process (tests of the sandbox itself); returns the server."""
    server = SandboxServer((host, port), handler, state, latency)
    threading.Thread(target=server.serve_forever, daemon=True, name=handler.__name__).start()
    return server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(base_url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{base_url}/_control/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class SandboxProcess:
    """A sandbox started as its own process (``python -m sandboxes.<module> --port N ...``)."""

    def __init__(self, module: str, args: Sequence[str], port: int | None = None) -> None:
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.module = module
        self.args = list(args)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SandboxProcess:
        cmd = [sys.executable, "-m", self.module, "--port", str(self.port), *self.args]
        # the sandboxes are not installed: the child finds them where this process did
        path = [
            str(Path(__file__).resolve().parents[1]),
            *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep)),
        ]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(path))}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        try:
            wait_until_up(self.base_url)
        except OSError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def control(self, method: str, name: str, data: Any = None) -> Any:
        req = urllib.request.Request(
            f"{self.base_url}/_control/{name}",
            method=method,
            data=None if data is None else json.dumps(data).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None
