"""The one HTTP path every gateway call takes: timeouts, the access token, errcodes and the single retry."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from wechatpy import WeChatClient

from scrm.wechat.apps import AppCredentials, AppDirectory
from scrm.wechat.errors import (
    TOKEN_ERRCODES,
    AppMisconfigured,
    WeChatError,
    WeChatTimeout,
    WeChatUnavailable,
    error_for,
)
from scrm.wechat.tokens import TokenStore

log = logging.getLogger("scrm.wechat.gateway")

#: A stable_token lives 7200 s; we stop using it 300 s early (WeChat renews it in the last 5 minutes).
TOKEN_EARLY_EXPIRY_S = 300

# urllib3 logs every request line at DEBUG, query string included, and WeChat puts access_token (and for a few
# APIs the app secret and one-time codes) in the query. These are the parameters that must never reach a log.
_SENSITIVE_QUERY = re.compile(r"(?P<name>[?&](?:access_token|secret|js_code|code|refresh_token))=[^&\s\"']+")


class _SensitiveQueryFilter(logging.Filter):
    """Masks credential-bearing query parameters in urllib3's request-line log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = _SENSITIVE_QUERY.sub(r"\g<name>=***", message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


def install_urllib3_log_filter() -> None:
    """Attach the query-masking filter to urllib3's connection-pool logger, once per process."""
    urllib3_log = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(existing, _SensitiveQueryFilter) for existing in urllib3_log.filters):
        urllib3_log.addFilter(_SensitiveQueryFilter())


