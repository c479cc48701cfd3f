"""App credentials, the static directory, and the typed WeChat errors."""

from __future__ import annotations

import pickle

import pytest

from scrm.wechat.apps import AppCredentials, StaticAppDirectory
from scrm.wechat.errors import (
    AppMisconfigured,
    CodeUsed,
    CustomerServiceWindowClosed,
    InvalidArgument,
    InvalidCode,
    InvalidCredential,
    InvalidOpenid,
    NotSubscribed,
    QuotaExceeded,
    RateLimited,
    UserRefused,
    WeChatError,
    WeChatTimeout,
    WeChatUnavailable,
    error_for,
)

from .conftest import MINIPROGRAM, OA_SAFE


def test_credentials_repr_hides_secret_token_and_aes_key() -> None:
    shown = repr(OA_SAFE) + str(OA_SAFE)
    assert OA_SAFE.appid in shown
    assert "gh_5afe00000001" in shown
    for hidden in (OA_SAFE.secret, OA_SAFE.token, OA_SAFE.encoding_aes_key):
        assert hidden not in shown


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "website"},
        {"mode": "encrypted"},
        {"encoding_aes_key": "too-short"},
        {"appid": ""},
    ],
)
def test_credentials_reject_bad_values(fields: dict) -> None:
    values = {"appid": "wx1", "secret": "s", "kind": "oa", **fields}
    with pytest.raises(ValueError) as raised:
        AppCredentials(**values)
    assert "too-short" not in str(raised.value)


def test_static_directory_finds_apps_and_refuses_duplicates() -> None:
    directory = StaticAppDirectory([OA_SAFE, MINIPROGRAM])
    assert directory.get(MINIPROGRAM.appid) is MINIPROGRAM
    assert directory.get("wx-unknown") is None
    assert len(directory) == 2
    assert set(directory) == {OA_SAFE, MINIPROGRAM}
    assert OA_SAFE.secret not in repr(directory)
    with pytest.raises(ValueError):
        StaticAppDirectory([OA_SAFE, OA_SAFE])


@pytest.mark.parametrize(
    ("errcode", "error_class"),
    [
        (40029, InvalidCode),
        (40163, CodeUsed),
        (45009, QuotaExceeded),
        (45011, RateLimited),
        (43101, UserRefused),
        (43004, NotSubscribed),
        (45015, CustomerServiceWindowClosed),
        (45047, CustomerServiceWindowClosed),
        (40003, InvalidOpenid),
        (40001, InvalidCredential),
        (40014, InvalidCredential),
        (42001, InvalidCredential),
        (40013, AppMisconfigured),
        (40125, AppMisconfigured),
        (40164, AppMisconfigured),
        (48001, AppMisconfigured),
        (47003, InvalidArgument),
        (41030, InvalidArgument),
        (40037, InvalidArgument),
        (-1, WeChatUnavailable),
        (99999, WeChatError),
    ],
)
def test_error_for_picks_the_class_for_the_errcode(errcode: int, error_class: type[WeChatError]) -> None:
    error = error_for(errcode, "message")
    assert type(error) is error_class
    assert error.errcode == errcode
    assert error.errmsg == "message"


def test_error_text_never_carries_a_url() -> None:
    error = error_for(40001, "invalid credential, more details at https://mmbizurl.cn/s/JtxxFh33r?access_token=abc")
    assert "http" not in str(error)
    assert "access_token=abc" not in str(error)
    assert "abc" not in repr(error)
    assert str(error).startswith("errcode 40001: invalid credential")


def test_errors_survive_pickling_for_rq() -> None:
    error = pickle.loads(pickle.dumps(CodeUsed(40163, "code been used")))  # noqa: S301 - our own bytes
    assert isinstance(error, CodeUsed)
    assert error.errcode == 40163
    assert error.errmsg == "code been used"


def test_timeout_is_a_retryable_unavailability() -> None:
    assert issubclass(WeChatTimeout, WeChatUnavailable)
    assert WeChatTimeout.retryable
    assert RateLimited.retryable
    assert not InvalidCode.retryable
    assert str(WeChatTimeout()) == "WeChat did not answer in time"
