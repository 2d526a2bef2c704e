"""The API's errors as a person reads them: ``errors.<code>`` and ``problems.<kind>`` of the catalogues.

The API answers ``{"error": {"code", "message", "details"?}}``; ``message`` is English for the developer. A
console (or any server-side code that shows an error to a person) shows instead the catalogue's sentence for
the code, in zh-CN (the default) or English, filled from ``details``::

    error_text("zh-CN", "points.insufficient", {"balance": 3, "required": 10})   # 积分不足：可用 3 分，需要 10 分

and, for ``request.invalid`` / ``request.invalid_query``, one text per field from ``details.problems``
(``[{"field", "problem", "kind", "limit"?}]``, mallapp.api.core._problems)::

    field_texts("zh-CN", details)   # {"amount_fen": "必须大于 0"}

A code without a text falls back to the caller's ``fallback`` (the API's English message) or the code; a
problem whose ``kind`` has no text falls back to its English ``problem``: a gap shows, it never fails.
The texts live in mallapp/locales/<locale>/errors.toml and problems.toml (their headers list the ``details``
keys a text may name); tests/unit/test_error_texts.py holds every code and kind to a text in both locales.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mallapp import i18n

__all__ = ["APP_CODES", "OWN_KINDS", "error_text", "field_texts", "problem_text"]

# Codes the app answers without raising them by code (mallapp.api.app's handlers), so the error index does not
# list them: an unexpected failure, and the Werkzeug refusals a console can meet (an unknown URL, a method the
# URL does not take). Their texts are in errors.toml with the indexed ones.
APP_CODES: tuple[str, ...] = ("internal", "http.not_found", "http.method_not_allowed")

# Problem kinds the API sets itself, besides pydantic's error types: a key twice in one object
# (api.core), null sent to clear a field that cannot be cleared (the PATCH endpoints), a query bound that is
# neither a day nor an aware instant (api.parking_reports).
OWN_KINDS: tuple[str, ...] = ("duplicate_key", "null_not_allowed", "day_or_instant")


def _scalars(values: Mapping[str, Any] | None) -> dict[str, Any]:
    # Only plain values fill a placeholder; a list or an object in details is for the program, not the sentence.
    return {key: value for key, value in (values or {}).items()
            if isinstance(value, str | int | float) and not isinstance(value, bool)}


def error_text(locale: str | None, code: str, details: Mapping[str, Any] | None = None, *,
               fallback: str | None = None) -> str:
    """The sentence for the error ``code`` in ``locale`` (zh-CN when None), its placeholders filled from
    ``details``; ``fallback`` (else the code) when no catalogue has the code."""
    key = f"errors.{code}"
    if not i18n.has(key, i18n.normalise(locale) or i18n.DEFAULT) and not i18n.has(key):
        return fallback if fallback is not None else code
    return i18n.t(locale, key, **_scalars(details))


def problem_text(locale: str | None, problem: Mapping[str, Any]) -> str:
    """What is wrong with one field (an entry of ``details.problems``): ``problems.<kind>`` with its ``{limit}``,
    or the English ``problem`` when the kind has no text (or the problem no kind)."""
    kind = problem.get("kind")
    key = f"problems.{kind}"
    if not isinstance(kind, str) or not (i18n.has(key, i18n.normalise(locale) or i18n.DEFAULT) or i18n.has(key)):
        return str(problem.get("problem", ""))
    limit = problem.get("limit")
    return i18n.t(locale, key, **({} if limit is None else {"limit": limit}))


def field_texts(locale: str | None, details: Mapping[str, Any] | None) -> dict[str, str]:
    """Field -> text for every problem in ``details.problems`` (two problems of one field are joined by "; ",
    in Chinese by "；")."""
    joiner = "；" if (i18n.normalise(locale) or i18n.DEFAULT) == "zh-CN" else "; "
    out: dict[str, str] = {}
    for problem in (details or {}).get("problems") or ():
        if not isinstance(problem, Mapping) or "field" not in problem:
            continue
        text = problem_text(locale, problem)
        field = str(problem["field"])
        out[field] = f"{out[field]}{joiner}{text}" if field in out else text
    return out
