"""Typed failures that say which agreement, endpoint and field failed, never a token."""

from __future__ import annotations

from typing import Any


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
    ) -> None:
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
