"""WeChat's documented argument limits, checked before a request leaves so a bad call fails fast and locally."""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlsplit

#: Temporary QR codes live at most 30 days.
MAX_QR_EXPIRE_SECONDS = 2_592_000
#: WeChat caps permanent QR codes at 100,000 per account, for the life of the account.
MAX_PERMANENT_QR_CODES = 100_000
MAX_SCENE_STR_CHARS = 64
MAX_BATCH_USER_INFO = 100
MAX_OPENIDS_PER_TAG_CALL = 50
MAX_TAG_NAME_BYTES = 30
MAX_WXACODE_SCENE_CHARS = 32
WXACODE_ENV_VERSIONS = ("release", "trial", "develop")
OAUTH_SCOPES = ("snsapi_base", "snsapi_userinfo")
RISK_SCENES = (0, 1)  # 0: registration, 1: marketing fraud

# getwxacodeunlimit's scene: visible ASCII from this set only; "%" is not allowed, so nothing URL-encoded fits.
_WXACODE_SCENE = re.compile(r"^[0-9A-Za-z!#$&'()*+,/:;=?@\-._~]{1,32}$")
_OAUTH_STATE = re.compile(r"^[A-Za-z0-9]{1,128}$")


def check_scene_str(scene_str: str) -> None:
    if not 1 <= len(scene_str) <= MAX_SCENE_STR_CHARS:
        raise ValueError(f"scene_str must be 1-{MAX_SCENE_STR_CHARS} characters, got {len(scene_str)}")


def check_qr_expiry(expire_seconds: int) -> None:
    if not 0 < expire_seconds <= MAX_QR_EXPIRE_SECONDS:
        raise ValueError(f"a temporary QR code lives 1-{MAX_QR_EXPIRE_SECONDS} seconds (30 days), not {expire_seconds}")


def check_openids(openids: Sequence[str], *, at_most: int | None = None) -> None:
    if isinstance(openids, str):
        raise TypeError("openids must be a sequence of openids, not one string")
    if at_most is not None and len(openids) > at_most:
        raise ValueError(f"at most {at_most} openids per call, got {len(openids)}")
    if any(not openid for openid in openids):
        raise ValueError("openids must not contain empty values")


def check_tag_name(name: str) -> None:
    if not name or len(name.encode("utf-8")) > MAX_TAG_NAME_BYTES:
        raise ValueError(f"a tag name is 1-{MAX_TAG_NAME_BYTES} bytes of UTF-8")


def check_wxacode_scene(scene: str) -> None:
    if not _WXACODE_SCENE.match(scene):
        raise ValueError(
            f"a mini-program code scene is 1-{MAX_WXACODE_SCENE_CHARS} characters of [0-9A-Za-z] and "
            "!#$&'()*+,/:;=?@-._~"
        )


def check_wxacode_page(page: str | None) -> None:
    if page is not None and (page.startswith("/") or "?" in page):
        raise ValueError("page is a mini-program path such as 'pages/index/index': no leading '/', no query")


def check_wxacode_options(env_version: str, width: int) -> None:
    if env_version not in WXACODE_ENV_VERSIONS:
        raise ValueError(f"env_version must be one of {WXACODE_ENV_VERSIONS}")
    if not 280 <= width <= 1280:
        raise ValueError("width must be 280-1280 pixels")


def check_oauth_request(redirect_uri: str, state: str, scope: str) -> None:
    if scope not in OAUTH_SCOPES:
        raise ValueError(f"scope must be one of {OAUTH_SCOPES}")
    if not _OAUTH_STATE.match(state):
        raise ValueError("state must be 1-128 characters of [A-Za-z0-9] (use it as the CSRF nonce)")
    if urlsplit(redirect_uri).scheme not in ("http", "https"):
        raise ValueError("redirect_uri must be an http(s) URL")


def check_risk_scene(scene: int) -> None:
    if scene not in RISK_SCENES:
        raise ValueError("scene is 0 (registration) or 1 (marketing fraud)")
