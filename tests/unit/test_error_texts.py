"""Every API error code and every field problem has a sentence in zh-CN and English, filled only from what the
API gives in ``details``; the helper that picks and fills them."""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import typing
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import pydantic_core
import pytest
from pydantic import AwareDatetime, Field, StringConstraints, ValidationError

import mallapp
import mallapp.api
from mallapp import i18n
from mallapp.api.core import Body, Query, _problems
from mallapp.api.error_index import error_index
from mallapp.api.error_texts import APP_CODES, OWN_KINDS, error_text, field_texts, problem_text

LOCALES = i18n.LOCALES
ROOT = Path(mallapp.__file__).resolve().parent.parent  # sites are "mallapp/api/core.py:12"


def _area(catalogue: dict[str, str] | Any, area: str) -> set[str]:
    prefix = f"{area}."
    return {key[len(prefix):] for key in catalogue if key.startswith(prefix)}


# --- error codes ------------------------------------------------------------------------------------

@pytest.mark.parametrize("locale", LOCALES)
def test_every_error_code_has_a_text(locale):
    texts = _area(i18n.catalogue(locale), "errors")
    missing = [f"{code} (raised at {', '.join(error_index().sites[code][:2])}): add errors.{code} to a catalogue "
               f"under mallapp/locales/{locale}/" for code in sorted(error_index().classes) if code not in texts]
    assert missing == [], "error codes without a text:\n" + "\n".join(missing)


@pytest.mark.parametrize("locale", LOCALES)
def test_no_text_names_a_code_that_is_gone(locale):
    known = set(error_index().classes) | set(APP_CODES)
    stale = sorted(f"errors.{code} in mallapp/locales/{locale}/: nothing raises {code!r} any more; remove it"
                   for code in _area(i18n.catalogue(locale), "errors") - known)
    assert stale == []


def test_the_app_codes_are_the_handlers_and_not_in_the_index():
    # They are answered by mallapp.api.app's handlers, which the error index does not read.
    assert set(APP_CODES).isdisjoint(error_index().classes)
    source = (ROOT / "mallapp/api/app.py").read_text(encoding="utf-8")
    assert 'code="internal"' in source and 'code=f"http.{code}"' in source


def _details_keys(call: ast.Call, function: ast.AST | None) -> frozenset[str] | None:
    """The keys of the call's ``details=`` (a dict literal, or a name bound to one in the same function), an
    empty set when it has none, None when they cannot be read."""
    value = next((k.value for k in call.keywords if k.arg == "details"), None)
    if value is None:
        return frozenset()
    if isinstance(value, ast.Name) and function is not None:
        bound = [node.value for node in ast.walk(function) if isinstance(node, ast.Assign)
                 and any(isinstance(t, ast.Name) and t.id == value.id for t in node.targets)]
        value = bound[0] if len(bound) == 1 else value
    if isinstance(value, ast.Dict) and all(isinstance(k, ast.Constant) for k in value.keys):
        return frozenset(k.value for k in value.keys)  # type: ignore[union-attr]
    return None


@cache
def _tree(path: str) -> ast.Module:
    return ast.parse((ROOT / path).read_text(encoding="utf-8"))


def _calls_at(path: str, line: int) -> Iterator[tuple[ast.Call, ast.AST | None]]:
    tree = _tree(path)
    functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.lineno == line and any(k.arg == "code" for k in node.keywords):
            inside = [f for f in functions if f.lineno <= line <= (f.end_lineno or f.lineno)]
            yield node, (inside[-1] if inside else None)


def _given_by_every_raise(code: str) -> frozenset[str]:
    """The details keys that every place raising ``code`` gives (none when one of them cannot be read)."""
    given: frozenset[str] | None = None
    for site in error_index().sites[code]:
        path, _, line = site.rpartition(":")
        if not line.isdigit():  # an error class's own code: raised without details somewhere
            return frozenset()
        calls = list(_calls_at(path, int(line)))
        keys = [_details_keys(call, function) for call, function in calls]
        if not keys or any(k is None for k in keys):
            return frozenset()
        for k in keys:
            given = k if given is None else given & k  # type: ignore[operator]
    return given or frozenset()


def test_placeholders_name_only_details_every_raise_gives():
    wrong = {}
    for code in sorted(error_index().classes):
        wanted = i18n.placeholders(i18n.catalogue("en").get(f"errors.{code}", ""))
        if wanted and not wanted <= (given := _given_by_every_raise(code)):
            wrong[code] = (sorted(wanted), sorted(given))
    assert wrong == {}, "code: (placeholders, details keys every raise gives)"


