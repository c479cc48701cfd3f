"""SMS senders for one-time codes: a small Protocol and its backends (the WeChat sandbox's SMS outbox, null)."""

from __future__ import annotations

from typing import Protocol

import requests

from scrm.config import Config


class SmsSender(Protocol):
    """Delivers one text message to one E.164 phone number; raises on failure (the outbox retries)."""

    def send(self, phone: str, text: str) -> None: ...


class NullSmsSender:
    """Sends nothing and logs nothing (a code in a log would defeat it): for deployments without SMS."""

    def send(self, phone: str, text: str) -> None:
        return None


class SandboxSmsSender:
    """Posts to the WeChat sandbox's SMS outbox (`POST /sandbox/sms`), where tests and developers read codes."""

    def __init__(self, base_url: str, *, timeout_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def send(self, phone: str, text: str) -> None:
        response = requests.post(
            f"{self.base_url}/sandbox/sms", json={"phone": phone, "text": text}, timeout=self.timeout_s
        )
        response.raise_for_status()


def sender_for(config: Config) -> SmsSender:
    """The sender SCRM_SMS_BACKEND names."""
    if config.sms_backend == "sandbox":
        return SandboxSmsSender(config.sms_sandbox_url or config.wechat_api_base)
    return NullSmsSender()
