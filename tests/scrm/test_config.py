"""Settings come from SCRM_* variables; prod refuses unsafe defaults."""

from __future__ import annotations

import pytest

from scrm.config import DEFAULT_SECRET_KEY, Config, ConfigError


def test_defaults_are_the_embedded_mode():
    config = Config.from_env({})
    assert config.database_url.startswith("sqlite:///")
    assert config.is_embedded
    assert config.wechat_replay_window_s == 300


def test_variables_are_parsed_and_typed():
    config = Config.from_env(
        {
            "SCRM_ENV": "test",
            "SCRM_REDIS_URL": "redis://r:6379/0",
            "SCRM_WECHAT_REPLAY_WINDOW_S": "120",
            "SCRM_LOG_JSON": "false",
            "SCRM_WECHAT_READ_TIMEOUT_S": "2.5",
        }
    )
    assert (config.env, config.redis_url, config.wechat_replay_window_s) == ("test", "redis://r:6379/0", 120)
    assert config.log_json is False
    assert config.wechat_read_timeout_s == 2.5
    assert not config.is_embedded


@pytest.mark.parametrize(
    "environ",
    [
        {"SCRM_ENV": "staging"},
        {"SCRM_WECHAT_REPLAY_WINDOW_S": "soon"},
        {"SCRM_LOG_JSON": "maybe"},
        {"SCRM_ENV": "prod"},
        {"SCRM_ENV": "prod", "SCRM_SECRET_KEY": DEFAULT_SECRET_KEY},
        {"SCRM_ENV": "prod", "SCRM_SECRET_KEY": "short"},
    ],
)
def test_bad_or_unsafe_settings_are_refused(environ):
    with pytest.raises(ConfigError):
        Config.from_env(environ)


def test_prod_starts_with_a_real_secret():
    assert Config.from_env({"SCRM_ENV": "prod", "SCRM_SECRET_KEY": "x" * 40}).env == "prod"
