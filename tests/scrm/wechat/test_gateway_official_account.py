"""Official-account APIs through the gateway against the sandbox: QR codes, users, tags, menu, web OAuth."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from scrm.wechat.errors import AppMisconfigured, CodeUsed, InvalidArgument, InvalidCode, InvalidOpenid
from scrm.wechat.gateway import WeChatGateway
from scrm.wechat.sandbox import RunningSandbox
from scrm.wechat.sandbox.client import SandboxClient

from .conftest import MINIPROGRAM, OA_PLAIN, OA_SAFE


def test_create_qrcode_makes_a_temporary_string_scene_code(
    gateway: WeChatGateway, control: SandboxClient, sandbox: RunningSandbox
) -> None:
    qr = gateway.create_qrcode(OA_SAFE.appid, "r:AbC123", expire_seconds=3600)
    assert qr.expire_seconds == 3600
    assert qr.url
    assert qr.image_url.startswith(f"{sandbox.base_url}/cgi-bin/showqrcode?ticket=")
    [ticket] = control.tickets()
    assert ticket == {
        "ticket": qr.ticket,
        "appid": OA_SAFE.appid,
        "scene": "r:AbC123",
        "permanent": False,
        "expired": False,
    }
    image = requests.get(qr.image_url, timeout=5)
    assert image.headers["Content-Type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")


def test_permanent_qrcode_only_when_asked(gateway: WeChatGateway, control: SandboxClient) -> None:
    qr = gateway.create_qrcode(OA_SAFE.appid, "staff-desk-1", permanent=True)
    assert qr.expire_seconds is None
    assert control.tickets()[0]["permanent"] is True


def test_production_image_url_is_on_mp_weixin() -> None:
    from scrm.wechat.apps import StaticAppDirectory
    from scrm.wechat.tokens import LocalTokenStore

    production = WeChatGateway(StaticAppDirectory([OA_SAFE]), LocalTokenStore())
    assert production._mp_base == "https://mp.weixin.qq.com"


@pytest.mark.parametrize(
    ("scene_str", "options"),
    [("", {}), ("x" * 65, {}), ("ok", {"expire_seconds": 2_592_001}), ("ok", {"expire_seconds": 0})],
)
def test_create_qrcode_validates_before_calling(
    gateway: WeChatGateway, control: SandboxClient, scene_str: str, options: dict
) -> None:
    with pytest.raises(ValueError):
        gateway.create_qrcode(OA_SAFE.appid, scene_str, **options)
    assert control.stats()["calls"] == {}


def test_official_account_apis_refuse_a_miniprogram_appid(gateway: WeChatGateway) -> None:
    with pytest.raises(ValueError, match="mini-program"):
        gateway.create_qrcode(MINIPROGRAM.appid, "x")


def test_user_info_confirms_a_qr_follow(gateway: WeChatGateway, control: SandboxClient, user: dict) -> None:
    qr = gateway.create_qrcode(OA_SAFE.appid, "r:ref42")
    control.scan(user["user_id"], qr.ticket)
    info = gateway.user_info(OA_SAFE.appid, control.openid(user["user_id"], OA_SAFE.appid))
    assert info.subscribed
    assert info.subscribe_scene == "ADD_SCENE_QR_CODE"
    assert info.qr_scene_str == "r:ref42"
    assert info.unionid == user["unionid"]


def test_user_info_of_a_non_follower(gateway: WeChatGateway, control: SandboxClient, user: dict) -> None:
    info = gateway.user_info(OA_SAFE.appid, control.openid(user["user_id"], OA_SAFE.appid))
    assert not info.subscribed
    assert info.subscribe_scene is None


def test_an_openid_of_another_app_is_invalid(gateway: WeChatGateway, follower: dict) -> None:
    with pytest.raises(InvalidOpenid):
        gateway.user_info(OA_PLAIN.appid, follower["openids"][OA_SAFE.appid])


def test_batch_user_info(gateway: WeChatGateway, control: SandboxClient, follower: dict) -> None:
    bob = control.create_user("bob")
    openids = [follower["openids"][OA_SAFE.appid], bob["openids"][OA_SAFE.appid]]
    infos = gateway.batch_user_info(OA_SAFE.appid, openids)
    assert [(i.openid, i.subscribed) for i in infos] == [(openids[0], True), (openids[1], False)]
    assert gateway.batch_user_info(OA_SAFE.appid, []) == []
    with pytest.raises(ValueError):
        gateway.batch_user_info(OA_SAFE.appid, ["o"] * 101)


def test_tags_are_created_listed_and_applied_in_chunks_of_fifty(
    gateway: WeChatGateway, control: SandboxClient, sandbox: RunningSandbox
) -> None:
    users = [sandbox.state.create_user(f"fan{n}") for n in range(60)]
    openids = [sandbox.state.openid_for(u, OA_SAFE.appid) for u in users]
    tag = gateway.create_tag(OA_SAFE.appid, "高价值")
    control.reset_stats()

    gateway.tag_users(OA_SAFE.appid, tag.id, openids)

    assert control.stats()["calls"]["/cgi-bin/tags/members/batchtagging"] == 2
    counts = {t.name: t.count for t in gateway.list_tags(OA_SAFE.appid)}
    assert counts["高价值"] == 60
    gateway.untag_users(OA_SAFE.appid, tag.id, openids[:10])
    assert {t.id: t.count for t in gateway.list_tags(OA_SAFE.appid)}[tag.id] == 50
    assert gateway.user_info(OA_SAFE.appid, openids[0]).tagid_list == ()


def test_tag_errors(gateway: WeChatGateway, follower: dict) -> None:
    gateway.create_tag(OA_SAFE.appid, "vip")
    with pytest.raises(InvalidArgument) as duplicate:
        gateway.create_tag(OA_SAFE.appid, "vip")
    assert duplicate.value.errcode == 45157
    with pytest.raises(InvalidArgument) as unknown_tag:
        gateway.tag_users(OA_SAFE.appid, 999, [follower["openids"][OA_SAFE.appid]])
    assert unknown_tag.value.errcode == 45159
    with pytest.raises(ValueError):
        gateway.create_tag(OA_SAFE.appid, "长" * 11)  # 33 bytes of UTF-8


def test_menu_round_trip(gateway: WeChatGateway) -> None:
    assert gateway.get_menu(OA_SAFE.appid) is None
    menu = {
        "button": [
            {"type": "click", "name": "今日歌曲", "key": "V1001_TODAY_MUSIC"},
            {"name": "菜单", "sub_button": [{"type": "view", "name": "会员中心", "url": "https://example.com/m"}]},
        ]
    }
    gateway.create_menu(OA_SAFE.appid, menu)
    assert gateway.get_menu(OA_SAFE.appid)["menu"] == menu
    with pytest.raises(InvalidArgument):
        gateway.create_menu(OA_SAFE.appid, {"button": [{"type": "click", "name": "x"}]})


def test_oauth_authorize_url_has_wechat_parameter_order(gateway: WeChatGateway, sandbox: RunningSandbox) -> None:
    url = gateway.oauth_authorize_url(OA_SAFE.appid, "https://m.example.com/cb?x=1", "Nonce123", "snsapi_userinfo")
    assert url.startswith(f"{sandbox.base_url}/connect/oauth2/authorize?appid={OA_SAFE.appid}&redirect_uri=")
    assert url.endswith("&response_type=code&scope=snsapi_userinfo&state=Nonce123#wechat_redirect")
    assert "https%3A%2F%2Fm.example.com%2Fcb%3Fx%3D1" in url
    with pytest.raises(ValueError):
        gateway.oauth_authorize_url(OA_SAFE.appid, "https://m.example.com/cb", "bad state!")
    with pytest.raises(ValueError):
        gateway.oauth_authorize_url(OA_SAFE.appid, "https://m.example.com/cb", "ok", "snsapi_login")


def authorize(gateway: WeChatGateway, user_id: str, scope: str = "snsapi_base", **choices: str) -> dict[str, list[str]]:
    """Open the authorize URL as a sandbox user, like WeChat's browser, and return the redirect's query."""
    url = gateway.oauth_authorize_url(OA_SAFE.appid, "https://m.example.com/cb?from=menu", "Nonce123", scope)
    response = requests.get(url, params={"sandbox_user": user_id, **choices}, allow_redirects=False, timeout=5)
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert (location.netloc, location.path) == ("m.example.com", "/cb")
    return parse_qs(location.query)


def test_oauth_base_scope_yields_the_openid_without_profile(gateway: WeChatGateway, user: dict) -> None:
    query = authorize(gateway, user["user_id"])
    assert query["state"] == ["Nonce123"]
    assert query["from"] == ["menu"]

    grant = gateway.oauth_exchange(OA_SAFE.appid, query["code"][0])

    assert grant.openid == user["openids"][OA_SAFE.appid]
    assert grant.scope == "snsapi_base"
    assert grant.unionid is None
    assert not grant.is_snapshotuser
    assert grant.access_token
    assert grant.access_token not in repr(grant)
    with pytest.raises(AppMisconfigured) as unauthorized:
        gateway.oauth_userinfo(OA_SAFE.appid, grant)
    assert unauthorized.value.errcode == 48001
    with pytest.raises(CodeUsed):
        gateway.oauth_exchange(OA_SAFE.appid, query["code"][0])


def test_oauth_userinfo_scope_yields_unionid_and_profile(gateway: WeChatGateway, user: dict) -> None:
    grant = gateway.oauth_exchange(OA_SAFE.appid, authorize(gateway, user["user_id"], "snsapi_userinfo")["code"][0])
    assert grant.unionid == user["unionid"]
    profile = gateway.oauth_userinfo(OA_SAFE.appid, grant)
    assert profile.nickname == "Alice"
    assert profile.unionid == user["unionid"]


def test_oauth_snapshot_page_gives_a_virtual_identity(gateway: WeChatGateway, user: dict) -> None:
    query = authorize(gateway, user["user_id"], "snsapi_userinfo", sandbox_snapshot="1")
    grant = gateway.oauth_exchange(OA_SAFE.appid, query["code"][0])
    assert grant.is_snapshotuser
    assert grant.openid != user["openids"][OA_SAFE.appid]


def test_oauth_refusal_returns_no_code(gateway: WeChatGateway, user: dict) -> None:
    query = authorize(gateway, user["user_id"], "snsapi_userinfo", sandbox_refuse="1")
    assert "code" not in query
    assert query["state"] == ["Nonce123"]


def test_oauth_invalid_code(gateway: WeChatGateway) -> None:
    with pytest.raises(InvalidCode):
        gateway.oauth_exchange(OA_SAFE.appid, "never-issued")


def test_authorize_page_lets_a_person_choose_the_user(gateway: WeChatGateway, user: dict) -> None:
    page = requests.get(gateway.oauth_authorize_url(OA_SAFE.appid, "https://m.example.com/cb", "abc"), timeout=5)
    assert page.status_code == 200
    assert "text/html" in page.headers["Content-Type"]
    assert "<option>alice</option>" in page.text
    assert 'name="sandbox_user"' in page.text
    bad = requests.get(page.url.replace(OA_SAFE.appid, MINIPROGRAM.appid), timeout=5)
    assert bad.status_code == 400
