"""Typed settings parsed from SCRM_* environment variables, with no I/O."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_SECRET_KEY = "dev-insecure-secret-key-change-me"  # noqa: S105 - the documented default prod refuses
ENVIRONMENTS = ("dev", "test", "prod")


class ConfigError(ValueError):
    """A setting is missing, malformed or unsafe for the environment."""


def _parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def _parse_int(name: str, raw: str, *, minimum: int = 0) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class Config:
    """Every setting scrm reads. Build with `Config.from_env()`; tests pass overrides."""

    env: str = "dev"
    #: SQLAlchemy URL; the embedded default is a SQLite file under ./instance.
    database_url: str = "sqlite:///instance/scrm.db"
    #: Unset means the embedded mode: jobs run in-process right after commit.
    redis_url: str | None = None
    secret_key: str = DEFAULT_SECRET_KEY
    #: Base URL of WeChat's API; point it at the sandbox for tests, demos and offline work.
    wechat_api_base: str = "https://api.weixin.qq.com"
    wechat_open_base: str = "https://open.weixin.qq.com"
    wechat_replay_window_s: int = 300
    wechat_allow_plain_mode: bool = False
    wechat_connect_timeout_s: float = 3.05
    wechat_read_timeout_s: float = 5.0
    member_token_ttl_s: int = 7 * 24 * 3600
    staff_token_ttl_s: int = 12 * 3600
    max_request_bytes: int = 1024 * 1024
    #: Test each pooled connection with SELECT 1 before use (costs a round trip per request; off by default).
    db_pool_pre_ping: bool = False
    log_level: str = "INFO"
    log_json: bool = True
    outbox_batch_size: int = 200
    outbox_max_attempts: int = 8
    outbox_sweep_interval_s: float = 5.0
    #: A pending outbox row older than this is re-driven by the sweeper.
    outbox_stale_after_s: float = 10.0
    staff_login_rate_per_min: int = 10
    #: Front-end URL prefixes an OA OAuth login may redirect to (comma-separated); empty: JSON answers only.
    member_oauth_redirect_allowlist: str = ""
    #: How long an OAuth `state` stays usable.
    member_oauth_state_ttl_s: int = 600
    #: Current version of the privacy policy that consents refer to.
    member_consent_policy_version: str = "v1"
    #: SMS one-time-code backend: "null" (sends nothing, logs nothing) or "sandbox" (the WeChat sandbox's SMS outbox).
    sms_backend: str = "null"
    #: Base URL of the sandbox SMS outbox; default: SCRM_WECHAT_API_BASE.
    sms_sandbox_url: str | None = None
    #: One-time codes one client IP may request per 24 hours (across phones).
    sms_ip_daily_limit: int = 30
    #: Lifecycle thresholds in days: new (since joining), active and silent (since last activity); older is churned.
    member_lifecycle_new_days: int = 14
    member_lifecycle_active_days: int = 30
    member_lifecycle_silent_days: int = 180
    #: Largest multipart upload a route marked `accepts_upload` takes (legacy CRM files run to hundreds of MB).
    max_upload_bytes: int = 1024 * 1024 * 1024
    #: Where uploaded legacy CRM files are kept while they import (named by content hash).
    legacy_upload_dir: str = "instance/legacy-uploads"
    #: Rows per committed chunk of a legacy import (the resume checkpoint).
    legacy_chunk_rows: int = 20_000
    #: A legacy record idle this long (or holding this many points) waits for a second check before binding.
    legacy_dormant_days: int = 180
    legacy_asset_check_points: int = 5000
    #: Extra modules imported at start-up (comma-separated): brand-specific outbox handlers, receivers.
    plugins: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Read SCRM_* variables from `environ` (default: os.environ); keyword overrides win."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name == "extra":
                continue
            raw = environ.get(f"SCRM_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            values[f.name] = _coerce(f"SCRM_{f.name.upper()}", f.type, raw)
        values.update(overrides)
        config = cls(**values)
        config.validate()
        return config

    def replace(self, **changes: Any) -> Config:
        """A copy with `changes` applied and validated."""
        config = dataclasses.replace(self, **changes)
        config.validate()
        return config

    def validate(self) -> None:
        """Refuse settings that are malformed or unsafe for the environment."""
        if self.env not in ENVIRONMENTS:
            raise ConfigError(f"SCRM_ENV must be one of {', '.join(ENVIRONMENTS)}, got {self.env!r}")
        if self.env == "prod" and (self.secret_key == DEFAULT_SECRET_KEY or len(self.secret_key) < 32):
            raise ConfigError("SCRM_SECRET_KEY must be set to a random value of at least 32 characters in prod")
        if self.sms_backend not in ("null", "sandbox"):
            raise ConfigError(f"SCRM_SMS_BACKEND must be null or sandbox, got {self.sms_backend!r}")
        if self.wechat_replay_window_s <= 0:
            raise ConfigError("SCRM_WECHAT_REPLAY_WINDOW_S must be positive")

    @property
    def is_embedded(self) -> bool:
        """True when no Redis is configured, so jobs run in-process."""
        return not self.redis_url


def _coerce(name: str, annotation: Any, raw: str) -> Any:
    kind = str(annotation)
    if kind.startswith("bool"):
        return _parse_bool(name, raw)
    if kind.startswith("int"):
        return _parse_int(name, raw)
    if kind.startswith("float"):
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    return raw
