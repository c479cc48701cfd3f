"""WeChat for the kernel: app credentials, token stores, the API gateway and typed errors (the sandbox is apart)."""

from scrm.wechat.apps import AppCredentials, AppDirectory, StaticAppDirectory
from scrm.wechat.errors import WeChatError, error_for
from scrm.wechat.gateway import WeChatGateway
from scrm.wechat.tokens import CachedToken, LocalTokenStore, RedisTokenStore, TokenStore

__all__ = [
    "AppCredentials",
    "AppDirectory",
    "CachedToken",
    "LocalTokenStore",
    "RedisTokenStore",
    "StaticAppDirectory",
    "TokenStore",
    "WeChatError",
    "WeChatGateway",
    "error_for",
]