def test_the_details_reader_sees_the_raises_it_should():
    # The placeholder check is only as good as its reading of the raise sites: these are known.
    assert _given_by_every_raise("points.insufficient") == {"balance", "required"}
    assert _given_by_every_raise("auth.too_many_attempts") == {"retry_after_s"}
    assert _given_by_every_raise("reservation.capacity_below_booked") == {"booked"}
    assert _given_by_every_raise("queue.ticket_active") == frozenset()  # details are conditional there


# --- field problems ---------------------------------------------------------------------------------

# What a JSON-schema keyword of a body or query model says pydantic can answer about a value.
_KEYWORD_KINDS = {
    "required": ("missing",),
    "minimum": ("greater_than_equal",), "exclusiveMinimum": ("greater_than",),
    "maximum": ("less_than_equal",), "exclusiveMaximum": ("less_than",), "multipleOf": ("multiple_of",),
    "minLength": ("string_too_short",), "maxLength": ("string_too_long",), "pattern": ("string_pattern_mismatch",),
    "minItems": ("too_short",), "maxItems": ("too_long",), "minProperties": ("too_short",),
    "maxProperties": ("too_long",), "prefixItems": ("too_short", "too_long", "tuple_type"),
    "enum": ("enum", "literal_error"), "const": ("literal_error",),
    "discriminator": ("union_tag_invalid", "union_tag_not_found"),
}
_TYPE_KINDS = {
    "integer": ("int_type", "int_parsing", "int_from_float"),
    "number": ("float_type", "float_parsing", "finite_number"),
    "string": ("string_type",),
    "boolean": ("bool_type", "bool_parsing"),
    "array": ("list_type",),
    "object": ("dict_type", "model_type"),
}
_FORMAT_KINDS = {
    "date": ("date_type", "date_parsing", "date_from_datetime_parsing", "date_from_datetime_inexact"),
    "date-time": ("datetime_type", "datetime_parsing", "datetime_from_date_parsing", "timezone_aware"),
    "time": ("time_type", "time_parsing"),
    "uuid": ("uuid_type", "uuid_parsing"),
}
# Validators (field_validator, AfterValidator, model_validator) raise ValueError or fail an assert.
_ALWAYS = ("extra_forbidden", "value_error", "assertion_error", *OWN_KINDS)


def _request_models() -> set[type]:
    for module in pkgutil.iter_modules(mallapp.api.__path__):
        importlib.import_module(f"mallapp.api.{module.name}")

    def below(cls: type) -> Iterator[type]:
        for sub in cls.__subclasses__():
            yield sub
            yield from below(sub)
    return {*below(Body), *below(Query)}


def _kinds(schema: Any, out: set[str]) -> None:
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key in ("properties", "$defs", "patternProperties"):
                for sub in value.values():
                    _kinds(sub, out)
                continue
            if key in ("description", "title", "examples", "default"):
                continue
            out.update(_KEYWORD_KINDS.get(key, ()))
            if key == "type":
                for name in value if isinstance(value, list) else [value]:
                    out.update(_TYPE_KINDS.get(name, ()))
            elif key == "format":
                out.update(_FORMAT_KINDS.get(value, ()))
            _kinds(value, out)
    elif isinstance(schema, list):
        for item in schema:
            _kinds(item, out)


def test_every_problem_kind_the_apis_models_can_produce_has_a_text():
    models = _request_models()
    assert len(models) > 50  # the walk found the API's bodies and queries
    wanted: set[str] = set(_ALWAYS)
    for model in models:
        _kinds(model.model_json_schema(), wanted)
    assert {"missing", "greater_than", "string_too_long", "literal_error", "timezone_aware"} <= wanted
    for locale in LOCALES:
        have = _area(i18n.catalogue(locale), "problems")
        assert sorted(wanted - have) == [], f"add problems.<kind> to mallapp/locales/{locale}/problems.toml"


def test_every_problem_text_names_a_kind_that_exists():
    known = set(typing.get_args(pydantic_core.core_schema.ErrorType)) | set(OWN_KINDS)
    for locale in LOCALES:
        assert sorted(_area(i18n.catalogue(locale), "problems") - known) == []


class _Sample(Body):
    amount_fen: int = Field(gt=0, le=100)
    name: Annotated[str, StringConstraints(max_length=4)]
    at: AwareDatetime | None = None


