"""Where tokens come from: references resolved at run time, never stored.

An agreement names its tokens as ``env:VARIABLE`` or ``conn:CONNECTION_ID``;
the DAG layer passes a look-up for Airflow connections, so this package never
imports Airflow. The resolved values live only in the HTTP sessions' headers.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from roger_economic.errors import ConfigError
from roger_economic.settings import environment

ConnLookup = Callable[[str], str | None]


def resolve(ref: str, conn_lookup: ConnLookup | None = None) -> str:
    if ref.startswith("env:"):
        value = os.environ.get(ref[4:])
        if not value:
            raise ConfigError(f"token reference {ref} is not set in the environment")
        return value
    if ref.startswith("conn:"):
        if conn_lookup is None:
            raise ConfigError(f"token reference {ref} needs an Airflow connection look-up")
        value = conn_lookup(ref[5:])
        if not value:
            raise ConfigError(f"token reference {ref}: connection has no password")
        return value
    raise ConfigError("a token reference must start with env: or conn:")


@dataclass(frozen=True)
class Endpoints:
    """Base URLs and the firm-wide app secret; per-agreement tokens resolved on demand."""

    roger_base_url: str
    economic_base_url: str
    app_secret_ref: str = "env:ECONOMIC_APP_SECRET_TOKEN"
    conn_lookup: ConnLookup | None = field(default=None, compare=False)

    def token(self, ref: str) -> str:
        return resolve(ref, self.conn_lookup)

    @property
    def app_secret(self) -> str:
        return resolve(self.app_secret_ref, self.conn_lookup)

    @classmethod
    def from_env(cls, conn_lookup: ConnLookup | None = None) -> Endpoints:
        return cls(
            roger_base_url=environment().roger_base_url or "http://127.0.0.1:8081/v1",
            economic_base_url=environment().economic_base_url or "http://127.0.0.1:8082",
            conn_lookup=conn_lookup,
        )
