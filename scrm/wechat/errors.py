"""Typed exceptions for WeChat API failures, one class per way a caller has to react."""

from __future__ import annotations

import re
from typing import ClassVar

# WeChat's errmsg sometimes carries a help link ("more details at https://…"); a link in an exception message
# is where a URL with an access_token would sneak in one day, so no URL survives into str().
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
_MAX_ERRMSG_CHARS = 200


def _clean_errmsg(errmsg: str | None) -> str:
    text = _URL.sub("<url>", str(errmsg or "")).strip()
    return text[:_MAX_ERRMSG_CHARS]


class WeChatError(Exception):
    """A WeChat API call failed.

    Attributes:
        errcode: WeChat's ``errcode``, or None when the failure never reached WeChat's error handling (a transport
            error, an answer of the wrong shape).
        errmsg: WeChat's ``errmsg`` (or our description), with URLs removed. Never holds a secret or a token.
    """

    #: Whether the same call may succeed if the caller retries it later unchanged.
    retryable: ClassVar[bool] = False
    default_errmsg: ClassVar[str] = "WeChat API error"

    def __init__(self, errcode: int | None = None, errmsg: str | None = None) -> None:
        self.errcode = errcode
        self.errmsg = _clean_errmsg(errmsg) or self.default_errmsg
        # args drive pickling (rq stores exceptions), so they must rebuild the same object.
        super().__init__(self.errcode, self.errmsg)

    def __str__(self) -> str:
        if self.errcode is None:
            return self.errmsg
        return f"errcode {self.errcode}: {self.errmsg}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(errcode={self.errcode!r}, errmsg={self.errmsg!r})"


class InvalidCode(WeChatError):
    """The login, OAuth or phone code is unknown or expired (40029); ask the client for a new one."""

    default_errmsg = "invalid code"


class CodeUsed(WeChatError):
    """The code was already exchanged (40163): usually a duplicate submit from the client."""

    default_errmsg = "code been used"


class QuotaExceeded(WeChatError):
    """The app's daily quota for this API is spent (45009); stop until tomorrow."""

    default_errmsg = "reach max api daily quota limit"


class RateLimited(WeChatError):
    """A per-minute or per-user frequency limit was hit (45011); retry after a minute."""

    retryable = True
    default_errmsg = "api minute-quota reach limit"


class UserRefused(WeChatError):
    """The user refused the subscription message or has no one-time quota left (43101)."""

    default_errmsg = "user refuse to accept the msg"


class NotSubscribed(WeChatError):
    """The user does not follow the official account (43004)."""

    default_errmsg = "require subscribe"


class CustomerServiceWindowClosed(WeChatError):
    """No open customer-service window for this user (45015), or its message allowance is spent (45047)."""

    default_errmsg = "response out of time limit or subscription is canceled"


class InvalidOpenid(WeChatError):
    """The openid does not belong to this app (40003)."""

    default_errmsg = "invalid openid"


class InvalidCredential(WeChatError):
    """The access token was still refused after one refresh and one retry (40001, 40014, 42001)."""

    default_errmsg = "invalid credential"


class AppMisconfigured(WeChatError):
    """The app's configuration is wrong: appid, secret, IP allowlist or API permission (40013, 40125, 40164, 48001)."""

    default_errmsg = "app misconfigured"


class InvalidArgument(WeChatError):
    """WeChat rejected the request body (47003, 41030, 40037 and their kin); fix the payload, do not retry."""

    default_errmsg = "argument invalid"


class UserNotActive(WeChatError):
    """The risk API knows nothing about a user who has not opened the mini-program recently (61010)."""

    default_errmsg = "user is not active in the mini-program"


class WatermarkMismatch(WeChatError):
    """A phone number's watermark names another app: the answer is not for this mini-program."""

    default_errmsg = "phone number watermark appid does not match"


class WeChatUnavailable(WeChatError):
    """WeChat is busy (-1), answered with HTTP 5xx, or could not be reached; retry later with backoff."""

    retryable = True
    default_errmsg = "WeChat is unavailable"


class WeChatTimeout(WeChatUnavailable):
    """WeChat did not connect or answer within the configured timeout."""

    default_errmsg = "WeChat did not answer in time"


#: errcode → the exception a caller sees. Codes not listed raise the plain ``WeChatError``.
ERRORS_BY_CODE: dict[int, type[WeChatError]] = {
    -1: WeChatUnavailable,
    40001: InvalidCredential,  # invalid credential / not the latest token
    40014: InvalidCredential,  # invalid access_token
    42001: InvalidCredential,  # access_token expired
    40003: InvalidOpenid,
    40013: AppMisconfigured,  # invalid appid
    40125: AppMisconfigured,  # invalid appsecret
    40164: AppMisconfigured,  # caller IP not in the allowlist
    48001: AppMisconfigured,  # api unauthorized
    40029: InvalidCode,
    40163: CodeUsed,
    43004: NotSubscribed,
    43101: UserRefused,
    45009: QuotaExceeded,
    45011: RateLimited,
    45015: CustomerServiceWindowClosed,
    45047: CustomerServiceWindowClosed,
    47001: InvalidArgument,  # data format error (bad JSON)
    47003: InvalidArgument,  # argument invalid (template / subscribe data)
    41030: InvalidArgument,  # invalid page (wxacode)
    40037: InvalidArgument,  # invalid template_id
    40032: InvalidArgument,  # too many openids in one call
    40097: InvalidArgument,  # invalid args
    40129: InvalidArgument,  # invalid scene (wxacode)
    45157: InvalidArgument,  # tag name invalid or duplicated
    45158: InvalidArgument,  # tag name longer than 30 bytes
    45159: InvalidArgument,  # invalid tag id
    45059: InvalidArgument,  # a user already holds 20 tags
    40016: InvalidArgument,  # menu: invalid button count
    40017: InvalidArgument,  # menu: invalid button type
    40018: InvalidArgument,  # menu: invalid button name
    40019: InvalidArgument,  # menu: invalid button key
    40020: InvalidArgument,  # menu: invalid button url
    40023: InvalidArgument,  # menu: invalid sub-button count
    45056: InvalidArgument,  # the account already has 100 tags
    61010: UserNotActive,
}

#: The errcodes after which the gateway drops its cached token, refreshes it once and retries the call once.
TOKEN_ERRCODES = frozenset({40001, 40014, 42001})


def error_for(errcode: int | None, errmsg: str | None) -> WeChatError:
    """Build the typed exception for a WeChat ``errcode``.

    Args:
        errcode: The ``errcode`` field of WeChat's answer.
        errmsg: The ``errmsg`` field; URLs are stripped from it.

    Returns:
        An instance of the most specific ``WeChatError`` subclass for the code.
    """
    error_class = ERRORS_BY_CODE.get(errcode, WeChatError) if errcode is not None else WeChatError
    return error_class(errcode, errmsg)
