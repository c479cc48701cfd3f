"""Atheris harness for ``open_callback`` (T05, nightly); pytest does not collect it and CI does not need atheris.

Run from the repository root, seeded with the fixtures::

    PYTHONPATH=. python tests/wechat_handlers/fuzz_callback.py tests/fixtures/wechat -max_total_time=600
"""

from __future__ import annotations

import sys
import time

import atheris

with atheris.instrument_imports():
    from wechat_handlers.apps import CallbackApp, CallbackMode
    from wechat_handlers.errors import CallbackRejected
    from wechat_handlers.pipeline import open_callback
    from wechat_handlers.security import sha1_signature

TOKEN = "scrmFuzzToken"
NOW = 1_700_000_000
NONCE = "1320562132"
BUDGET_S = 0.1
APPS = {
    mode: CallbackApp(
        appid="wx00112233445566ff",
        token=TOKEN,
        encoding_aes_key="TESTkeyAbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
        mode=mode,
        original_id="gh_test0000001",
    )
    for mode in CallbackMode
}
SIGNED_QUERY = {"signature": sha1_signature(TOKEN, str(NOW), NONCE), "timestamp": str(NOW), "nonce": NONCE}


def _request(data: bytes) -> tuple[bytes, dict[str, str], CallbackApp]:
    # The input length picks the path, so seed files work unchanged as bodies.
    path = len(data) % 3
    if path == 0:
        return data, SIGNED_QUERY, APPS[CallbackMode.PLAIN]
    if path == 1:
        return data, {**SIGNED_QUERY, "msg_signature": "0" * 40}, APPS[CallbackMode.SAFE]
    # A validly signed envelope around the input: the fuzzer reaches the parser after authentication.
    app = APPS[CallbackMode.SAFE]
    encrypt = app.crypto.encrypt(data, random_prefix=b"0123456789abcdef")
    body = f"<xml><ToUserName>gh_test0000001</ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>".encode()
    return body, {**SIGNED_QUERY, "msg_signature": sha1_signature(TOKEN, str(NOW), NONCE, encrypt)}, app


def fuzz_one_input(data: bytes) -> None:
    body, query, app = _request(data)
    started = time.perf_counter()
    try:
        open_callback(raw_body=body, query=query, content_type="text/xml", app=app, now=NOW, window_s=300)
    except CallbackRejected as rejected:
        if not 400 <= rejected.status < 500:
            raise AssertionError(rejected.status) from None
    elapsed = time.perf_counter() - started
    if elapsed > BUDGET_S:
        raise AssertionError(f"input took {elapsed:.3f}s")


if __name__ == "__main__":
    atheris.Setup(sys.argv, fuzz_one_input)
    atheris.Fuzz()
