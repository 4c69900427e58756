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
HOOKS = "roger_economic_airflow.hooks"

# The two connection forms, as plain data: ProvidersManager calls get_provider_info() while Airflow itself is
# still being imported, so this module imports nothing of Airflow's (the hooks read their forms from here).
ECONOMIC_FORM: dict[str, Any] = {
    "connection-type": "economic",
    "hook-class-name": f"{HOOKS}.EconomicHook",
    "hook-name": "e-conomic",
    "conn-fields": {
        "app_secret_token": {
            "label": "App secret token (X-AppSecretToken)",
            "schema": {"type": ["string", "null"], "format": "password"},
            "description": "The app's secret token, one for the firm. Empty: economic_default's.",
        },
        "app_public_token": {
            "label": "App public token",
            "schema": {"type": ["string", "null"]},
            "description": "The installation URL's appPublicToken (on economic_default).",
        },
    },
    "ui-field-behaviour": {
        "hidden-fields": ["login", "schema", "port"],
        "relabeling": {"host": "REST base URL", "password": "Agreement grant token (X-AgreementGrantToken)"},
        "placeholders": {"host": "https://restapi.e-conomic.com"},
    },
}
ROGER_FORM: dict[str, Any] = {
    "connection-type": "roger",
    "hook-class-name": f"{HOOKS}.RogerHook",
    "hook-name": "Roger",
    "conn-fields": {
        "company_id": {
            "label": "Roger company id",
            "schema": {"type": ["string", "null"]},
            "description": "The business account the token belongs to (GET /companies/{id}).",
        }
    },
    "ui-field-behaviour": {
        "hidden-fields": ["login", "schema", "port"],
        "relabeling": {"host": "API base URL", "password": "Roger API token"},
        "placeholders": {"host": "https://api.roger.example/v1"},
    },
}


def ui_field_behaviour(form: dict[str, Any]) -> dict[str, Any]:
    """A form's behaviour as a hook's ``get_ui_field_behaviour`` answers it."""
    b = form["ui-field-behaviour"]
    return {"hidden_fields": b["hidden-fields"], "relabeling": b["relabeling"], "placeholders": b["placeholders"]}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": PACKAGE_NAME,
        "name": "Roger → e-conomic",
        "description": "Books Roger bills into e-conomic journals: the e-conomic and Roger connection types.",
        "versions": ["0.1.0"],
        "connection-types": [ECONOMIC_FORM, ROGER_FORM],
    }
