"""The booking rules (:mod:`roger_economic.rules`) as one Great Expectations suite, run once over a whole
group's frame.

Each expectation carries its rule's name; the rule says its severity (``stop`` or ``warn``),
which entry it guards (``invoice`` or ``payment``) and the column that holds
the offending value. The result is turned into one :class:`Finding` per
failing bill and rule. ``great_expectations`` is imported here, inside the
function that runs it, never at DAG parse time.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pandas as pd

from roger_economic.model import Finding
from roger_economic.rules import RULES, RULES_BY_NAME


def _suite_expectations(gx: Any) -> list[Any]:
    return [rule.expectation(gx) for rule in RULES]


def run(frame: pd.DataFrame, docs: DataDocs | None = None) -> list[Finding]:
    """Validate the bookable rows of a prepared frame; one finding per failing bill and rule."""
    rows = frame[frame.action.eq("book")].copy()
    if rows.empty:
        return []
    rows["bill_key"] = rows.agreement_id.astype(str) + "|" + rows.bill_id.astype(str)
    checked = rows[["row_key", "bill_key", *{r.column for r in RULES if r.check is not None}]].astype(str)
    if docs is not None:  # GX writes the values it reports into the Data Docs HTML as they are
        checked = _html_text(checked)
    result = _validate(checked, docs)
    # the failing rows looked up in plain columns: a pandas row lookup per hit would cost more than the rest
    position = {key: i for i, key in enumerate(checked.row_key.tolist())}
    wanted = {"agreement_id", "bill_id", "version", *(c for r in RULES for c in (r.column, r.value))}
    column = {c: rows[c].tolist() for c in wanted}
    findings: list[Finding] = []
    seen: set[tuple[str, str, str]] = set()
    for res in result.results:
        if res.success:
            continue
        rule = RULES_BY_NAME[res.expectation_config.meta["rule"]]
        for hit in res.result.get("unexpected_index_list") or []:
            at = position[hit["row_key"]]
            row = {c: values[at] for c, values in column.items()}
            once = (str(row["agreement_id"]), str(row["bill_id"]), rule.name)
            if once in seen:  # a bill twice in the batch: one finding, not one per copy
                continue
            seen.add(once)
            status = row[rule.column]
            value = row[rule.value]
            once_only = f"bill {row['bill_id']} appears more than once in the batch"
            message = once_only if rule.check is None else str(status)
            findings.append(
                Finding(
                    agreement_id=row["agreement_id"],
                    bill_id=str(row["bill_id"]),
                    version=int(row["version"]) if row["version"] is not None else None,
                    rule=rule.name,
                    severity=str(rule.severity),
                    entry=str(rule.entry),
                    value=None if value is None else str(value),
                    message=message,
                )
            )
    return findings


def _html_text(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with Roger text HTML-escaped, so a Data Docs page shows it as text and never as markup.

    Escaping is one-to-one, so the statuses stay ``ok``/``n/a``, duplicates stay duplicates and each escaped
    ``row_key`` still names one row. Only the cells that need it are touched (most are ``ok``).
    """
    out = frame.copy()
    for column in out.columns:
        needs = out[column].str.contains(r'[<>&"]', regex=True)
        if needs.any():
            out.loc[needs, column] = out.loc[needs, column].map(_escape)
    return out


def _escape(text: str) -> str:
    """``<``, ``>``, ``&`` and ``"`` (GX's attributes are double-quoted); ``'`` stays readable in the page source."""
    return html.escape(text, quote=False).replace('"', "&quot;")


def _validate(frame: pd.DataFrame, docs: DataDocs | None = None) -> Any:
    """One validation of the whole frame; with ``docs``, also Great Expectations Data Docs for it."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("roger_bills")
    batch = source.add_dataframe_asset("bills").add_batch_definition_whole_dataframe("run")
    # the suite built whole, then stored once (adding expectations one by one re-saves it each time)
    suite = context.suites.add(gx.ExpectationSuite(name="booking_rules", expectations=_suite_expectations(gx)))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="booking_rules", data=batch, suite=suite)
    )
    result_format = {"result_format": "COMPLETE", "unexpected_index_column_names": ["row_key"]}
    if docs is None:
        return definition.run(batch_parameters={"dataframe": frame}, result_format=result_format)
    from great_expectations.core.run_identifier import RunIdentifier

    site: Any = {  # GX's SiteBuilder takes section builders too, which its TypedDict does not name
        "class_name": "SiteBuilder",
        "store_backend": {**_ours("KeepingStoreBackend"), "base_directory": str(docs.directory)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder", "view": _ours("CachedIndexPageView")},
        "site_section_builders": {
            section: {"view": _ours("CachedPageView")} for section in ("expectations", "validations", "profiling")
        },
    }
    context.add_data_docs_site(site_name="roger_economic", site_config=site)
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name="booking_rules",
            validation_definitions=[definition],
            result_format=result_format,
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["roger_economic"])],
        )
    )
    outcome = checkpoint.run(batch_parameters={"dataframe": frame}, run_id=RunIdentifier(run_name=docs.run_name))
    result_id, result = next(iter(outcome.run_results.items()))
    # this validation's own page, by its identifier (a retried task's earlier page has the same run name)
    urls = context.get_docs_sites_urls(resource_identifier=result_id, site_name="roger_economic")
    url = urls[0].get("site_url") if urls else None
    docs.page = Path(unquote(url.removeprefix("file://"))) if url else None
    return result


def _ours(name: str) -> dict[str, str]:
    """A Data Docs site part of :mod:`roger_economic.data_docs_site` (pages kept, templates compiled once)."""
    return {"module_name": "roger_economic.data_docs_site", "class_name": name}


@dataclass
class DataDocs:
    """Where to write the run's Data Docs, and (after the run) the page of this validation."""

    directory: Path
    run_name: str
    page: Path | None = None
