"""Structured JSON logging with a filter that masks phone numbers and drops secrets wherever they appear."""

from __future__ import annotations

import json
import logging
import re
from contextvars import ContextVar
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("scrm_request_id", default=None)

# Mainland mobiles: 1[3-9]x with 11 digits, optionally behind +86/86; not part of a longer number.
_PHONE = re.compile(r"(?<![\d])(?:\+?86[- ]?)?(1[3-9]\d)(\d{4})(\d{4})(?![\d])")
_SENSITIVE_NAMES = (
    "session_key|sessionkey|access_token|accesstoken|refresh_token|secret|appsecret|app_secret|password|"
    "encoding_aes_key|encodingaeskey|aes_key|aeskey|token|signature"
)
# key=value, key: value, "key": "value", key=value in query strings.
_SENSITIVE_PAIR = re.compile(
    rf"""(?ix)
    (["']?(?:[a-z_]*?)(?:{_SENSITIVE_NAMES})["']?\s*[=:]\s*)   # the key and its separator
    (["']?)([^"'&\s,}}]+)(["']?)                             # the value
    """
)
_REDACTED = "[redacted]"


def mask_phone(text: str) -> str:
    """Mask mainland mobile numbers: 13812341234 → 138****1234."""
    return _PHONE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)


def redact(text: str) -> str:
    """Mask phones and drop the values of secret-looking keys (session_key, tokens, secrets, AES keys)."""
    text = _SENSITIVE_PAIR.sub(lambda m: f"{m.group(1)}{m.group(2)}{_REDACTED}{m.group(4)}", text)
    return mask_phone(text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {
            k: (_REDACTED if re.search(_SENSITIVE_NAMES, str(k), re.I) else _redact_value(v)) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    return value


_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    """Rewrites every record so that no phone number or secret leaves the process."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = redact(message)
        record.args = ()
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        for key, value in list(record.__dict__.items()):
            if key not in _RESERVED:
                record.__dict__[key] = _redact_value({key: value})[key]
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key != "request_id" and not key.startswith("_"):
                payload[key] = value
        if getattr(record, "request_id", None):
            payload["request_id"] = record.request_id
        if record.exc_text:
            payload["exc"] = record.exc_text
        return json.dumps(payload, ensure_ascii=False, default=str)


def configure_logging(level: str = "INFO", *, json_lines: bool = True) -> None:
    """Install one redacting handler on the root logger (idempotent)."""
    root = logging.getLogger()
    for existing in root.handlers:
        if getattr(existing, "_scrm", False):
            root.setLevel(level)
            return
    handler = logging.StreamHandler()
    handler._scrm = True  # type: ignore[attr-defined]
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    # Libraries that log request URLs (with access_token in the query) go through the same filter.
    for noisy in ("urllib3", "requests"):
        logging.getLogger(noisy).setLevel(max(logging.getLogger(noisy).level, logging.WARNING))
