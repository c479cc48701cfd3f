"""Fixtures for the callback core: the three app modes and a sender that signs and encrypts like WeChat."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from wechat_handlers.apps import CallbackApp, CallbackMode
from wechat_handlers.crypto import MessageCrypto
from wechat_handlers.parsing import CallbackMessage
from wechat_handlers.pipeline import open_callback
from wechat_handlers.security import sha1_signature

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "wechat"
FIXTURE_NAMES = sorted(path.stem for path in FIXTURES_DIR.glob("*.xml"))

TOKEN = "scrmTestToken2024"
ENCODING_AES_KEY = "TESTkeyAbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
APPID = "wx00112233445566ff"
ORIGINAL_ID = "gh_test0000001"
NOW = 1_700_000_100
NONCE = "1320562132"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Tests that take ``fixture_name`` run once per XML payload in tests/fixtures/wechat.
    if "fixture_name" in metafunc.fixturenames:
        metafunc.parametrize("fixture_name", FIXTURE_NAMES)


@dataclass(frozen=True)
class CallbackRequest:
    """The parts of an HTTP request that ``open_callback`` reads."""

    raw_body: bytes
    query: dict[str, str] = field(default_factory=dict)
    content_type: str | None = "text/xml"

    def with_query(self, **changes: str | None) -> CallbackRequest:
        """A copy with query parameters replaced (a value of None removes the parameter)."""
        query = {**self.query, **{name: value for name, value in changes.items() if value is not None}}
        for name, value in changes.items():
            if value is None:
                query.pop(name, None)
        return replace(self, query=query)


class CallbackSender:
    """Builds requests the way WeChat's servers sign and encrypt them, for one token, key and appid."""

    def __init__(self, *, token: str = TOKEN, appid: str = APPID, now: int = NOW) -> None:
        self.token = token
        self.now = now
        self.crypto = MessageCrypto(token=token, encoding_aes_key=ENCODING_AES_KEY, appid=appid)

    def plain(self, xml: str | bytes, *, timestamp: int | None = None, nonce: str = NONCE) -> CallbackRequest:
        """A plain-mode POST: the body as is, signed over token, timestamp and nonce only."""
        body = xml.encode("utf-8") if isinstance(xml, str) else xml
        return CallbackRequest(raw_body=body, query=self._query(timestamp, nonce))

    def encrypted(
        self,
        xml: str | bytes,
        *,
        timestamp: int | None = None,
        nonce: str = NONCE,
        siblings: str = "",
        random_prefix: bytes | None = None,
    ) -> CallbackRequest:
        """A safe-mode POST (or a compat-mode one when ``siblings`` carries plaintext fields)."""
        encrypt = self.crypto.encrypt(xml, random_prefix=random_prefix)
        # Safe mode sends ToUserName and Encrypt; compat mode sends every plaintext field (ToUserName included).
        plaintext = siblings or f"<ToUserName><![CDATA[{ORIGINAL_ID}]]></ToUserName>"
        body = f"<xml>{plaintext}<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        query = self._query(timestamp, nonce)
        query["encrypt_type"] = "aes"
        query["msg_signature"] = sha1_signature(self.token, query["timestamp"], nonce, encrypt)
        return CallbackRequest(raw_body=body.encode("utf-8"), query=query)

    def compat(self, xml: str, *, siblings_from: str | None = None) -> CallbackRequest:
        """A compat-mode POST: the encrypted message plus plaintext copies of its fields (or of another's)."""
        return self.encrypted(xml, siblings=_children_of_root(siblings_from if siblings_from is not None else xml))

    def open(self, request: CallbackRequest, app: CallbackApp) -> CallbackMessage:
        """Run ``open_callback`` on ``request`` at this sender's clock."""
        return open_callback(
            raw_body=request.raw_body,
            query=request.query,
            content_type=request.content_type,
            app=app,
            now=self.now,
            window_s=300,
        )

    def _query(self, timestamp: int | None, nonce: str) -> dict[str, str]:
        stamp = str(self.now if timestamp is None else timestamp)
        return {
            "signature": sha1_signature(self.token, stamp, nonce),
            "timestamp": stamp,
            "nonce": nonce,
            "openid": "oTESTuser0000000000000000001",
        }


def _children_of_root(xml: str) -> str:
    text = xml.strip()
    assert text.startswith("<xml>")
    assert text.endswith("</xml>")
    return text[len("<xml>") : -len("</xml>")]


def make_app(mode: CallbackMode, **changes: str | None) -> CallbackApp:
    """The test account in ``mode``, with any field replaced."""
    settings: dict[str, str | None] = {
        "appid": APPID,
        "token": TOKEN,
        "encoding_aes_key": ENCODING_AES_KEY,
        "original_id": ORIGINAL_ID,
        **changes,
    }
    return CallbackApp(mode=mode, **settings)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def plain_app() -> CallbackApp:
    return make_app(CallbackMode.PLAIN, encoding_aes_key=None)


@pytest.fixture(scope="session")
def compat_app() -> CallbackApp:
    return make_app(CallbackMode.COMPAT)


@pytest.fixture(scope="session")
def safe_app() -> CallbackApp:
    return make_app(CallbackMode.SAFE)


@pytest.fixture(scope="session")
def sender() -> CallbackSender:
    return CallbackSender()


@pytest.fixture(scope="session")
def load_fixture():
    """Read a payload from tests/fixtures/wechat by name (without ``.xml``)."""

    def load(name: str) -> str:
        return (FIXTURES_DIR / f"{name}.xml").read_text(encoding="utf-8")

    return load


@pytest.fixture(scope="session")
def make_sender():
    """Build a sender with another token or appid (``make_sender(token="other")``)."""
    return CallbackSender


@pytest.fixture(scope="session")
def app_factory():
    """Build the test account in a mode with fields replaced (``app_factory(CallbackMode.SAFE, appid=...)``)."""
    return make_app
