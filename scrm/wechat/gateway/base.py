"""The gateway's shared core: construction, access tokens, and the helpers every API group uses."""

from __future__ import annotations

import threading
from typing import Any

from scrm.wechat.apps import AppCredentials, AppDirectory
from scrm.wechat.errors import WeChatError
from scrm.wechat.gateway.transport import RoutedWeChatClient, Transport
from scrm.wechat.tokens import TokenStore

PRODUCTION_API_BASE = "https://api.weixin.qq.com"
PRODUCTION_OPEN_BASE = "https://open.weixin.qq.com"
PRODUCTION_MP_BASE = "https://mp.weixin.qq.com"

_KIND_NAMES = {"oa": "an official account", "miniprogram": "a mini-program"}


class GatewayCore:
    """Construction, token access and request helpers shared by the API groups of :class:`WeChatGateway`."""

    def __init__(
        self,
        apps: AppDirectory,
        tokens: TokenStore,
        *,
        api_base: str = PRODUCTION_API_BASE,
        open_base: str = PRODUCTION_OPEN_BASE,
        connect_timeout: float = 3.05,
        read_timeout: float = 5.0,
        mp_base: str | None = None,
    ) -> None:
        """Build a gateway. Production and the sandbox differ only by the base URLs.

        Args:
            apps: Where app credentials come from.
            tokens: Where access tokens are cached and their refresh is serialised.
            api_base: Base URL of the server APIs (``SCRM_WECHAT_API_BASE`` points it at the sandbox).
            open_base: Base URL of the web OAuth authorize page.
            connect_timeout: Seconds to wait for a TCP connection on every call.
            read_timeout: Seconds to wait for each read of an answer on every call.
            mp_base: Base URL of ``showqrcode``. WeChat serves it from mp.weixin.qq.com rather than the API host;
                when None it is mp.weixin.qq.com in production and ``api_base`` otherwise (the sandbox serves it).
        """
        self._transport = Transport(
            apps, tokens, api_base=api_base, connect_timeout=connect_timeout, read_timeout=read_timeout
        )
        self._api_base = self._transport.api_base
        self._open_base = open_base.rstrip("/")
        if mp_base is None:
            mp_base = PRODUCTION_MP_BASE if self._api_base == PRODUCTION_API_BASE else self._api_base
        self._mp_base = mp_base.rstrip("/")
        self._wechatpy_clients: dict[str, RoutedWeChatClient] = {}
        self._wechatpy_clients_guard = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(api_base={self._api_base!r}, open_base={self._open_base!r})"

    def access_token(self, appid: str) -> str:
        """Return the app's access token from the cache, fetching a stable token when there is none.

        The token comes from ``cgi-bin/stable_token`` in normal mode and is cached until ``expires_in - 300``
        seconds. Only one process refreshes at a time (the token store's lock); the others wait and re-read.

        Args:
            appid: The app whose token is wanted.

        Returns:
            The access token. Treat it as a secret: never log it.

        Raises:
            AppMisconfigured: the appid is unknown here, or WeChat refused the appid, secret or caller IP.
            WeChatUnavailable: WeChat could not be reached, or the refresh lock stayed busy.
        """
        return self._transport.access_token(appid)

    def force_refresh_token(self, appid: str) -> str:
        """Fetch a new token with ``force_refresh=true``, invalidating the current one at WeChat.

        WeChat allows this 20 times a day, at least 30 seconds apart; keep it for operators and emergencies.

        Args:
            appid: The app whose token is replaced.

        Returns:
            The new access token.
        """
        return self._transport.force_refresh_token(appid)

    def _app(self, appid: str, kind: str | None = None) -> AppCredentials:
        app = self._transport.app(appid)
        if kind is not None and app.kind != kind:
            raise ValueError(f"{appid} is {_KIND_NAMES[app.kind]}; this API needs {_KIND_NAMES[kind]}")
        return app

    def _wechatpy(self, appid: str) -> RoutedWeChatClient:
        with self._wechatpy_clients_guard:
            client = self._wechatpy_clients.get(appid)
            if client is None:
                client = self._wechatpy_clients[appid] = RoutedWeChatClient(self._transport, appid)
        return client

    def _url(self, path: str) -> str:
        return f"{self._api_base}{path}"

    def _get(self, appid: str, path: str, params: dict[str, Any], *, authenticated: bool = True) -> dict[str, Any]:
        return self._transport.call(appid, "GET", self._url(path), params=params, authenticated=authenticated)

    def _post(self, appid: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._transport.call(appid, "POST", self._url(path), json_body=body)


def required(answer: dict[str, Any], name: str) -> Any:
    """Return ``answer[name]``, or raise ``WeChatError`` when WeChat's answer lacks a field it documents."""
    value = answer.get(name)
    if value is None:
        raise WeChatError(None, f"WeChat's answer has no {name!r}")
    return value


def without_none(**fields: Any) -> dict[str, Any]:
    """Build a request body from keyword arguments, leaving out the unset ones (WeChat rejects some nulls)."""
    return {name: value for name, value in fields.items() if value is not None}
