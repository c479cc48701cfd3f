"""The WeChat gateway: every outbound WeChat API call of the service goes through ``WeChatGateway``."""

from __future__ import annotations

from scrm.wechat.gateway.base import PRODUCTION_API_BASE, PRODUCTION_MP_BASE, PRODUCTION_OPEN_BASE
from scrm.wechat.gateway.messaging import MessagingApi
from scrm.wechat.gateway.miniprogram import MiniProgramApi
from scrm.wechat.gateway.official_account import OfficialAccountApi
from scrm.wechat.gateway.results import (
    MiniProgramSession,
    OAuthGrant,
    OAuthUserInfo,
    PhoneNumber,
    QrCode,
    Tag,
    UserInfo,
)


class WeChatGateway(OfficialAccountApi, MessagingApi, MiniProgramApi):
    """Typed access to the WeChat server APIs the service uses, for every configured app.

    Built as ``WeChatGateway(apps, tokens, *, api_base=..., open_base=..., connect_timeout=3.05,
    read_timeout=5.0)``. Production and the sandbox differ only by the base URLs.

    What it adds over wechatpy 1.8.18: timeouts on every call; access tokens from ``stable_token``, cached in a
    shared ``TokenStore`` and refreshed single-flight; on a token errcode one refresh and one retry instead of
    wechatpy's unbounded recursion; typed exceptions (``scrm.wechat.errors``); the APIs wechatpy lacks
    (``client_msg_id``, ``getuserphonenumber``, ``check_path``/``env_version``, the risk rank). wechatpy still
    builds the requests it knows; everything travels through one transport. Thread-safe: share one instance.
    """


__all__ = [
    "PRODUCTION_API_BASE",
    "PRODUCTION_MP_BASE",
    "PRODUCTION_OPEN_BASE",
    "MiniProgramSession",
    "OAuthGrant",
    "OAuthUserInfo",
    "PhoneNumber",
    "QrCode",
    "Tag",
    "UserInfo",
    "WeChatGateway",
]
