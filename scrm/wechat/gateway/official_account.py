"""Official-account APIs: parametric QR codes, user info, tags, the menu, and web OAuth."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from scrm.wechat.errors import WeChatError
from scrm.wechat.gateway import limits
from scrm.wechat.gateway.base import GatewayCore, required
from scrm.wechat.gateway.results import OAuthGrant, OAuthUserInfo, QrCode, Tag, UserInfo

_MENU_NOT_FOUND = 46003


class OfficialAccountApi(GatewayCore):
    """The official-account half of :class:`WeChatGateway`."""

    def create_qrcode(
        self,
        appid: str,
        scene_str: str,
        *,
        expire_seconds: int = limits.MAX_QR_EXPIRE_SECONDS,
        permanent: bool = False,
    ) -> QrCode:
        """Create a parametric QR code whose scan reports ``scene_str`` in the subscribe/SCAN event.

        Codes are temporary (``QR_STR_SCENE``, at most 30 days) unless ``permanent`` is passed explicitly. WeChat
        caps permanent codes at 100,000 per account for the account's whole life, so we never mint one per member:
        re-issue temporary codes instead.

        Args:
            appid: An official account.
            scene_str: 1-64 characters reported back on scan.
            expire_seconds: Lifetime of a temporary code, 1-2,592,000 seconds.
            permanent: Create a ``QR_LIMIT_STR_SCENE`` code; ``expire_seconds`` is then ignored.

        Returns:
            The ticket, the QR content URL, the lifetime (None when permanent) and the image URL.
        """
        limits.check_scene_str(scene_str)
        self._app(appid, "oa")
        scene = {"scene": {"scene_str": scene_str}}
        if permanent:
            request: dict[str, Any] = {"action_name": "QR_LIMIT_STR_SCENE", "action_info": scene}
        else:
            limits.check_qr_expiry(expire_seconds)
            request = {"expire_seconds": expire_seconds, "action_name": "QR_STR_SCENE", "action_info": scene}
        answer = self._wechatpy(appid).qrcode.create(request)
        ticket = required(answer, "ticket")
        return QrCode(
            ticket=ticket,
            url=required(answer, "url"),
            expire_seconds=None if permanent else int(answer.get("expire_seconds", expire_seconds)),
            image_url=f"{self._mp_base}/cgi-bin/showqrcode?ticket={quote(ticket, safe='')}",
        )

    def user_info(self, appid: str, openid: str, *, lang: str = "zh_CN") -> UserInfo:
        """Fetch one user's follow state, unionid and subscribe scene.

        Use ``subscribe_scene == "ADD_SCENE_QR_CODE"`` and ``qr_scene_str`` as the server-side confirmation of a QR
        follow before rewarding a referral.

        Args:
            appid: An official account.
            openid: The user's openid for that account.
            lang: ``zh_CN``, ``zh_TW`` or ``en``.

        Raises:
            InvalidOpenid: the openid is not this account's.
        """
        self._app(appid, "oa")
        return UserInfo.from_wechat(self._wechatpy(appid).user.get(openid, lang))

    def batch_user_info(self, appid: str, openids: Sequence[str], *, lang: str = "zh_CN") -> list[UserInfo]:
        """Fetch up to 100 users in one call (``user/info/batchget``), in WeChat's order.

        Raises:
            ValueError: more than 100 openids.
        """
        limits.check_openids(openids, at_most=limits.MAX_BATCH_USER_INFO)
        self._app(appid, "oa")
        if not openids:
            return []
        user_list = [{"openid": openid, "lang": lang} for openid in openids]
        return [UserInfo.from_wechat(raw) for raw in self._wechatpy(appid).user.get_batch(user_list)]

    def create_tag(self, appid: str, name: str) -> Tag:
        """Create a user tag (an account holds at most 100; names are at most 30 bytes).

        Raises:
            InvalidArgument: the name is taken or the account already has 100 tags.
        """
        limits.check_tag_name(name)
        self._app(appid, "oa")
        created = self._wechatpy(appid).tag.create(name)
        return Tag(id=int(required(created, "id")), name=created.get("name", name))

    def list_tags(self, appid: str) -> list[Tag]:
        """List the account's tags, with the number of users holding each."""
        self._app(appid, "oa")
        return [Tag(id=int(t["id"]), name=t["name"], count=t.get("count")) for t in self._wechatpy(appid).tag.get()]

    def tag_users(self, appid: str, tagid: int, openids: Sequence[str]) -> None:
        """Put ``tagid`` on every openid, 50 per call as WeChat requires.

        Tagging is idempotent, so after a failure part-way the whole call can be repeated.

        Raises:
            InvalidArgument: the tag does not exist or a user already holds 20 tags.
        """
        self._tag_in_chunks(appid, tagid, openids, untag=False)

    def untag_users(self, appid: str, tagid: int, openids: Sequence[str]) -> None:
        """Remove ``tagid`` from every openid, 50 per call."""
        self._tag_in_chunks(appid, tagid, openids, untag=True)

    def _tag_in_chunks(self, appid: str, tagid: int, openids: Sequence[str], *, untag: bool) -> None:
        limits.check_openids(openids)
        self._app(appid, "oa")
        tags = self._wechatpy(appid).tag
        send = tags.untag_user if untag else tags.tag_user
        for start in range(0, len(openids), limits.MAX_OPENIDS_PER_TAG_CALL):
            send(tagid, list(openids[start : start + limits.MAX_OPENIDS_PER_TAG_CALL]))

    def create_menu(self, appid: str, menu: Mapping[str, Any]) -> None:
        """Replace the account's custom menu.

        Args:
            appid: An official account.
            menu: WeChat's menu body, ``{"button": [...]}`` with at most 3 top-level buttons of at most 5 each.
        """
        self._app(appid, "oa")
        self._wechatpy(appid).menu.create(dict(menu))

    def get_menu(self, appid: str) -> dict[str, Any] | None:
        """Return the account's custom menu as WeChat's ``{"menu": {"button": [...]}, ...}``, or None if unset."""
        self._app(appid, "oa")
        try:
            return self._wechatpy(appid).menu.get()
        except WeChatError as error:
            if error.errcode == _MENU_NOT_FOUND:
                return None
            raise

    def oauth_authorize_url(self, appid: str, redirect_uri: str, state: str, scope: str = "snsapi_base") -> str:
        """Build the URL that starts web OAuth inside WeChat's browser.

        Start with ``snsapi_base`` (silent): forcing ``snsapi_userinfo`` on landing sends users to snapshot pages
        whose identities are virtual.

        Args:
            appid: An official account.
            redirect_uri: Where WeChat sends the browser back with ``code`` and ``state``; its domain must be the
                account's OAuth domain.
            state: The CSRF nonce bound to the session, 1-128 characters of ``[A-Za-z0-9]``.
            scope: ``snsapi_base`` or ``snsapi_userinfo``.
        """
        limits.check_oauth_request(redirect_uri, state, scope)
        self._app(appid, "oa")
        # WeChat checks the parameter order, and redirect_uri must be fully percent-encoded.
        query = (
            f"appid={quote(appid, safe='')}&redirect_uri={quote(redirect_uri, safe='')}"
            f"&response_type=code&scope={scope}&state={state}"
        )
        return f"{self._open_base}/connect/oauth2/authorize?{query}#wechat_redirect"

    def oauth_exchange(self, appid: str, code: str) -> OAuthGrant:
        """Exchange a web OAuth code (single use, 5 minutes) for the user's openid.

        Returns:
            The grant. Its ``access_token`` (the user's, not the app's) is only for :meth:`oauth_userinfo`.

        Raises:
            InvalidCode: the code is unknown or expired.
            CodeUsed: the code was exchanged before.
        """
        app = self._app(appid, "oa")
        answer = self._get(
            appid,
            "/sns/oauth2/access_token",
            {"appid": appid, "secret": app.secret, "code": code, "grant_type": "authorization_code"},
            authenticated=False,
        )
        return OAuthGrant(
            appid=appid,
            openid=required(answer, "openid"),
            scope=answer.get("scope", ""),
            unionid=answer.get("unionid") or None,
            is_snapshotuser=bool(answer.get("is_snapshotuser")),
            expires_in=int(answer.get("expires_in", 7200)),
            access_token=required(answer, "access_token"),
        )

    def oauth_userinfo(self, appid: str, grant: OAuthGrant, *, lang: str = "zh_CN") -> OAuthUserInfo:
        """Fetch the profile behind an ``snsapi_userinfo`` grant.

        Raises:
            AppMisconfigured: the grant's scope is ``snsapi_base`` (48001).
        """
        self._app(appid, "oa")
        if grant.appid != appid:
            raise ValueError("the grant was issued to another app")
        answer = self._get(
            appid,
            "/sns/userinfo",
            {"access_token": grant.access_token, "openid": grant.openid, "lang": lang},
            authenticated=False,
        )
        return OAuthUserInfo(
            openid=required(answer, "openid"),
            unionid=answer.get("unionid") or None,
            nickname=answer.get("nickname"),
            headimgurl=answer.get("headimgurl"),
        )