class Transport:
    """Sends WeChat API requests for the gateway and owns the access-token lifecycle.

    Every call goes through :meth:`call`: it adds the cached access token, applies the connect/read timeouts,
    turns errcodes into typed exceptions, and on a token errcode (40001/40014/42001) drops the cached token,
    refreshes it once (single-flight through the token store's lock) and retries the call once.
    """

    def __init__(
        self,
        apps: AppDirectory,
        tokens: TokenStore,
        *,
        api_base: str,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        self.apps = apps
        self.tokens = tokens
        self.api_base = api_base.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self.http = requests.Session()
        # Default pools hold 10 connections per host; bursts of concurrent jobs would churn sockets and log warnings.
        # max_retries=0: a resent POST could send a message twice, so retrying is the caller's (idempotent) job.
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
        self.http.mount("https://", adapter)
        self.http.mount("http://", adapter)
        install_urllib3_log_filter()

    def app(self, appid: str) -> AppCredentials:
        """Return the credentials of ``appid`` or raise ``AppMisconfigured`` when it is not configured."""
        app = self.apps.get(appid)
        if app is None:
            raise AppMisconfigured(40013, f"appid {appid} is not configured in this deployment")
        return app

    def access_token(self, appid: str) -> str:
        """Return a usable access token for ``appid``, fetching a stable token when the cache has none."""
        app = self.app(appid)
        cached = self.tokens.get(appid)
        if cached is not None and cached.is_fresh():
            return cached.token
        try:
            with self.tokens.refresh_lock(appid):
                # Whoever held the lock before us has probably refreshed already: re-read before fetching.
                cached = self.tokens.get(appid)
                if cached is not None and cached.is_fresh():
                    return cached.token
                return self._fetch_token(app, force_refresh=False)
        except TimeoutError:
            raise WeChatUnavailable(None, f"token refresh lock of {appid} stayed busy") from None

    def force_refresh_token(self, appid: str) -> str:
        """Fetch a new token with ``force_refresh``, which invalidates the current one at WeChat."""
        app = self.app(appid)
        try:
            with self.tokens.refresh_lock(appid):
                return self._fetch_token(app, force_refresh=True)
        except TimeoutError:
            raise WeChatUnavailable(None, f"token refresh lock of {appid} stayed busy") from None

    def _fetch_token(self, app: AppCredentials, *, force_refresh: bool) -> str:
        # stable_token, not cgi-bin/token: in normal mode concurrent fetchers get the same token and cannot
        # invalidate each other's, and the secret travels in the body rather than the URL.
        payload = self.send(
            "POST",
            f"{self.api_base}/cgi-bin/stable_token",
            json_body={
                "grant_type": "client_credential",
                "appid": app.appid,
                "secret": app.secret,
                "force_refresh": force_refresh,
            },
        )
        payload = raise_for_errcode(payload)
        token = payload.get("access_token")
        if not isinstance(token, str) or not token:
            raise WeChatError(None, "stable_token answered without an access_token")
        expires_in = int(payload.get("expires_in", 7200))
        lifetime = max(expires_in - TOKEN_EARLY_EXPIRY_S, expires_in / 2)
        self.tokens.set(app.appid, token, time.time() + lifetime)
        log.info(
            "fetched %s access token for %s, valid for %d s",
            "a force-refreshed" if force_refresh else "a stable",
            app.appid,
            expires_in,
        )
        return token

    def call(
        self,
        appid: str,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        authenticated: bool = True,
        binary: bool = False,
    ) -> Any:
        """Make one WeChat API call for ``appid`` and return its decoded answer.

        Args:
            appid: The app the call is made for; its token is added when ``authenticated``.
            method: "GET" or "POST".
            url: The full API URL, without ``access_token``.
            params: Query parameters.
            json_body: A JSON-serialisable body, sent as UTF-8 without ASCII escaping (WeChat shows ``\\u`` escapes
                literally in some messages).
            authenticated: Whether to add the app's access token; the code exchanges authenticate with the secret.
            binary: Whether an image answer is expected; JSON is then read as an error.

        Returns:
            The JSON answer as a dict, or the raw bytes for a binary answer.

        Raises:
            WeChatError: a subclass chosen by the errcode; ``WeChatUnavailable``/``WeChatTimeout`` for transport
                failures.
        """
        self.app(appid)
        token = self.access_token(appid) if authenticated else None
        answer = self.send(method, url, params=_with_token(params, token), json_body=json_body, binary=binary)
        if token is not None and errcode_of(answer) in TOKEN_ERRCODES:
            # One guarded refresh and one retry, never more: wechatpy's own retry recurses without bound and can
            # burn the day's token quota on a persistent 40001.
            log.info(
                "%s refused the access token of %s (errcode %s); refreshing it and retrying once",
                urlsplit(url).path,
                appid,
                errcode_of(answer),
            )
            self.tokens.invalidate(appid, token)
            token = self.access_token(appid)
            answer = self.send(method, url, params=_with_token(params, token), json_body=json_body, binary=binary)
        return raise_for_errcode(answer)

    def send(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        binary: bool = False,
    ) -> dict[str, Any] | bytes:
        """Send one HTTP request and decode the answer, without looking at its errcode."""
        path = urlsplit(url).path
        body = None if json_body is None else json.dumps(json_body, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8"} if body is not None else {}
        started = time.monotonic()
        failure: WeChatError | None = None
        try:
            response = self.http.request(method, url, params=params, data=body, headers=headers, timeout=self.timeout)
        except requests.Timeout:
            failure = WeChatTimeout(None, f"no answer from {path} within {self.timeout[0]}+{self.timeout[1]} s")
        except requests.RequestException as exc:
            failure = WeChatUnavailable(None, f"{path} unreachable ({type(exc).__name__})")
        # Raised here, outside the except blocks, so the requests exception (whose text holds the full URL and
        # thus the access token) is not chained onto ours and cannot surface in a logged traceback.
        if failure is not None:
            log.warning("wechat %s %s failed: %s", method, path, failure)
            raise failure
        elapsed_ms = (time.monotonic() - started) * 1000
        log.debug("wechat %s %s answered HTTP %d in %.0f ms", method, path, response.status_code, elapsed_ms)
        if response.status_code >= 500:
            raise WeChatUnavailable(None, f"{path} answered HTTP {response.status_code}")
        if response.status_code >= 400:
            raise WeChatError(None, f"{path} answered HTTP {response.status_code}")
        if binary and not _is_json(response):
            return response.content
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise WeChatUnavailable(None, f"{path} answered something other than a JSON object")
        return answer


def errcode_of(answer: dict[str, Any] | bytes) -> int:
    """Return the answer's errcode as an int (0 for success and for binary answers)."""
    if isinstance(answer, bytes):
        return 0
    try:
        return int(answer.get("errcode") or 0)
    except (TypeError, ValueError):
        return -1


def raise_for_errcode(answer: dict[str, Any] | bytes) -> Any:
    """Return the answer unchanged, or raise the typed error its errcode names."""
    errcode = errcode_of(answer)
    if errcode != 0:
        assert isinstance(answer, dict)
        raise error_for(errcode, answer.get("errmsg"))
    return answer


def _with_token(params: dict[str, Any] | None, token: str | None) -> dict[str, Any]:
    query = dict(params or {})
    if token is not None:
        query["access_token"] = token
    return query


def _is_json(response: requests.Response) -> bool:
    content_type = response.headers.get("Content-Type", "")
    return "json" in content_type or response.content[:1] == b"{"


class RoutedWeChatClient(WeChatClient):
    """wechatpy's client with its HTTP layer replaced by :class:`Transport`: wechatpy only builds the requests.

    The base URLs are pointed at the transport's ``api_base`` (research §3.4), wechatpy's own token handling is
    bypassed (it holds no secret and never fetches), and its recursive retry is off.
    """

    def __init__(self, transport: Transport, appid: str) -> None:
        super().__init__(appid, secret="", auto_retry=False)
        self._transport = transport
        self._http = transport.http
        self.API_BASE_URL = f"{transport.api_base}/cgi-bin/"
        self.wxa.API_BASE_URL = f"{transport.api_base}/"

    @property
    def access_token(self) -> str:  # type: ignore[override]
        return self._transport.access_token(self.appid)

    def fetch_access_token(self) -> dict[str, Any]:
        raise NotImplementedError("tokens are fetched by the gateway transport, never by wechatpy")

    def _request(self, method: str, url_or_endpoint: str, **kwargs: Any) -> Any:
        api_base_url = kwargs.pop("api_base_url", self.API_BASE_URL)
        url = url_or_endpoint if url_or_endpoint.startswith(("http://", "https://")) else api_base_url + url_or_endpoint
        result_processor = kwargs.pop("result_processor", None)
        result = self._transport.call(
            self.appid, method.upper(), url, params=kwargs.get("params"), json_body=kwargs.get("data")
        )
        return result_processor(result) if result_processor else result
