"""Airflow plugin: the "Roger → e-conomic" page in the Airflow UI.

The api-server mounts :data:`roger_economic_ui.app.app` under ``/roger-economic``
(``fastapi_apps``) and the UI shows a nav entry (``external_views``, in the
"Browse" menu) that opens it inside Airflow at ``/plugin/roger-economic``. The
pages are behind Airflow's login and permissions (see ``app.py``).

Airflow's plugin loader executes every ``.py`` file of the plugins folder on
its own, so this file imports through the package (the plugins folder is on
``sys.path``) and only this module defines the plugin class.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from airflow.configuration import conf
from airflow.plugins_manager import AirflowPlugin

from roger_economic_ui.app import app as roger_economic_app

URL_PREFIX = "/roger-economic"


def _href() -> str:
    """The app's address as the browser sees it (honours ``[api] base_url`` with a path)."""
    root = urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")
    return f"{root}{URL_PREFIX}/"


class RogerEconomicUIPlugin(AirflowPlugin):
    name = "roger_economic_ui"
    # typed as AirflowPlugin declares them; Airflow reads them from the class
    fastapi_apps: list[Any] = [  # noqa: RUF012
        {"app": roger_economic_app, "url_prefix": URL_PREFIX, "name": "Roger → e-conomic"},
    ]
    external_views: list[Any] = [  # noqa: RUF012
        {
            "name": "Roger → e-conomic",
            "href": _href(),
            "url_route": "roger-economic",
            "destination": "nav",
            "category": "browse",
        }
    ]
