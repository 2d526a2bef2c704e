"""A refused body or query says, per field, a stable kind (and its limit) that the consoles turn into a sentence
in zh-CN or English next to the field; the English problem stays as it was."""

from __future__ import annotations

from factories import api_error

from mallapp.api.error_texts import error_text, field_texts

M = "/api/v1/merchant"


def _purchase(client, merchant, card, clock, **change):
    body = {"member_code": card, "amount_fen": 25_880, "receipt_no": "R-kind", "occurred_at": clock.now.isoformat()}
    return client.post(f"{M}/purchases", headers=merchant["headers"], json={**body, **change})


def test_a_negative_amount_is_greater_than_with_its_limit(client, merchant, card, clock):
    error = api_error(_purchase(client, merchant, card, clock, amount_fen=-100), "request.invalid")
    [problem] = error["details"]["problems"]
    assert problem == {"field": "amount_fen", "problem": "Input should be greater than 0", "kind": "greater_than",
                       "limit": 0}
    assert field_texts("zh-CN", error["details"]) == {"amount_fen": "必须大于 0"}
    assert field_texts("en", error["details"]) == {"amount_fen": "must be greater than 0"}
    assert error_text("zh-CN", error["code"]) == "填写的内容有误，请检查后重新提交"


def test_an_unknown_field_is_extra_forbidden_and_a_missing_one_missing(client, merchant, card, clock):
    error = api_error(_purchase(client, merchant, card, clock, points=1000), "request.invalid")
    assert error["details"]["problems"] == [{"field": "points", "problem": "unknown field",
                                             "kind": "extra_forbidden"}]
    body = {"member_code": card, "amount_fen": 100, "occurred_at": clock.now.isoformat()}
    error = api_error(client.post(f"{M}/purchases", headers=merchant["headers"], json=body), "request.invalid")
    assert [(p["field"], p["kind"]) for p in error["details"]["problems"]] == [("receipt_no", "missing")]
    assert field_texts("zh-CN", error["details"]) == {"receipt_no": "必填"}


def test_a_time_without_its_offset_and_a_long_text_say_so(client, merchant, card, clock):
    error = api_error(_purchase(client, merchant, card, clock, occurred_at="2026-03-10T10:00:00",
                                member_code="x" * 201), "request.invalid")
    kinds = {p["field"]: (p["kind"], p.get("limit")) for p in error["details"]["problems"]}
    assert kinds == {"member_code": ("string_too_long", 200), "occurred_at": ("timezone_aware", None)}


def test_a_query_problem_has_its_kind_too(client, member):
    response = client.get("/api/v1/me/coupons", headers=member["headers"], query_string={"limit": 500})
    [problem] = api_error(response, "request.invalid_query")["details"]["problems"]
    assert (problem["field"], problem["kind"], problem["limit"]) == ("limit", "less_than_equal", 100)
    response = client.get("/api/v1/me/coupons", headers=member["headers"], query_string={"status": "lost"})
    [problem] = api_error(response, "request.invalid_query")["details"]["problems"]
    assert (problem["field"], problem["kind"]) == ("status", "literal_error")
    assert field_texts("zh-CN", {"problems": [problem]}) == {"status": "不是可选的值，请重新选择"}


def test_a_refused_sign_in_reads_as_a_sentence_in_both_languages(client):
    response = client.post("/api/v1/ops/auth", json={"username": "nobody", "password": "wrong"})
    error = api_error(response, "ops.bad_credentials")
    assert error_text("zh-CN", error["code"], error.get("details")) == "用户名或密码错误"
    assert error_text("en", error["code"], error.get("details")) == "Wrong username or password."


def test_clearing_a_field_that_cannot_be_cleared_is_null_not_allowed(client, ops_admin):
    ops = "/api/v1/ops"
    store = client.post(f"{ops}/stores", headers=ops_admin["headers"],
                        json={"name": "Starlight Coffee", "floor": 1, "x": 1.0, "y": 2.0})
    assert store.status_code == 201, store.get_json()
    response = client.patch(f"{ops}/stores/{store.get_json()['id']}", headers=ops_admin["headers"],
                            json={"name": None})
    [problem] = api_error(response, "request.invalid")["details"]["problems"]
    assert problem == {"field": "name", "problem": "cannot be null", "kind": "null_not_allowed"}
    assert field_texts("zh-CN", {"problems": [problem]}) == {"name": "不能清空"}


def test_a_value_fitting_no_member_of_a_union_is_one_problem_named_by_its_field(client, ops_marketing):
    # A campaign title is a text or {"zh-CN", "en"}: an empty text is the title's problem, not the body's shape,
    # and pydantic's member tags stay out of the field's name.
    body = {"name": "x", "audience": {}, "timing": "now",
            "steps": [{"after_days": 0, "offer": {"kind": "message", "title": ""}}]}
    error = api_error(client.post("/api/v1/ops/campaigns", json=body, headers=ops_marketing["headers"]),
                      "request.invalid")
    assert error["details"]["problems"] == [{"field": "steps.0.offer.title", "kind": "string_too_short", "limit": 1,
                                             "problem": "String should have at least 1 character"}]
