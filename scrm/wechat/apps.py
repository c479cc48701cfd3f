"""WeChat app credentials and the directory the gateway looks them up in."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

APP_KINDS = ("oa", "miniprogram")
CALLBACK_MODES = ("safe", "compat", "plain")

# WeChat's EncodingAESKey is 43 characters of [a-zA-Z0-9]; base64-decoded with "=" it gives an AES-256 key.
_ENCODING_AES_KEY = re.compile(r"^[A-Za-z0-9]{43}$")


@dataclass(frozen=True)
class AppCredentials:
    """One WeChat app (an official account or a mini-program) as this deployment knows it.

    The secret, the callback token and the EncodingAESKey are excluded from ``repr`` so that the object can be
    logged or shown in a traceback without leaking them.
    """

    appid: str
    secret: str = field(repr=False)
    kind: str  # "oa" | "miniprogram"
    token: str | None = field(default=None, repr=False)
    encoding_aes_key: str | None = field(default=None, repr=False)
    mode: str = "safe"  # "safe" | "compat" | "plain"
    original_id: str | None = None  # gh_… for OAs
    name: str | None = None

    def __post_init__(self) -> None:
        if not self.appid:
            raise ValueError("appid must not be empty")
        if self.kind not in APP_KINDS:
            raise ValueError(f"kind must be one of {APP_KINDS}, not {self.kind!r}")
        if self.mode not in CALLBACK_MODES:
            raise ValueError(f"mode must be one of {CALLBACK_MODES}, not {self.mode!r}")
        if self.encoding_aes_key is not None and not _ENCODING_AES_KEY.match(self.encoding_aes_key):
            # Never echo the key itself: the message may end up in a log.
            raise ValueError("encoding_aes_key must be 43 characters of [A-Za-z0-9]")

    @property
    def is_official_account(self) -> bool:
        return self.kind == "oa"

    @property
    def is_miniprogram(self) -> bool:
        return self.kind == "miniprogram"


class AppDirectory(Protocol):
    """Where the gateway finds an app's credentials; the kernel backs it with the ``wechat_apps`` table."""

    def get(self, appid: str) -> AppCredentials | None:
        """Return the credentials of ``appid``, or None when this deployment does not know the app."""
        ...


class StaticAppDirectory:
    """An app directory fixed at construction, for tests, the sandbox and single-app deployments."""

    def __init__(self, apps: Iterable[AppCredentials]) -> None:
        self._apps: dict[str, AppCredentials] = {}
        for app in apps:
            if app.appid in self._apps:
                raise ValueError(f"duplicate appid {app.appid!r}")
            self._apps[app.appid] = app

    def get(self, appid: str) -> AppCredentials | None:
        """Return the credentials of ``appid``, or None when it is not in the directory."""
        return self._apps.get(appid)

    def __iter__(self) -> Iterator[AppCredentials]:
        return iter(self._apps.values())

    def __len__(self) -> int:
        return len(self._apps)

    def __repr__(self) -> str:
        return f"StaticAppDirectory(appids={sorted(self._apps)!r})"
