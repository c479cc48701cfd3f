"""Mini-program APIs: login code exchange, phone number, unlimited mini-program codes, and the risk rank."""

from __future__ import annotations

from scrm.wechat.errors import WatermarkMismatch, WeChatError
from scrm.wechat.gateway import limits
from scrm.wechat.gateway.base import GatewayCore, required, without_none
from scrm.wechat.gateway.results import MiniProgramSession, PhoneNumber

_IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")


class MiniProgramApi(GatewayCore):
    """The mini-program half of :class:`WeChatGateway`."""

    def jscode2session(self, appid: str, js_code: str) -> MiniProgramSession:
        """Exchange a ``wx.login`` code for the user's openid, unionid and session key.

        Called without an access token (wechatpy's ``code_to_session`` adds one, costing a token fetch).

        Args:
            appid: A mini-program.
            js_code: The single-use code from ``wx.login``.

        Returns:
            The session; keep ``session_key`` server-side only, never send it to the client.

        Raises:
            InvalidCode: the code is unknown or expired (40029).
            CodeUsed: the code was exchanged before (40163).
            RateLimited: more than 100 exchanges a minute for this user (45011).
        """
        app = self._app(appid, "miniprogram")
        answer = self._get(
            appid,
            "/sns/jscode2session",
            {"appid": appid, "secret": app.secret, "js_code": js_code, "grant_type": "authorization_code"},
            authenticated=False,
        )
        return MiniProgramSession(
            openid=required(answer, "openid"),
            unionid=answer.get("unionid") or None,
            session_key=required(answer, "session_key"),
        )

    def get_phone_number(self, appid: str, code: str, openid: str | None = None) -> PhoneNumber:
        """Exchange a ``getPhoneNumber`` button code (single use, 5 minutes) for a WeChat-verified phone number.

        WeChat verifies numbers but not always in real time, and numbers get recycled: binding a dormant or
        asset-holding legacy member needs a second check.

        Args:
            appid: A mini-program.
            code: ``e.detail.code`` from the button.
            openid: The user's openid, which newer API versions accept as a cross-check.

        Raises:
            InvalidCode: the code is unknown or expired.
            CodeUsed: the code was exchanged before.
            WatermarkMismatch: the answer's watermark names another app.
        """
        self._app(appid, "miniprogram")
        answer = self._post(appid, "/wxa/business/getuserphonenumber", without_none(code=code, openid=openid))
        phone_info = required(answer, "phone_info")
        watermark_appid = (phone_info.get("watermark") or {}).get("appid")
        if watermark_appid != appid:
            raise WatermarkMismatch(None, f"phone number watermark is for another app than {appid}")
        return PhoneNumber(
            phone_number=str(required(phone_info, "phoneNumber")),
            pure_phone_number=str(required(phone_info, "purePhoneNumber")),
            country_code=str(required(phone_info, "countryCode")),
        )

    def get_wxacode_unlimited(
        self,
        appid: str,
        scene: str,
        *,
        page: str | None = None,
        check_path: bool = True,
        env_version: str = "release",
        width: int = 430,
    ) -> bytes:
        """Render a mini-program code that opens ``page`` with ``scene`` (codes never expire; no count limit).

        Args:
            appid: A mini-program.
            scene: At most 32 characters of ``[0-9A-Za-z]`` and ``!#$&'()*+,/:;=?@-._~``; an opaque referral code,
                never a user id or personal data. The page reads it with ``decodeURIComponent(query.scene)``.
            page: A published page such as ``pages/index/index`` (no leading ``/``, no query); None for the home
                page.
            check_path: Whether WeChat checks that the page is published (False allows unpublished pages).
            env_version: ``release``, ``trial`` or ``develop``.
            width: Image width in pixels, 280-1280.

        Returns:
            The image bytes (PNG or JPEG).

        Raises:
            InvalidArgument: unpublished page or bad scene (41030, 40129).
            QuotaExceeded: over the per-minute limit (45009 on this API).
        """
        limits.check_wxacode_scene(scene)
        limits.check_wxacode_page(page)
        limits.check_wxacode_options(env_version, width)
        self._app(appid, "miniprogram")
        body = without_none(scene=scene, page=page, check_path=check_path, env_version=env_version, width=width)
        image = self._transport.call(appid, "POST", self._url("/wxa/getwxacodeunlimit"), json_body=body, binary=True)
        if not isinstance(image, bytes) or not image.startswith(_IMAGE_SIGNATURES):
            raise WeChatError(None, "getwxacodeunlimit answered without an image")
        return image

    def get_user_risk_rank(
        self, appid: str, openid: str, scene: int, client_ip: str, mobile_no: str | None = None
    ) -> int:
        """Ask WeChat how risky a mini-program user is, to hold referral rewards for review.

        Args:
            appid: A mini-program.
            openid: The user's openid for it.
            scene: 0 for registration, 1 for marketing fraud (羊毛党).
            client_ip: The user's IP address as our server saw it.
            mobile_no: The user's phone number, which sharpens the answer.

        Returns:
            The risk rank, 0 (low) to 4 (high).

        Raises:
            UserNotActive: the user has not opened the mini-program recently (61010).
        """
        limits.check_risk_scene(scene)
        self._app(appid, "miniprogram")
        body = without_none(appid=appid, openid=openid, scene=scene, client_ip=client_ip, mobile_no=mobile_no)
        answer = self._post(appid, "/wxa/getuserriskrank", body)
        return int(required(answer, "risk_rank"))
