"""Typed failures that say which agreement, endpoint and field failed, never a token."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

REDACTED = "***"

# What a token looks like in an echoed request: a secret header (as a header line, a JSON key or a Python
# dict repr), a bearer credential, a token query parameter. Their values go, whatever the token is.
_SECRET_NAMES = r"x-appsecrettoken|x-agreementgranttoken|authorization|proxy-authorization|[a-z_-]*token|api[_-]?key"
_NAMED_SECRET = re.compile(
    rf"""(?ix)
    (?P<name>\b(?:{_SECRET_NAMES}))      # the name
    (?P<sep>["']?\s*[:=]\s*["']?)        # : or = and maybe a quote
    (?:bearer\s+|basic\s+)?             # a scheme is kept out of the value
    (?P<value>[^\s"',;&}}\]]+)          # the value, up to a delimiter
    """
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")


def database_error(exc: BaseException) -> str:
    """The database's own first line (``connection … refused``), never the SQL or its parameters."""
    orig = getattr(exc, "orig", None) or exc
    first = (str(orig).strip().splitlines() or [""])[0]
    return f"{type(orig).__name__}: {first[:200]}"


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret value and anything that looks like a token replaced by ``***``.

    A remote service may echo the request (its headers, its token) in an error body; what we keep of it goes
    into logs, run reports, agreement status and posting rows, so it is scrubbed here, once.
    """
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = re.sub(re.escape(secret), REDACTED, text, flags=re.IGNORECASE)
    text = _NAMED_SECRET.sub(lambda m: f"{m['name']}{m['sep']}{REDACTED}" if m["value"] != REDACTED else m[0], text)
    return _BEARER.sub(lambda m: f"{m[1]} {REDACTED}", text)


def scrub_details(details: Any, secrets: Iterable[str] = ()) -> Any:
    """A parsed error body with every string in it scrubbed (keys included)."""
    secrets = tuple(secrets)
    if isinstance(details, str):
        return scrub(details, secrets)
    if isinstance(details, dict):
        return {
            scrub(str(k), secrets) if isinstance(k, str) else k: scrub_details(v, secrets) for k, v in details.items()
        }
    if isinstance(details, list | tuple):
        return [scrub_details(v, secrets) for v in details]
    return details


class IntegrationError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(IntegrationError):
    """The agreements file or the connection settings are wrong."""


class ApiError(IntegrationError):
    """A remote API answered with an error after the retries were spent."""

    def __init__(
        self,
        service: str,
        agreement: str,
        method: str,
        endpoint: str,
        status: int | None,
        message: str,
        details: Any = None,
        *,
        secrets: Iterable[str] = (),
    ) -> None:
        secrets = tuple(secrets)  # the caller's token values: never part of a message or of the details kept
        message = scrub(str(message), secrets)
        details = scrub_details(details, secrets)
        self.service = service
        self.agreement = agreement
        self.method = method
        self.endpoint = endpoint
        self.status = status
        self.details = details
        where = f"{service} {method} {endpoint} for agreement {agreement}"
        super().__init__(f"{where}: {status or 'no answer'}: {message}")


class AuthError(ApiError):
    """401/403: the token was rejected; the whole agreement stops."""


class NotFound(ApiError):
    """404."""


class RateLimited(ApiError):
    """429 for longer than the retry budget allows."""


class Unreachable(ApiError):
    """No answer at all (reset, timeout) after the retries were spent."""


class AnswerLost(Unreachable):
    """An answer came but does not match what was sent (a voucher without its number, a count that differs).

    Treated as a lost answer: what was sent may have been created, so the rows stay ``posting`` and the next
    load's recovery looks them up in e-conomic instead of recording numbers that are not there.
    """


class ValidationRejected(ApiError):
    """e-conomic answered 400 with an errors tree; ``fields`` lists (path, code, message, value)."""

    @property
    def fields(self) -> list[tuple[str, str, str, Any]]:
        found: list[tuple[str, str, str, Any]] = []

        def walk(node: Any, path: str) -> None:
            if isinstance(node, dict):
                for err in node.get("errors", []) if isinstance(node.get("errors"), list) else []:
                    found.append((path, err.get("errorCode", ""), err.get("message", ""), err.get("value")))
                for key, child in node.items():
                    if key in ("errors", "arrayIndex") and not isinstance(child, dict):
                        continue
                    walk(child, f"{path}.{key}" if path else key)
            elif isinstance(node, list):
                for i, child in enumerate(node):
                    idx = child.get("arrayIndex", i) if isinstance(child, dict) else i
                    walk(child, f"{path}[{idx}]")

        walk((self.details or {}).get("errors", {}), "")
        return found


class AgreementStopped(IntegrationError):
    """An agreement-level stop: token rejected, journal missing or restricted, no mapping at all."""

    def __init__(self, agreement: str, reason: str) -> None:
        self.agreement = agreement
        self.reason = reason
        super().__init__(f"agreement {agreement} stopped: {reason}")


class RecordsUnusable(IntegrationError):
    """Roger records without a usable id or version: they cannot be held per bill, so they are named.

    The agreement's other bills are staged; its extract outcome is ``incomplete`` (named in the run
    report and its alert) and its watermark stays, so the records are read (and named) again until
    Roger sends them whole.
    """

    MAX_NAMED = 10

    def __init__(self, agreement: str, named: list[str], counts: dict[str, Any]) -> None:
        self.named, self.counts = named, {**counts, "unusable_records": len(named)}
        shown = ", ".join(named[: self.MAX_NAMED]) + (
            f" and {len(named) - self.MAX_NAMED} more" if len(named) > self.MAX_NAMED else ""
        )
        super().__init__(f"{len(named)} Roger record(s) without a usable id or version were not staged: {shown}")
