"""The project as an Airflow provider: registers the ``economic`` and ``roger`` connection types.

pyproject.toml names :func:`get_provider_info` as the ``apache_airflow_provider`` entry point; Airflow's
ProvidersManager validates the answer against ``provider_info.schema.json`` (``name``, ``description``; each
``connection-types`` item ``connection-type`` + ``hook-class-name``) and requires ``package-name`` to equal the
installed distribution's name. The form is declared here (``conn-fields``, ``ui-field-behaviour``), which Airflow
3.3 reads without importing the hooks.
"""

from __future__ import annotations

from typing import Any

PACKAGE_NAME = "roger-economic"  # pyproject.toml [project] name


def _behaviour(hook: Any) -> dict[str, Any]:
    b = hook.get_ui_field_behaviour()
    return {"hidden-fields": b["hidden_fields"], "relabeling": b["relabeling"], "placeholders": b["placeholders"]}


def get_provider_info() -> dict[str, Any]:
    from roger_economic_airflow.hooks import EconomicHook, RogerHook

    return {
        "package-name": PACKAGE_NAME,
        "name": "Roger → e-conomic",
        "description": "Books Roger bills into e-conomic journals: the e-conomic and Roger connection types.",
        "versions": ["0.1.0"],
        "connection-types": [
            {
                "connection-type": hook.conn_type,
                "hook-class-name": f"{hook.__module__}.{hook.__name__}",
                "hook-name": hook.hook_name,
                "conn-fields": hook.connection_fields(),
                "ui-field-behaviour": _behaviour(hook),
            }
            for hook in (EconomicHook, RogerHook)
        ],
    }
