"""Airflow hooks for e-conomic and Roger: connection types, their form, and the Connections page's Test button.

What the hooks own, and what they do not
----------------------------------------
The hooks define the two connection types (``economic``, ``roger``) Airflow lists on its Connections page, the
form's fields (relabelled: agreement grant token, app secret token, app public token; Roger API token and company
id), and ``test_connection()`` (e-conomic's ``GET /self``, Roger's ``GET /companies/{id}``), so the Test button says
whether a token works before a run finds out. The onboarding pages (``roger_economic_ui.onboarding``) make the
same checks with the pipeline's clients, since a token being onboarded is in no connection yet, and read the app
secret as :meth:`EconomicHook.app_secret` does.

The data path does not use them. The pipeline's clients (``roger_economic.http.ApiCaller``) keep one pooled
urllib3 connection per host for thousands of calls per run, with their own retry policy (Retry-After, idempotency
keys), per-call deadlines and the redaction of tokens from every error; an ``HttpHook`` builds a new
``requests.Session`` per ``run()`` (and looks the connection up again) and logs a failed answer's body at ERROR
level, so a call through a hook costs several times one through the pooled client (figures in CHANGELOG.md).
The tasks take the base URLs and
token references from the same connections (``roger_economic_airflow.runtime``), so a connection defined here is
the one the pipeline uses.

Secrets stay out of headers-by-accident and logs: ``HttpHook`` turns every connection extra it does not know into
an HTTP header, so the hooks drop their own extras (the app secret among them) from the session and send the
tokens only in the headers e-conomic and Roger document; ``check_response`` is replaced by one that raises with the
status alone (an error body may repeat the request, tokens included).

Airflow 3.3 reads the form declaratively (``conn-fields`` / ``ui-field-behaviour`` in
:func:`roger_economic_airflow.provider.get_provider_info`, registered as the ``apache_airflow_provider`` entry point
in pyproject.toml); ``get_ui_field_behaviour``/``connection_fields`` below are that declaration's one source.
Hook classes that define ``get_connection_form_widgets`` need wtforms, which Airflow 3 no longer installs.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.http.hooks.http import HttpHook

from roger_economic.settings import environment
from roger_economic_airflow.provider import ECONOMIC_FORM, ROGER_FORM, ui_field_behaviour

ECONOMIC_BASE_URL = "https://restapi.e-conomic.com"
ECONOMIC_APP_CONN = "economic_default"


def form_field(conn: Any, conn_type: str, name: str) -> str:
    """A form field's value: Airflow 3's form stores ``name``, older ones ``extra__<type>__<name>``."""
    extra = conn.extra_dejson if conn is not None else {}
    return str(extra.get(name) or extra.get(f"extra__{conn_type}__{name}") or "")


class _TokenHttpHook(HttpHook):
    """An ``HttpHook`` whose own extras never become headers and whose errors never log an answer's body."""

    own_extras: tuple[str, ...] = ()
    default_timeout = 20

    def __init__(self, conn_id: str, method: str = "GET", **kwargs: Any) -> None:
        super().__init__(method=method, http_conn_id=conn_id, **kwargs)

    def token_headers(self, conn: Any) -> dict[str, str]:
        raise NotImplementedError

    def get_conn(self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None) -> Any:
        session = super().get_conn(None, extra_options)
        for key in list(session.headers):
            if key in self.own_extras or key.startswith("extra__"):
                del session.headers[key]
        session.auth = None  # no basic auth from login/password: the token goes in its documented header
        session.headers.update({"Accept": "application/json", **self.token_headers(self.connection)})
        if headers:
            session.headers.update(headers)
        return session

    @property
    def connection(self) -> Any:
        return self.get_connection(self.http_conn_id)

    def check_response(self, response: Any) -> None:
        if response.status_code >= 400:
            from airflow.exceptions import AirflowException

            raise AirflowException(f"{response.status_code}: {response.reason}")

    def get_json(self, endpoint: str) -> Any:
        return self.run(endpoint, extra_options={"timeout": self.default_timeout}).json()


