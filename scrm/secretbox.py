"""Encryption at rest for credentials kept in the database, keyed from SCRM_SECRET_KEY."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken


class SecretBox:
    """Fernet (AES-128-CBC + HMAC-SHA256) with a key derived from the app's secret key.

    Changing SCRM_SECRET_KEY makes stored credentials unreadable: re-register the WeChat apps after a
    rotation (`scrm wechat add-app` updates in place).
    """

    def __init__(self, secret_key: str, *, purpose: str = "scrm.wechat_apps.v1") -> None:
        digest = hashlib.sha256(f"{purpose}\x00{secret_key}".encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def seal(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise ValueError("stored credential cannot be decrypted (was SCRM_SECRET_KEY changed?)") from None