@pytest.mark.parametrize(("body", "expected"), [
    ({"amount_fen": -5, "name": "a"}, {"field": "amount_fen", "kind": "greater_than", "limit": 0}),
    ({"amount_fen": 500, "name": "a"}, {"field": "amount_fen", "kind": "less_than_equal", "limit": 100}),
    ({"amount_fen": 1, "name": "abcdef"}, {"field": "name", "kind": "string_too_long", "limit": 4}),
    ({"amount_fen": 1}, {"field": "name", "kind": "missing"}),
    ({"amount_fen": 1, "name": "a", "points": 3}, {"field": "points", "kind": "extra_forbidden"}),
    ({"amount_fen": "1", "name": "a"}, {"field": "amount_fen", "kind": "int_type"}),
    ({"amount_fen": 1, "name": "a", "at": "2026-12-05T10:00:00"}, {"field": "at", "kind": "timezone_aware"}),
])
def test_a_problem_carries_its_kind_and_limit_beside_field_and_problem(body, expected):
    with pytest.raises(ValidationError) as raised:
        _Sample.model_validate_json(json.dumps(body))
    [problem] = _problems(raised.value)
    assert {key: problem[key] for key in expected} == expected
    assert set(problem) == set(expected) | {"problem"}
    assert problem["problem"]  # the English text stays
    assert problem_text("zh-CN", problem) != problem["problem"]


def test_problem_texts_fill_the_limit():
    problem = {"field": "amount_fen", "problem": "Input should be greater than 0", "kind": "greater_than", "limit": 0}
    assert problem_text("zh-CN", problem) == "必须大于 0"
    assert problem_text("en", problem) == "must be greater than 0"
    assert problem_text(None, {"field": "x", "problem": "missing", "kind": "missing"}) == "必填"


def test_an_unknown_kind_falls_back_to_the_english_problem():
    assert problem_text("zh-CN", {"field": "x", "problem": "some new check", "kind": "brand_new"}) == "some new check"
    assert problem_text("en", {"field": "x", "problem": "no kind at all"}) == "no kind at all"


def test_field_texts_map_each_field_to_its_problems():
    details = {"problems": [
        {"field": "amount_fen", "problem": "Input should be greater than 0", "kind": "greater_than", "limit": 0},
        {"field": "name", "problem": "Field required", "kind": "missing"},
        {"field": "name", "problem": "later", "kind": "string_too_long", "limit": 40},
    ]}
    assert field_texts("zh-CN", details) == {"amount_fen": "必须大于 0", "name": "必填；最多 40 个字符"}
    assert field_texts("en", details)["name"] == "is required; must be at most 40 characters"
    assert field_texts("en", None) == {} and field_texts("en", {"retry_after_s": 3}) == {}


# --- the helper -------------------------------------------------------------------------------------

def test_error_text_fills_placeholders_from_details():
    details = {"balance": 30, "required": 100}
    assert error_text("zh-CN", "points.insufficient", details) == "积分不足：当前 30 积分，需要 100 积分"
    assert error_text("en", "points.insufficient", details) == "Not enough points: 30 available, 100 needed."
    assert error_text(None, "auth.too_many_attempts", {"retry_after_s": 42}) == "密码错误次数过多，请 42 秒后再试"


def test_error_text_defaults_to_chinese_and_reads_locale_tags():
    assert error_text(None, "card.expired") == "会员码已过期，请让会员刷新后重新出示"
    assert error_text("en-US", "card.expired").startswith("The member code has expired")
    assert error_text("fr", "card.expired") == error_text("zh-CN", "card.expired")


def test_error_text_ignores_details_that_are_not_plain_values():
    # A list in details (ids, problems) fills nothing; a text without placeholders is unchanged by details.
    assert error_text("en", "venue.unknown_store", {"ids": [4, 5]}) == "There is no active store with this id."
    assert error_text("en", "parking.plate_limit", {"limit": True}) == \
        "You may bind {limit} plates at your tier. Unbind one first."


def test_an_unknown_code_falls_back_to_the_message_or_the_code():
    assert error_text("zh-CN", "brand.new_code", fallback="the English message") == "the English message"
    assert error_text("zh-CN", "brand.new_code") == "brand.new_code"


def test_the_apps_own_codes_have_texts():
    for code in APP_CODES:
        assert error_text("zh-CN", code) != code and error_text("en", code) != code