class EconomicHook(_TokenHttpHook):
    """e-conomic's REST API for one agreement: the connection's password is the agreement grant token.

    The app secret (one for the firm) is the connection's ``app_secret_token`` field, else ``economic_default``'s
    (its field, or its password, which is where the pipeline has always read it), else
    ``$ECONOMIC_APP_SECRET_TOKEN``. ``app_public_token`` (the installation URL's ``appPublicToken``) is read from
    ``economic_default`` by the onboarding page.
    """

    conn_name_attr = "economic_conn_id"
    default_conn_name = ECONOMIC_APP_CONN
    conn_type = ECONOMIC_FORM["connection-type"]
    hook_name = ECONOMIC_FORM["hook-name"]
    default_host = ECONOMIC_BASE_URL
    own_extras = ("app_secret_token", "app_public_token", "approval_base_url")

    def __init__(self, economic_conn_id: str = ECONOMIC_APP_CONN, method: str = "GET", **kwargs: Any) -> None:
        super().__init__(economic_conn_id, method, **kwargs)
        self.economic_conn_id = economic_conn_id

    @classmethod
    def connection_fields(cls) -> dict[str, Any]:
        return ECONOMIC_FORM["conn-fields"]

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return ui_field_behaviour(ECONOMIC_FORM)

    def app_secret(self, conn: Any) -> str:
        own = form_field(conn, self.conn_type, "app_secret_token")
        if own:
            return own
        if self.http_conn_id != ECONOMIC_APP_CONN:
            try:
                app = self.get_connection(ECONOMIC_APP_CONN)
            except Exception:  # not defined: the environment's
                app = None
            if app is not None:
                return form_field(app, self.conn_type, "app_secret_token") or str(app.password or "")
        elif conn is not None and conn.password:
            return str(conn.password)  # economic_default without the field: its password is the app secret
        return environment().app_secret_token or ""

    def grant_token(self, conn: Any) -> str:
        if self.http_conn_id == ECONOMIC_APP_CONN and not form_field(conn, self.conn_type, "app_secret_token"):
            return ""  # its password is the app secret (see app_secret), not a grant
        return str(conn.password or "") if conn is not None else ""

    def token_headers(self, conn: Any) -> dict[str, str]:
        return {"X-AppSecretToken": self.app_secret(conn), "X-AgreementGrantToken": self.grant_token(conn)}

    def agreement(self) -> dict[str, Any]:
        """``GET /self``: agreement number, company, base currency, modules."""
        return self.get_json("self")

    def test_connection(self) -> tuple[bool, str]:
        conn = self.connection
        if not self.grant_token(conn):
            return False, (
                "No agreement grant token: this connection holds the app; test a client's connection "
                "(or put the app secret in the 'App secret token' field and a grant in the password)."
            )
        if not self.app_secret(conn):
            return False, "No app secret token (the field, economic_default or $ECONOMIC_APP_SECRET_TOKEN)."
        try:
            me = self.agreement()
        except Exception as exc:
            return False, f"e-conomic refused GET /self: {exc}"
        company = (me.get("company") or {}).get("name", "?")
        return (
            True,
            f"Agreement {me.get('agreementNumber')} ({company}), base currency "
            f"{(me.get('settings') or {}).get('baseCurrency', '?')}.",
        )


class RogerHook(_TokenHttpHook):
    """Roger's API for one business account: password = its API token (Bearer), ``company_id`` = the company."""

    conn_name_attr = "roger_conn_id"
    default_conn_name = "roger_default"
    conn_type = ROGER_FORM["connection-type"]
    hook_name = ROGER_FORM["hook-name"]
    own_extras = ("company_id",)

    def __init__(self, roger_conn_id: str = "roger_default", method: str = "GET", **kwargs: Any) -> None:
        super().__init__(roger_conn_id, method, **kwargs)
        self.roger_conn_id = roger_conn_id

    @classmethod
    def connection_fields(cls) -> dict[str, Any]:
        return ROGER_FORM["conn-fields"]

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return ui_field_behaviour(ROGER_FORM)

    def token_headers(self, conn: Any) -> dict[str, str]:
        token = str(conn.password or "") if conn is not None else ""
        return {"Authorization": f"Bearer {token}"} if token else {}

    def company(self, company_id: str | None = None) -> dict[str, Any]:
        """``GET /companies/{id}``: the business account (id, name, base currency)."""
        from urllib.parse import quote

        cid = company_id or form_field(self.connection, self.conn_type, "company_id")
        return self.get_json(f"companies/{quote(cid, safe='')}")

    def test_connection(self) -> tuple[bool, str]:
        conn = self.connection
        if not conn.password:
            return False, "No Roger API token (the password field)."
        if not form_field(conn, self.conn_type, "company_id"):
            return False, "No Roger company id: the token is checked against GET /companies/{id}."
        try:
            company = self.company()
        except Exception as exc:
            return False, f"Roger refused GET /companies/{{id}}: {exc}"
        return True, f"Roger company {company.get('id')}: {company.get('name')}."
