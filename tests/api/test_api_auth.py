"""Sign-in with WeChat, bearer tokens, and who may call what."""

from __future__ import annotations

import logging

import pytest

from mallapp.adapters import wechat
from mallapp.domain import auth
from mallapp.errors import Unauthorized


def test_sign_in_creates_a_member_once_per_openid(members_api, emulator):
    first = members_api.sign_in(openid="o-alice", unionid="u-alice")
    again = members_api.sign_in(openid="o-alice", unionid="u-alice")
    assert first["new_member"] is True and again["new_member"] is False
    assert first["member"]["id"] == again["member"]["id"]
    assert first["token"] != again["token"]
    assert first["token_type"] == "Bearer" and first["expires_in"] > 0


def test_sign_in_keeps_the_unionid(members_api, rt):
    body = members_api.sign_in(openid="o-bob", unionid="u-bob")
    from mallapp.domain import members

    with rt.sessions.begin() as session:
        assert members.get(session, body["member"]["id"]).unionid == "u-bob"


def test_session_key_never_leaves_the_server(client, emulator, rt, caplog):
    caplog.set_level(logging.DEBUG)
    code = emulator.login(openid="o-secretive")
    response = client.post("/api/v1/auth/wechat", json={"code": code})
    assert response.status_code == 200
    session_key = wechat.recall_session_key(rt.redis, response.get_json()["member"]["id"])
    assert session_key  # kept server-side for later decryption
    assert session_key not in response.get_data(as_text=True)
    assert session_key not in caplog.text
    assert "session_key" not in response.get_data(as_text=True)


def test_invalid_code_is_a_400(client, emulator):
    response = client.post("/api/v1/auth/wechat", json={"code": "not-a-code"})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "wechat.invalid_code"


def test_used_code_is_a_409(client, emulator):
    code = emulator.login()
    assert client.post("/api/v1/auth/wechat", json={"code": code}).status_code == 200
    response = client.post("/api/v1/auth/wechat", json={"code": code})
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "wechat.code_used"


def test_wechat_rate_limit_is_a_429(client, emulator):
    emulator.script("/sns/jscode2session", {"errcode": 45011, "errmsg": "api minute-quota reach limit"})
    response = client.post("/api/v1/auth/wechat", json={"code": emulator.login()})
    assert response.status_code == 429
    assert response.get_json()["error"]["code"] == "wechat.rate_limited"


def test_wechat_outage_is_a_502(client, emulator):
    emulator.script_status("/sns/jscode2session", 503)
    response = client.post("/api/v1/auth/wechat", json={"code": emulator.login()})
    assert response.status_code == 502
    assert response.get_json()["error"]["code"] == "wechat.unreachable"


def test_logout_revokes_the_token(client, member):
    assert client.get("/api/v1/me", headers=member["headers"]).status_code == 200
    assert client.post("/api/v1/auth/logout", headers=member["headers"]).status_code == 204
    response = client.get("/api/v1/me", headers=member["headers"])
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "auth.invalid_token"


def test_tokens_expire(client, member, rt):
    key = auth._token_key("member", member["token"])
    assert 0 < rt.redis.ttl(key) <= rt.settings.auth.token_ttl_s
    rt.redis.pexpire(key, 1)
    while rt.redis.exists(key):
        pass
    assert client.get("/api/v1/me", headers=member["headers"]).status_code == 401


def test_missing_or_malformed_credentials_are_401(client):
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "},
                    {"Authorization": "Bearer mt_forged"}, {"Authorization": "Bearer something"}):
        response = client.get("/api/v1/me", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.get_json()["error"]["code"].startswith("auth.")


def test_merchant_key_cannot_call_member_endpoints(client, merchant):
    response = client.get("/api/v1/me", headers=merchant["headers"])
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "auth.wrong_caller"


def test_member_token_cannot_call_merchant_endpoints(client, member):
    response = client.post("/api/v1/merchant/purchases", json={}, headers=member["headers"])
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "auth.wrong_caller"


def test_unknown_merchant_key_is_401(client):
    response = client.get("/api/v1/merchant/purchases/R1", headers={"Authorization": "Bearer mk_unknown"})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "auth.invalid_key"


def test_referral_code_links_the_new_member_to_the_referrer(members_api, rt):
    alice = members_api.sign_in(openid="o-alice")
    bob = members_api.sign_in(openid="o-bob", referral_code=alice["member"]["referral_code"])
    assert (alice["referral"], bob["referral"]) == (None, "applied")
    again = members_api.sign_in(openid="o-bob", referral_code=alice["member"]["referral_code"])
    assert (again["new_member"], again["referral"]) == (False, "already_member")
    from mallapp.domain import members

    with rt.sessions.begin() as session:
        assert members.get(session, bob["member"]["id"]).referred_by_id == alice["member"]["id"]


def test_an_unknown_referral_code_signs_in_without_a_referrer_and_says_so(members_api, rt):
    # Refusing would burn the member's wx.login code for a mistyped referral code.
    carol = members_api.sign_in(openid="o-carol", referral_code="ZZZZZZZZ")
    assert (carol["new_member"], carol["referral"]) == (True, "unknown_code")
    from mallapp.domain import members

    with rt.sessions.begin() as session:
        assert members.get(session, carol["member"]["id"]).referred_by_id is None


def test_a_token_of_another_kind_is_refused_in_plain_english(rt):
    with pytest.raises(Unauthorized, match="^not an ops token$"):
        auth.bearer_value(rt.redis, "ops", "ot_", "mt_something")
    with pytest.raises(Unauthorized, match="^not a staff token$"):
        auth.bearer_value(rt.redis, "staff", "st_", "mt_something")
