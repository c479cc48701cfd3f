"""Messages to users: template messages, subscription messages and customer-service text."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scrm.wechat.gateway.base import GatewayCore, without_none


class MessagingApi(GatewayCore):
    """The messaging part of :class:`WeChatGateway`."""

    def send_template(
        self,
        appid: str,
        openid: str,
        template_id: str,
        data: Mapping[str, Any],
        *,
        url: str | None = None,
        miniprogram: Mapping[str, str] | None = None,
        client_msg_id: str | None = None,
    ) -> int:
        """Send a template message (certified service accounts; service notices only, never marketing).

        Args:
            appid: An official account.
            openid: A current follower.
            template_id: An active template of the account.
            data: ``{"thing1": {"value": "…"}, …}``; since 2023-05 each value is cut at 20 characters.
            url: Page opened on tap.
            miniprogram: ``{"appid", "pagepath"}`` to open a mini-program instead.
            client_msg_id: Idempotency key: WeChat sends once per openid + client_msg_id within 10 minutes, so a
                retried job cannot send twice. wechatpy 1.8.18 cannot pass it, hence the plain post.

        Returns:
            WeChat's msgid (the ``TEMPLATESENDJOBFINISH`` event reports the delivery).

        Raises:
            NotSubscribed: the user does not follow the account (43004).
            InvalidArgument: unknown template or bad data (40037, 47003).
            QuotaExceeded: the daily quota is spent (45009).
        """
        self._app(appid, "oa")
        body = without_none(
            touser=openid,
            template_id=template_id,
            url=url,
            miniprogram=dict(miniprogram) if miniprogram else None,
            client_msg_id=client_msg_id,
            data=dict(data),
        )
        answer = self._post(appid, "/cgi-bin/message/template/send", body)
        return int(answer.get("msgid", 0))

    def send_subscribe_message(
        self,
        appid: str,
        openid: str,
        template_id: str,
        data: Mapping[str, Any],
        *,
        page: str | None = None,
        miniprogram: Mapping[str, str] | None = None,
        miniprogram_state: str | None = None,
        lang: str | None = None,
    ) -> None:
        """Send a subscription message, spending one of the user's one-time acceptances of the template.

        An official account sends through ``cgi-bin/message/subscribe/bizsend``; a mini-program through
        ``cgi-bin/message/subscribe/send``. The kind of ``appid`` decides.

        Args:
            appid: An official account or a mini-program.
            openid: The user's openid for that app.
            template_id: The subscription template the user accepted.
            data: Keyword values; WeChat checks lengths per keyword type (``thing`` ≤ 20 characters, …).
            page: For an OA, a web URL; for a mini-program, a page path.
            miniprogram: OA only: ``{"appid", "pagepath"}`` to open a mini-program.
            miniprogram_state: Mini-program only: ``developer``, ``trial`` or ``formal``.
            lang: Mini-program only: ``zh_CN``, ``en_US``, ``zh_HK`` or ``zh_TW``.

        Raises:
            UserRefused: the user refused, or has no acceptance left (43101).
            InvalidArgument: the data breaks a keyword rule (47003).
        """
        app = self._app(appid)
        if app.is_official_account:
            if miniprogram_state is not None or lang is not None:
                raise ValueError("miniprogram_state and lang apply to mini-program subscription messages only")
            self._wechatpy(appid).message.send_subscribe_message(
                openid, template_id, dict(data), miniprogram=dict(miniprogram) if miniprogram else None, page=page
            )
            return
        if miniprogram is not None:
            raise ValueError("miniprogram applies to official-account subscription messages only")
        body = without_none(
            touser=openid,
            template_id=template_id,
            page=page,
            data=dict(data),
            miniprogram_state=miniprogram_state,
            lang=lang,
        )
        self._post(appid, "/cgi-bin/message/subscribe/send", body)

    def send_custom_text(self, appid: str, openid: str, content: str) -> None:
        """Send a customer-service text message inside the user's interaction window.

        A message from the user opens 5 sends for 48 hours; a follow, scan or menu click opens 3 sends for one
        minute, so a follow-up to a subscribe event must leave quickly.

        Raises:
            CustomerServiceWindowClosed: no open window, or its sends are spent (45015, 45047).
        """
        self._app(appid, "oa")
        self._wechatpy(appid).message.send_text(openid, content)
