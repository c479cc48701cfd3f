"""Logs never carry a phone number, a session_key, an access token, a secret or an AES key."""

from __future__ import annotations

import io
import json
import logging

import pytest

from scrm.logs import JsonFormatter, RedactingFilter, mask_phone, redact


@pytest.fixture
def captured():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def test_phone_numbers_are_masked():
    assert mask_phone("call 13812341234 now") == "call 138****1234 now"
    assert mask_phone("+86 13912345678") == "139****5678"
    # Not a mobile number: left alone.
    assert mask_phone("order 2023112312345678") == "order 2023112312345678"


@pytest.mark.parametrize(
    "text",
    [
        "session_key=HyVFkGl5F5OQWJZZaNzBBg==",
        '{"session_key": "HyVFkGl5F5OQWJZZaNzBBg=="}',
        "GET /cgi-bin/user/info?access_token=ACCESS_TOKEN_VALUE&openid=o1",
        "secret: SECRET_VALUE_123",
        "encoding_aes_key=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
        "appsecret='SECRET_VALUE_123'",
    ],
)
def test_secret_values_are_dropped(text):
    cleaned = redact(text)
    for value in ("HyVFkGl5F5OQWJZZaNzBBg", "ACCESS_TOKEN_VALUE", "SECRET_VALUE_123", "abcdefghijklmnopqrstuvwxyz0123"):
        assert value not in cleaned
    assert "[redacted]" in cleaned


def test_log_lines_are_written_masked(captured):
    logger, stream = captured
    logger.info("member %s bound phone %s", 7, "13812341234", extra={"session_key": "SK_VALUE", "phone": "13900001111"})
    logger.warning("wechat call failed: access_token=AT_VALUE expired")
    try:
        raise ValueError("secret=S_VALUE for 13711112222")
    except ValueError:
        logger.exception("boom")
    output = stream.getvalue()
    for leaked in ("13812341234", "SK_VALUE", "13900001111", "AT_VALUE", "S_VALUE", "13711112222"):
        assert leaked not in output
    lines = [json.loads(line) for line in output.splitlines()]
    assert lines[0]["message"] == "member 7 bound phone 138****1234"
    assert lines[0]["session_key"] == "[redacted]"
    assert lines[0]["phone"] == "139****1111"
