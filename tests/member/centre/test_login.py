"""Login: mini-program code exchange and OA OAuth give one member per person; forged identities are ignored (T16)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import func, select

from member.models import Member, OAuthStateUse, WeChatIdentity
from member.services.sessions import new_oauth_state
from scrm.guards import member_tokens
from tests.conftest import TEST_SECRET_KEY
from tests.member.centre.conftest import FRONT_END, MP, OA, bearer, mp_login, oauth_login

pytestmark = pytest.mark.usefixtures("apps")


def member_id_of(app, token: str) -> int:
    with app.app_context():
        return member_tokens().verify(token).member_id


def test_miniprogram_login_creates_one_member_and_keeps_the_session_key_server_side(app, client, wechat, session):
    wechat.create_user("amy")
    code = wechat.login_code("amy", MP.appid)
    response = client.post("/api/v1/member/session/miniprogram", json={"appid": MP.appid, "code": code})
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"token", "token_type", "expires_in"}
    assert "session_key" not in response.get_data(as_text=True)
    again = mp_login(client, wechat, "amy")
    assert member_id_of(app, again) == member_id_of(app, body["token"])
    identity = session.scalars(select(WeChatIdentity).where(WeChatIdentity.appid == MP.appid)).one()
    assert identity.openid == wechat.openid("amy", MP.appid)
    assert identity.unionid == wechat.user("amy")["unionid"]


def test_a_reused_login_code_is_refused_with_409(client, wechat):
    wechat.create_user("ben")
    code = wechat.login_code("ben", MP.appid)
    first = client.post("/api/v1/member/session/miniprogram", json={"appid": MP.appid, "code": code})
    assert first.status_code == 201
    second = client.post("/api/v1/member/session/miniprogram", json={"appid": MP.appid, "code": code})
    assert second.status_code == 409
    assert second.get_json()["error"]["code"] == "code_used"


def test_an_unknown_code_or_a_foreign_app_is_a_4xx(client):
    unknown = client.post("/api/v1/member/session/miniprogram", json={"appid": MP.appid, "code": "nope"})
    assert unknown.status_code == 422
    assert unknown.get_json()["error"]["code"] == "code_invalid"
    foreign = client.post("/api/v1/member/session/miniprogram", json={"appid": "wxNOTOURS000000001", "code": "x"})
    assert foreign.status_code == 422
    assert foreign.get_json()["error"]["code"] == "app_not_usable"
    wrong_kind = client.post("/api/v1/member/session/miniprogram", json={"appid": OA.appid, "code": "x"})
    assert wrong_kind.status_code == 422


def test_oauth_and_miniprogram_logins_of_one_user_are_one_member(app, client, wechat, session):
    wechat.create_user("cat")
    mp_token = mp_login(client, wechat, "cat")
    callback = oauth_login(client, "cat")
    assert callback.status_code == 200, callback.get_json()
    oa_token = callback.get_json()["token"]
    assert member_id_of(app, oa_token) == member_id_of(app, mp_token)
    identities = session.scalars(select(WeChatIdentity).order_by(WeChatIdentity.app_kind)).all()
    assert [(i.app_kind, i.member_id) for i in identities] == [
        ("miniprogram", member_id_of(app, mp_token)),
        ("oa", member_id_of(app, mp_token)),
    ]


def test_silent_oauth_learns_the_unionid_from_user_info_and_joins_the_member(app, client, wechat):
    wechat.create_user("dee")
    mp_member = member_id_of(app, mp_login(client, wechat, "dee"))
    base = oauth_login(client, "dee", scope="snsapi_base")
    assert base.status_code == 200
    assert member_id_of(app, base.get_json()["token"]) == mp_member


def test_silent_oauth_without_a_unionid_is_joined_by_a_later_login_that_has_one(app, client, wechat, session):
    wechat.create_user("dan")
    wechat.inject_errcode("/cgi-bin/user/info", 40003)  # user info unavailable: no unionid for this login
    base = oauth_login(client, "dan", scope="snsapi_base")
    assert base.status_code == 200
    oa_member = member_id_of(app, base.get_json()["token"])
    mp_member = member_id_of(app, mp_login(client, wechat, "dan"))
    assert oa_member != mp_member
    joined = oauth_login(client, "dan", scope="snsapi_userinfo")
    assert member_id_of(app, joined.get_json()["token"]) == mp_member
    me = client.get("/api/v1/member/me", headers=bearer(base.get_json()["token"]))
    assert me.get_json()["id"] == mp_member  # the old token follows the merge
    assert session.get(Member, oa_member).merged_into_id == mp_member


def test_oauth_redirects_to_the_allow_listed_front_end_with_the_token_in_the_fragment(app, client, wechat):
    wechat.create_user("eve")
    callback = oauth_login(client, "eve", redirect=FRONT_END + "home?x=1")
    assert callback.status_code == 302
    location = urlsplit(callback.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == FRONT_END + "home"
    assert location.query == "x=1"
    fragment = parse_qs(location.fragment)
    assert member_id_of(app, fragment["token"][0]) > 0


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example.com/member/",
        "https://h5.example.com.evil.com/member/",
        "https://h5.example.com/memberx",
        "https://h5.example.com/other/",
        "//evil.example.com/",
        "javascript:alert(1)",
        "https://user@h5.example.com/member/",
        "http://h5.example.com/member/",
    ],
)
def test_redirect_targets_off_the_allow_list_are_refused(client, target):
    response = client.get("/api/v1/member/session/oauth/start", query_string={"appid": OA.appid, "redirect": target})
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "redirect_not_allowed"


def test_oauth_start_sends_a_signed_state_and_snsapi_base_by_default(client):
    response = client.get("/api/v1/member/session/oauth/start", query_string={"appid": OA.appid})
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["scope"] == ["snsapi_base"]
    assert len(query["state"][0]) == 56
    assert query["redirect_uri"][0].startswith("http://localhost/api/v1/member/session/oauth/callback?appid=")


def test_oauth_state_is_single_use_and_forged_states_are_refused(client, wechat, session):
    wechat.create_user("fay")
    start = client.get("/api/v1/member/session/oauth/start", query_string={"appid": OA.appid})
    state = parse_qs(urlsplit(start.headers["Location"]).query)["state"][0]

    def code() -> str:
        answer = requests.get(
            start.headers["Location"].split("#", 1)[0],
            params={"sandbox_user": "fay"},
            allow_redirects=False,
            timeout=10,
        )
        return parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]

    path = "/api/v1/member/session/oauth/callback"
    first = client.get(path, query_string={"appid": OA.appid, "code": code(), "state": state})
    assert first.status_code == 200
    reused = client.get(path, query_string={"appid": OA.appid, "code": code(), "state": state})
    assert reused.status_code == 422
    assert reused.get_json()["error"]["code"] == "oauth_state_invalid"
    forged = state[:-1] + ("0" if state[-1] != "0" else "1")
    assert client.get(path, query_string={"appid": OA.appid, "code": code(), "state": forged}).status_code == 422
    # The same state bound to another redirect target does not verify either.
    other = client.get(path, query_string={"appid": OA.appid, "code": code(), "state": state, "redirect": FRONT_END})
    assert other.status_code == 422
    assert session.scalar(select(func.count()).select_from(OAuthStateUse)) == 1


def test_an_expired_state_is_refused(client, wechat):
    old = new_oauth_state(TEST_SECRET_KEY, appid=OA.appid, redirect="", now=1_000_000)
    response = client.get(
        "/api/v1/member/session/oauth/callback", query_string={"appid": OA.appid, "code": "c", "state": old}
    )
    assert response.status_code == 422


def test_a_reused_oauth_code_is_refused(client, wechat):
    wechat.create_user("gus")
    first = oauth_login(client, "gus")
    assert first.status_code == 200
    # Replay the same WeChat code under a fresh, valid state.
    start = client.get("/api/v1/member/session/oauth/start", query_string={"appid": OA.appid})
    state = parse_qs(urlsplit(start.headers["Location"]).query)["state"][0]
    answer = requests.get(
        start.headers["Location"].split("#", 1)[0], params={"sandbox_user": "gus"}, allow_redirects=False, timeout=10
    )
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    path = "/api/v1/member/session/oauth/callback"
    assert client.get(path, query_string={"appid": OA.appid, "code": code, "state": state}).status_code == 200
    start2 = client.get("/api/v1/member/session/oauth/start", query_string={"appid": OA.appid})
    state2 = parse_qs(urlsplit(start2.headers["Location"]).query)["state"][0]
    replay = client.get(path, query_string={"appid": OA.appid, "code": code, "state": state2})
    assert replay.status_code == 409
    assert replay.get_json()["error"]["code"] == "code_used"


def test_snapshot_pages_cannot_log_in(client, wechat, session):
    wechat.create_user("hal")
    start = client.get("/api/v1/member/session/oauth/start", query_string={"appid": OA.appid})
    answer = requests.get(
        start.headers["Location"].split("#", 1)[0],
        params={"sandbox_user": "hal", "sandbox_snapshot": "1"},
        allow_redirects=False,
        timeout=10,
    )
    back = urlsplit(answer.headers["Location"])
    response = client.get(back.path, query_string=parse_qs(back.query))
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "snapshot_user"
    assert session.scalar(select(func.count()).select_from(Member)) == 0


def test_t16_forged_openid_unionid_and_member_id_are_never_used(app, client, wechat, session):
    wechat.create_user("ivy")
    wechat.create_user("jon")
    jon_token = mp_login(client, wechat, "jon")
    jon_id = member_id_of(app, jon_token)
    jon_openid = wechat.openid("jon", MP.appid)
    jon_unionid = wechat.user("jon")["unionid"]
    forged = {"openid": jon_openid, "unionid": jon_unionid, "member_id": jon_id}
    # In the body: unknown fields are refused outright (never read).
    code = wechat.login_code("ivy", MP.appid)
    body = client.post("/api/v1/member/session/miniprogram", json={"appid": MP.appid, "code": code, **forged})
    assert body.status_code == 422
    assert set(body.get_json()["error"]["details"]["fields"]) == set(forged)
    # In the query string and in headers: ignored; the login is Ivy's own.
    headers = {"X-Openid": jon_openid, "X-Unionid": jon_unionid, "X-Member-Id": str(jon_id)}
    response = client.post(
        "/api/v1/member/session/miniprogram",
        json={"appid": MP.appid, "code": code},
        query_string=forged,
        headers=headers,
    )
    assert response.status_code == 201
    ivy_token = response.get_json()["token"]
    assert member_id_of(app, ivy_token) != jon_id
    # On member routes too: the token decides.
    me = client.get("/api/v1/member/me", query_string=forged, headers={**headers, **bearer(ivy_token)})
    assert me.get_json()["id"] == member_id_of(app, ivy_token)
    oauth = oauth_login(client, "ivy")
    assert member_id_of(app, oauth.get_json()["token"]) == member_id_of(app, ivy_token)


def test_member_routes_need_a_valid_member_token(client):
    assert client.get("/api/v1/member/me").status_code == 401
    assert client.get("/api/v1/member/me", headers=bearer("forged.token.value")).status_code == 401
