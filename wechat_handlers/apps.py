"""Callback configuration of one WeChat official account, as the callback core needs it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

from wechat_handlers.crypto import MessageCrypto


class CallbackMode(StrEnum):
    """The message encryption mode chosen in the MP backend (明文 / 兼容 / 安全模式)."""

    PLAIN = "plain"
    COMPAT = "compat"
    SAFE = "safe"


@dataclass(frozen=True)
class CallbackApp:
    """One official account's callback settings. The mode here, never the request, decides how to read a POST.

    Attributes:
        appid: The account's AppID (``wx...``); checked against the appid inside every ciphertext.
        token: The callback Token from the MP backend.
        encoding_aes_key: The 43-character EncodingAESKey; required in compat and safe mode.
        mode: ``plain``, ``compat`` or ``safe``.
        original_id: The account's original id (``gh_...``); when set, ``ToUserName`` must equal it.
    """

    appid: str
    token: str = field(repr=False)
    encoding_aes_key: str | None = field(repr=False)
    mode: CallbackMode
    original_id: str | None = None

    def __post_init__(self) -> None:
        # Coerce "safe" to CallbackMode.SAFE so config can hold plain strings; unknown modes fail here, at startup.
        object.__setattr__(self, "mode", CallbackMode(self.mode))
        if not self.appid or not self.token:
            raise ValueError("appid and token are required")
        if self.is_encrypted:
            _ = self.crypto  # validates the EncodingAESKey now rather than on the first request

    @property
    def is_encrypted(self) -> bool:
        """Whether POST bodies carry ``Encrypt`` and replies are encrypted (compat and safe mode)."""
        return self.mode is not CallbackMode.PLAIN

    @cached_property
    def crypto(self) -> MessageCrypto:
        """The message crypto for this app.

        Raises:
            ValueError: The app has no valid EncodingAESKey.
        """
        if not self.encoding_aes_key:
            raise ValueError(f"app {self.appid} has no EncodingAESKey")
        return MessageCrypto(token=self.token, encoding_aes_key=self.encoding_aes_key, appid=self.appid)
