"""The parts of our Great Expectations Data Docs site that differ from GX's defaults.

Every group's validation runs in a fresh ephemeral GX context that knows only its own
result, and writes into the one shared site the UI serves:

* :class:`KeepingStoreBackend`: GX's site builder deletes every page whose result its
  context does not hold, so each validation deleted the pages of the groups validated
  before it (the run report and the UI linked to pages that were gone). Pages are kept.
* :class:`CachedPageView`, :class:`CachedIndexPageView`: GX builds a fresh Jinja
  environment for every page, so each validation would compile the same templates again
  (costing as much as the validation itself). These are GX's
  own views with Jinja's file bytecode cache (keyed by template and source checksum, in a
  per-user directory under the system's temp dir).

Named in the site config of :func:`roger_economic.validation._validate` and loaded by GX
when it builds the site, never at DAG parse time.
"""

from __future__ import annotations

import contextlib
from typing import Any

import jinja2
from great_expectations.data_context.store import TupleFilesystemStoreBackend
from great_expectations.render.view import DefaultJinjaIndexPageView, DefaultJinjaPageView
from jinja2.bccache import Bucket


class _CompiledTemplates(jinja2.FileSystemBytecodeCache):
    """Jinja's file cache, named by Jinja's version (its header names only Python's); a template it
    cannot write (a full disk, a temp directory cleaned under a long-lived worker) is compiled again
    next time instead of failing the page."""

    def dump_bytecode(self, bucket: Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


def _compiled_templates() -> jinja2.BytecodeCache | None:
    try:
        return _CompiledTemplates(pattern=f"__jinja2_{jinja2.__version__}_%s.cache")
    except (OSError, RuntimeError):  # no usable temp directory: pages are built as GX builds them
        return None


_COMPILED = _compiled_templates()


class KeepingStoreBackend(TupleFilesystemStoreBackend):
    """The site's files; a page is never deleted because the current context lacks its result."""

    def remove_key(self, key: Any) -> None:
        return None


class CachedPageView(DefaultJinjaPageView):
    """A validation or expectation-suite page."""

    def __init__(self, custom_styles_directory: str | None = None, custom_views_directory: str | None = None) -> None:
        super().__init__(custom_styles_directory, custom_views_directory)
        self.env.bytecode_cache = _COMPILED


class CachedIndexPageView(DefaultJinjaIndexPageView):
    """The site's index page (it lists the validation just run)."""

    def __init__(self, custom_styles_directory: str | None = None, custom_views_directory: str | None = None) -> None:
        super().__init__(custom_styles_directory, custom_views_directory)
        self.env.bytecode_cache = _COMPILED
