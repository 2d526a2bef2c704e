"""mallapp.adapters.wechat against the WeChat emulator, over real loopback HTTP."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest
import requests
from wechatpy.session.memorystorage import MemoryStorage

from mallapp.adapters.wechat import (
    MallWeChatClient,
    WeChatSession,
    build_client,
    code_to_session,
    get_phone_number,
    recall_session_key,
    remember_session_key,
    send_subscribe_message,
)
from mallapp.devtools.wechat_emulator import WeChatEmulator
from mallapp.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    MallError,
    RateLimited,
    RuleViolation,
    UpstreamError,
)
from mallapp.settings import DEMO_SETTINGS_FILE, load_settings

APPID = "wxemulatortest0001"
SECRET = "s3cr3t-never-shown"
TEMPLATE = "tmpl-points-changed"
TOKEN_PATH = "/cgi-bin/token"
LOGIN_PATH = "/sns/jscode2session"
PHONE_PATH = "/wxa/business/getuserphonenumber"
SEND_PATH = "/cgi-bin/message/subscribe/send"
START = 1_700_000_000.0


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def _module_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def _module_emulator(_module_clock: FakeClock) -> Iterator[WeChatEmulator]:
    with WeChatEmulator(APPID, SECRET, clock=_module_clock) as emulator:
        yield emulator


@pytest.fixture
def clock(_module_clock: FakeClock) -> FakeClock:
    _module_clock.now = START
    return _module_clock


@pytest.fixture
def emulator(_module_emulator: WeChatEmulator, clock: FakeClock) -> WeChatEmulator:
    # One server per module keeps the suite fast; every test starts from a clean state.
    _module_emulator.reset()
    _module_emulator.register_template(TEMPLATE)
    return _module_emulator


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def client(emulator: WeChatEmulator, storage: MemoryStorage, clock: FakeClock) -> MallWeChatClient:
    return MallWeChatClient(APPID, SECRET, api_base=emulator.base_url, session=storage, timeout=2, clock=clock)


def _token_fetches(emulator: WeChatEmulator) -> int:
    return emulator.request_count(TOKEN_PATH)


# -- code2Session ------------------------------------------------------------------------------


def test_code_to_session_returns_openid_and_session_key_without_unionid(emulator, client):
    session = code_to_session(client, emulator.login(openid="o-alice"))
    assert session.openid == "o-alice"
    assert session.unionid is None
    assert session.session_key


def test_code_to_session_returns_unionid_when_the_login_had_one(emulator, client):
    session = code_to_session(client, emulator.login(openid="o-bob", unionid="u-bob"))
    assert (session.openid, session.unionid) == ("o-bob", "u-bob")


def test_same_user_keeps_openid_and_unionid_while_session_key_rotates(emulator, client):
    first = code_to_session(client, emulator.login(openid="o-carol", unionid="u-carol"))
    second = code_to_session(client, emulator.login(openid="o-carol"))
    assert (second.openid, second.unionid) == ("o-carol", "u-carol")
    assert second.session_key != first.session_key


def test_login_without_openid_creates_a_new_user_each_time(emulator, client):
    one = code_to_session(client, emulator.login())
    two = code_to_session(client, emulator.login())
    assert one.openid != two.openid


def test_code_to_session_needs_no_access_token(emulator, client):
    code_to_session(client, emulator.login())
    assert _token_fetches(emulator) == 0
    assert "access_token" not in emulator.requests[-1]["params"]


def test_code_is_single_use(emulator, client):
    code = emulator.login()
    code_to_session(client, code)
    with pytest.raises(Conflict) as caught:
        code_to_session(client, code)
    assert caught.value.code == "wechat.code_used"
    assert caught.value.status == 409
    assert caught.value.details == {"errcode": 40163}


def test_code_expires_five_minutes_after_issue(emulator, client, clock):
    fresh, stale = emulator.login(), emulator.login()
    clock.advance(299)
    code_to_session(client, fresh)
    clock.advance(1)
    with pytest.raises(InvalidInput) as caught:
        code_to_session(client, stale)
    assert caught.value.code == "wechat.invalid_code"


def test_unknown_code_is_invalid_input(client):
    with pytest.raises(InvalidInput) as caught:
        code_to_session(client, "not-a-code")
    assert (caught.value.code, caught.value.details) == ("wechat.invalid_code", {"errcode": 40029})


def test_empty_code_is_refused_without_calling_wechat(emulator, client):
    with pytest.raises(InvalidInput):
        code_to_session(client, "")
    assert emulator.requests == []


def test_wrong_secret_is_an_upstream_error_with_errcode(emulator):
    wrong = MallWeChatClient(APPID, "wrong", api_base=emulator.base_url, session=MemoryStorage())
    with pytest.raises(UpstreamError) as caught:
        code_to_session(wrong, emulator.login())
    assert (caught.value.code, caught.value.details) == ("wechat.error", {"errcode": 40125})


# -- error mapping ------------------------------------------------------------------------------


@pytest.mark.parametrize(("errcode", "error_class", "code"), [
    (45011, RateLimited, "wechat.rate_limited"),
    (40226, Forbidden, "wechat.risky_user"),
    (-1, UpstreamError, "wechat.error"),
])
def test_scripted_errcodes_map_to_stable_mall_errors(emulator, client, errcode, error_class, code):
    emulator.script(LOGIN_PATH, {"errcode": errcode, "errmsg": "scripted"})
    with pytest.raises(error_class) as caught:
        code_to_session(client, emulator.login())
    assert (caught.value.code, caught.value.details) == (code, {"errcode": errcode})
    code_to_session(client, emulator.login())  # the script answered once only


def test_rate_limit_is_429(emulator, client):
    emulator.script(LOGIN_PATH, {"errcode": 45011, "errmsg": "api minute-quota reach limit"})
    with pytest.raises(RateLimited) as caught:
        code_to_session(client, emulator.login())
    assert caught.value.status == 429


def test_stopped_emulator_is_unreachable_502(clock):
    with WeChatEmulator(APPID, SECRET, clock=clock) as gone:
        code = gone.login()
    client = MallWeChatClient(APPID, SECRET, api_base=gone.base_url, session=MemoryStorage(), timeout=2)
    with pytest.raises(UpstreamError) as caught:
        code_to_session(client, code)
    assert (caught.value.code, caught.value.status) == ("wechat.unreachable", 502)
    assert caught.value.details == {"reason": "connection"}


def test_http_503_is_unreachable(emulator, client):
    emulator.script_status(LOGIN_PATH, 503)
    with pytest.raises(UpstreamError) as caught:
        code_to_session(client, emulator.login())
    assert caught.value.code == "wechat.unreachable"
    assert caught.value.details == {"status": 503}


def test_non_json_answer_is_unreachable(emulator, client):
    emulator.script_status(LOGIN_PATH, 200)  # a bare "OK" text body
    with pytest.raises(UpstreamError) as caught:
        code_to_session(client, emulator.login())
    assert caught.value.code == "wechat.unreachable"


def test_slow_answer_times_out_as_unreachable(emulator, storage):
    slow = MallWeChatClient(APPID, SECRET, api_base=emulator.base_url, session=storage, timeout=0.2)
    emulator.script(LOGIN_PATH, {"openid": "o-late", "session_key": "k"}, delay_seconds=0.6)
    with pytest.raises(UpstreamError) as caught:
        code_to_session(slow, emulator.login())
    assert caught.value.details == {"reason": "timeout"}


# -- access token ---------------------------------------------------------------------------------


def test_access_token_is_fetched_once_and_reused_across_clients_sharing_storage(emulator, client, storage,
                                                                                clock):
    other = MallWeChatClient(APPID, SECRET, api_base=emulator.base_url, session=storage, clock=clock)
    for each in (client, other, client, other):
        get_phone_number(each, emulator.phone_code("o-dave"))
    assert _token_fetches(emulator) == 1


def test_shared_token_is_refreshed_before_wechat_expiry_by_any_client(emulator, client, storage, clock):
    other = MallWeChatClient(APPID, SECRET, api_base=emulator.base_url, session=storage, clock=clock)
    get_phone_number(client, emulator.phone_code("o-erin"))
    clock.advance(7200 - 300 - 1)  # still inside the safety margin
    get_phone_number(other, emulator.phone_code("o-erin"))
    assert _token_fetches(emulator) == 1
    clock.advance(1)  # now due, five minutes before WeChat would expire it
    get_phone_number(other, emulator.phone_code("o-erin"))
    assert _token_fetches(emulator) == 2


def test_expired_token_is_refreshed_after_42001(emulator, storage, clock):
    # The client's clock lags the server's, so only WeChat's 42001 reveals the expiry.
    lagging = MallWeChatClient(APPID, SECRET, api_base=emulator.base_url, session=storage, clock=lambda: START)
    get_phone_number(lagging, emulator.phone_code("o-fay"))
    clock.advance(7200)
    get_phone_number(lagging, emulator.phone_code("o-fay"))
    assert _token_fetches(emulator) == 2
    assert [r["path"] for r in emulator.requests].count(PHONE_PATH) == 3


def test_invalidated_token_is_refreshed_after_40001(emulator, client):
    get_phone_number(client, emulator.phone_code("o-gus"))
    emulator.invalidate_tokens()
    assert get_phone_number(client, emulator.phone_code("o-gus"))["pure_phone_number"] == "13800138000"
    assert _token_fetches(emulator) == 2


def test_token_error_is_retried_only_once(emulator, client):
    refusal = {"errcode": 40001, "errmsg": "invalid credential"}
    emulator.script(PHONE_PATH, refusal, times=2)
    with pytest.raises(UpstreamError) as caught:
        get_phone_number(client, emulator.phone_code("o-hal"))
    assert caught.value.details == {"errcode": 40001}
    assert emulator.request_count(PHONE_PATH) == 2
    assert _token_fetches(emulator) == 2


# -- phone number ---------------------------------------------------------------------------------


def test_get_phone_number_returns_number_and_country_code(emulator, client):
    phone = get_phone_number(client, emulator.phone_code("o-ivy", phone="13912345678"))
    assert phone == {"phone_number": "13912345678", "pure_phone_number": "13912345678", "country_code": "86"}


def test_foreign_phone_number_carries_its_country_code(emulator, client):
    phone = get_phone_number(client, emulator.phone_code("o-jon", phone="91234567", country_code="852"))
    assert phone == {"phone_number": "+85291234567", "pure_phone_number": "91234567", "country_code": "852"}


def test_phone_code_is_single_use(emulator, client):
    code = emulator.phone_code("o-kim")
    get_phone_number(client, code)
    with pytest.raises(InvalidInput) as caught:
        get_phone_number(client, code)
    assert caught.value.code == "wechat.invalid_code"


# -- subscribe messages -----------------------------------------------------------------------------


DATA = {"thing1": {"value": "Points added"}, "number2": {"value": "120"}}


def test_subscribe_message_is_accepted_once_per_opt_in(emulator, client):
    emulator.login(openid="o-lea")
    emulator.grant_subscription("o-lea", TEMPLATE)
    msgid = send_subscribe_message(client, "o-lea", TEMPLATE, DATA, page="pages/points/index")
    [message] = emulator.messages
    assert (message["msgid"], message["touser"], message["template_id"]) == (msgid, "o-lea", TEMPLATE)
    assert (message["data"], message["page"]) == (DATA, "pages/points/index")
    with pytest.raises(RuleViolation) as caught:
        send_subscribe_message(client, "o-lea", TEMPLATE, DATA)
    assert (caught.value.code, caught.value.status, caught.value.details) == (
        "wechat.no_quota", 422, {"errcode": 43101})
    assert len(emulator.messages) == 1


def test_each_opt_in_allows_one_more_message(emulator, client):
    emulator.grant_subscription("o-max", TEMPLATE, count=2)
    ids = {send_subscribe_message(client, "o-max", TEMPLATE, DATA) for _ in range(2)}
    assert len(ids) == 2


def test_unknown_template_is_refused_with_40037(emulator, client):
    emulator.grant_subscription("o-ned", "tmpl-unknown")
    with pytest.raises(UpstreamError) as caught:
        send_subscribe_message(client, "o-ned", "tmpl-unknown", DATA)
    assert (caught.value.code, caught.value.details) == ("wechat.error", {"errcode": 40037})


def test_unknown_openid_is_invalid_openid(client):
    with pytest.raises(InvalidInput) as caught:
        send_subscribe_message(client, "o-nobody", TEMPLATE, DATA)
    assert (caught.value.code, caught.value.details) == ("wechat.invalid_openid", {"errcode": 40003})


def test_empty_data_is_refused_with_47003(emulator, client):
    emulator.grant_subscription("o-oli", TEMPLATE)
    with pytest.raises(UpstreamError) as caught:
        send_subscribe_message(client, "o-oli", TEMPLATE, {})
    assert caught.value.details == {"errcode": 47003}


# -- secrets ------------------------------------------------------------------------------------------


def _exception_texts(error: BaseException) -> str:
    texts = []
    seen: BaseException | None = error
    while seen is not None:  # the whole chain a logged traceback would show
        texts += [str(seen), repr(seen)]
        if isinstance(seen, MallError):
            texts.append(repr(seen.to_dict()))
        seen = seen.__cause__ or seen.__context__
    return "\n".join(texts)


def test_no_secret_token_or_session_key_in_errors_sessions_or_logs(emulator, client, storage, caplog):
    caplog.set_level(logging.DEBUG)
    session = code_to_session(client, emulator.login(openid="o-pam"))
    assert session.session_key not in repr(session) and session.session_key not in str(session)
    assert isinstance(session, WeChatSession)

    errors: list[MallError] = []
    get_phone_number(client, emulator.phone_code("o-pam"))
    token = storage.get(f"{APPID}_access_token")
    emulator.script_status(PHONE_PATH, 503)
    emulator.script(LOGIN_PATH, {"errcode": 40226, "errmsg": "risky"})
    for failing in (lambda: get_phone_number(client, emulator.phone_code("o-pam")),
                    lambda: code_to_session(client, emulator.login())):
        with pytest.raises(MallError) as caught:
            failing()
        errors.append(caught.value)
    gone = MallWeChatClient(APPID, SECRET, api_base="http://127.0.0.1:9", session=MemoryStorage())
    with pytest.raises(UpstreamError) as caught:
        code_to_session(gone, "some-code")
    errors.append(caught.value)

    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(("mallapp", "wechatpy")))
    texts = "\n".join(_exception_texts(e) for e in errors) + ours
    for secret in (SECRET, token, session.session_key):
        assert secret not in texts


# -- the emulator's own wire protocol and control API -------------------------------------------------


def test_token_endpoint_speaks_wechat_errors(emulator):
    url = emulator.base_url + TOKEN_PATH
    base = {"grant_type": "client_credential", "appid": APPID, "secret": SECRET}
    ok = requests.get(url, params=base, timeout=2).json()
    assert ok["expires_in"] == 7200 and ok["access_token"]
    for override, errcode in (({"appid": "wxother"}, 40013), ({"secret": "nope"}, 40125),
                              ({"grant_type": "password"}, 40002)):
        answer = requests.get(url, params={**base, **override}, timeout=2)
        assert answer.status_code == 200  # WeChat reports errors in the body, not the status
        assert answer.json()["errcode"] == errcode


def test_stable_token_is_shared_until_force_refresh(emulator):
    url = emulator.base_url + "/cgi-bin/stable_token"
    body = {"grant_type": "client_credential", "appid": APPID, "secret": SECRET}
    first = requests.post(url, json=body, timeout=2).json()["access_token"]
    assert requests.post(url, json=body, timeout=2).json()["access_token"] == first
    assert requests.post(url, json={**body, "force_refresh": True}, timeout=2).json()["access_token"] != first
    assert requests.post(url, json={**body, "secret": "x"}, timeout=2).json()["errcode"] == 40125


def test_http_control_api_drives_the_emulator(emulator, client):
    control = emulator.base_url + "/__emulator/"
    login = requests.post(control + "login", json={"openid": "o-quin", "unionid": "u-quin"}, timeout=2).json()
    assert code_to_session(client, login["code"]).unionid == "u-quin"
    phone = requests.post(control + "phone-code", json={"openid": "o-quin", "phone": "13700000000"},
                          timeout=2).json()
    assert get_phone_number(client, phone["code"])["pure_phone_number"] == "13700000000"
    requests.post(control + "templates", json={"template_id": "tmpl-http"}, timeout=2)
    granted = requests.post(control + "subscriptions",
                            json={"openid": "o-quin", "template_id": "tmpl-http", "count": 1}, timeout=2)
    assert granted.json()["remaining"] == 1
    msgid = send_subscribe_message(client, "o-quin", "tmpl-http", DATA)
    messages = requests.get(control + "messages", timeout=2).json()["messages"]
    assert [m["msgid"] for m in messages] == [msgid]
    requests.post(control + "script", json={"path": LOGIN_PATH, "response": {"errcode": 45011}}, timeout=2)
    with pytest.raises(RateLimited):
        code_to_session(client, emulator.login())
    requests.post(control + "script", json={"path": LOGIN_PATH, "status": 503}, timeout=2)
    with pytest.raises(UpstreamError):
        code_to_session(client, emulator.login())
    assert requests.post(control + "reset", timeout=2).json() == {"ok": True}
    assert emulator.messages == [] and emulator.requests == []
    assert requests.post(control + "nope", timeout=2).status_code == 404
    assert requests.post(control + "subscriptions", json={}, timeout=2).status_code == 400


def test_answering_request_subscribe_message_grants_a_quota_per_accept(emulator, client):
    control = emulator.base_url + "/__emulator/"
    emulator.login(openid="o-rae")
    answer = requests.post(control + "request-subscribe-message", json={
        "openid": "o-rae", "results": {TEMPLATE: "accept", "tmpl-other": "reject"}}, timeout=2).json()
    # What wx.requestSubscribeMessage's success callback gets, for the mini-program to report to the API.
    assert answer == {"errMsg": "requestSubscribeMessage:ok", TEMPLATE: "accept", "tmpl-other": "reject"}
    assert send_subscribe_message(client, "o-rae", TEMPLATE, DATA)
    assert emulator.grant_subscription("o-rae", "tmpl-other", count=0) == 0
    assert requests.post(control + "request-subscribe-message", json={"openid": "o-rae"}, timeout=2).status_code == 400


# -- Redis, when the suite provides one ---------------------------------------------------------------


def _redis_or_skip(request: pytest.FixtureRequest):
    try:
        return request.getfixturevalue("redis_client")
    except pytest.FixtureLookupError:
        pytest.skip("no redis_client fixture in tests/conftest.py")


def test_access_token_is_shared_through_redis_with_expiry_margin(request):
    redis_client = _redis_or_skip(request)
    appid = f"wx{uuid.uuid4().hex[:16]}"  # a key of its own in a Redis other tests share
    with WeChatEmulator(appid, SECRET) as emulator:
        settings = load_settings(
            overrides={"wechat": {"appid": appid, "secret": SECRET, "api_base": emulator.base_url}},
            environ={}, overlay=DEMO_SETTINGS_FILE)
        one, two = build_client(settings, redis_client), build_client(settings, redis_client)
        for each in (one, two):
            get_phone_number(each, emulator.phone_code("o-rae"))
        assert emulator.request_count(TOKEN_PATH) == 1
        key = f"wechat:{appid}_access_token"
        try:
            assert 7200 - 300 - 5 <= redis_client.ttl(key) <= 7200 - 300
            redis_client.delete(key)  # as if the TTL ran out: the next caller fetches anew
            get_phone_number(two, emulator.phone_code("o-rae"))
            assert emulator.request_count(TOKEN_PATH) == 2
        finally:
            redis_client.delete(key, f"{key}_expires_at")


def test_latest_session_key_is_remembered_per_member_in_redis(request, emulator, client):
    redis_client = _redis_or_skip(request)
    member_id = f"test-{uuid.uuid4().hex}"
    try:
        assert recall_session_key(redis_client, member_id) is None
        for _ in range(2):  # a second login rotates the key; the newest wins
            session = code_to_session(client, emulator.login(openid="o-sam"))
            remember_session_key(redis_client, member_id, session, ttl_seconds=60)
        assert recall_session_key(redis_client, member_id) == session.session_key
        assert 0 < redis_client.ttl(f"wechat:session_key:{member_id}") <= 60
    finally:
        redis_client.delete(f"wechat:session_key:{member_id}")
