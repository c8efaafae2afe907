"""Settings: key/URL pairing, URL normalisation, environment parsing, a key that never shows."""

from __future__ import annotations

import pickle

import pytest

from nbchat.config import (
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    OPENAI_DEFAULT_BASE_URL,
    APIKey,
    Settings,
    is_loopback_url,
    normalize_base_url,
)
from nbchat.errors import ConfigError

SECRET = "sk-config-test-0123456789abcdef"


def test_defaults_point_at_the_302_gateway_without_a_key() -> None:
    settings = Settings.from_env({})
    assert settings.base_url == DEFAULT_BASE_URL == "https://api.302.ai/v1"
    assert settings.model == DEFAULT_MODEL == "gpt-4o-mini"
    assert settings.api_key is None
    with pytest.raises(ConfigError, match="No API key for https://api.302.ai/v1.*NBCHAT_API_KEY"):
        settings.require_key()


def test_nbchat_pair_is_used_and_key_bound_to_its_url() -> None:
    settings = Settings.from_env(
        {"NBCHAT_API_KEY": SECRET, "NBCHAT_BASE_URL": "https://gw.example/v1"}
    )
    assert settings.base_url == "https://gw.example/v1"
    assert settings.key_source == "NBCHAT_API_KEY"
    assert settings.key_for("https://gw.example/v1/chat/completions") == APIKey(SECRET)
    assert settings.key_for("https://gw.example/v10/chat/completions") is None
    assert settings.key_for("https://other.example/v1/chat/completions") is None


def test_nbchat_key_alone_goes_to_the_default_gateway() -> None:
    settings = Settings.from_env({"NBCHAT_API_KEY": SECRET})
    assert settings.base_url == DEFAULT_BASE_URL
    assert settings.usable_key is not None
    settings.require_key()


def test_openai_pair_is_used_only_without_nbchat_variables() -> None:
    openai_only = Settings.from_env({"OPENAI_API_KEY": SECRET})
    assert openai_only.base_url == OPENAI_DEFAULT_BASE_URL
    assert openai_only.key_source == "OPENAI_API_KEY"

    both = Settings.from_env({"OPENAI_API_KEY": SECRET, "NBCHAT_API_KEY": "sk-nbchat-key-000000"})
    assert both.key_source == "NBCHAT_API_KEY"
    assert both.base_url == DEFAULT_BASE_URL


def test_openai_key_never_goes_to_an_nbchat_base_url() -> None:
    settings = Settings.from_env(
        {"OPENAI_API_KEY": SECRET, "NBCHAT_BASE_URL": "http://gpu-box.internal:8000"}
    )
    assert settings.base_url == "http://gpu-box.internal:8000/v1"
    assert settings.api_key is None
    assert settings.usable_key is None
    with pytest.raises(ConfigError, match="NBCHAT_API_KEY"):
        settings.require_key()


def test_openai_base_url_pairs_with_openai_key() -> None:
    settings = Settings.from_env(
        {"OPENAI_API_KEY": SECRET, "OPENAI_BASE_URL": "https://proxy.example/openai/v1/"}
    )
    assert settings.base_url == "https://proxy.example/openai/v1"
    assert settings.usable_key == APIKey(SECRET)
    assert settings.base_url_source == "OPENAI_BASE_URL"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://api.302.ai", "https://api.302.ai/v1"),
        ("https://api.302.ai/", "https://api.302.ai/v1"),
        ("https://API.302.ai/v1/", "https://api.302.ai/v1"),
        ("https://api.302.ai/v1/chat/completions", "https://api.302.ai/v1"),
        ("http://localhost:11434", "http://localhost:11434/v1"),
        ("http://127.0.0.1:8000/v1/models", "http://127.0.0.1:8000/v1"),
        ("https://gw.example/openai/v2", "https://gw.example/openai/v2"),
        ("  https://api.302.ai/v1  ", "https://api.302.ai/v1"),
    ],
)
def test_base_url_is_normalised(given: str, expected: str) -> None:
    assert normalize_base_url(given) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "api.302.ai",
        "ftp://api.302.ai",
        "https://",
        "https://user:pw@api.302.ai/v1",
        "https://api.302.ai/v1?x=1",
        "http://host:99999/v1",
    ],
)
def test_malformed_base_url_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError):
        normalize_base_url(bad)


def test_bad_base_url_variable_is_named_in_the_error() -> None:
    with pytest.raises(ConfigError, match="NBCHAT_BASE_URL"):
        Settings.from_env({"NBCHAT_BASE_URL": "api.302.ai"})


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9/v1", "http://127.5.6.7/v1", "http://localhost/v1", "http://[::1]:8/v1"],
)
def test_loopback_needs_no_key(url: str) -> None:
    assert is_loopback_url(url)
    Settings(base_url=url).require_key()


@pytest.mark.parametrize("url", ["http://10.0.0.1/v1", "https://localhost.evil.com/v1"])
def test_other_hosts_are_not_loopback(url: str) -> None:
    assert not is_loopback_url(url)


def test_changing_base_url_leaves_the_key_behind() -> None:
    settings = Settings.from_env({"NBCHAT_API_KEY": SECRET})
    moved = settings.with_base_url("https://elsewhere.example/v1")
    assert moved.usable_key is None
    with pytest.raises(ConfigError, match="belongs to https://api.302.ai/v1"):
        moved.require_key()
    back = moved.with_base_url("https://api.302.ai")
    assert back.usable_key == APIKey(SECRET)


def test_with_key_binds_the_key_to_the_current_url() -> None:
    settings = Settings(base_url="https://gw.example/v1").with_key(SECRET)
    assert settings.key_source == "set in this session"
    assert settings.key_base_url == "https://gw.example/v1"
    assert settings.usable_key is not None


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("NBCHAT_READ_TIMEOUT", "soon", "NBCHAT_READ_TIMEOUT"),
        ("NBCHAT_CONNECT_TIMEOUT", "0", "NBCHAT_CONNECT_TIMEOUT"),
        ("NBCHAT_MAX_RETRIES", "-1", "NBCHAT_MAX_RETRIES"),
    ],
)
def test_bad_numeric_variables_are_named(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({variable: value})


def test_numeric_variables_are_read() -> None:
    settings = Settings.from_env(
        {"NBCHAT_READ_TIMEOUT": "300", "NBCHAT_CONNECT_TIMEOUT": "2.5", "NBCHAT_MAX_RETRIES": "0"}
    )
    assert (settings.read_timeout, settings.connect_timeout, settings.max_retries) == (300, 2.5, 0)


def test_model_variable_is_read() -> None:
    assert Settings.from_env({"NBCHAT_MODEL": "deepseek-chat"}).model == "deepseek-chat"


def test_with_params_merges_and_removes() -> None:
    settings = Settings().with_params(temperature=0.2, max_tokens=100)
    settings = settings.with_params(max_tokens=None, seed=3)
    assert dict(settings.params) == {"temperature": 0.2, "seed": 3}


def test_key_never_shows_in_repr_str_or_describe() -> None:
    settings = Settings.from_env({"NBCHAT_API_KEY": SECRET})
    shown = [
        repr(settings),
        str(settings),
        repr(settings.api_key),
        str(settings.api_key),
        str(settings.describe()),
        f"{settings.api_key}",
    ]
    for text in shown:
        assert SECRET not in text
    assert settings.describe()["api_key"] == "…cdef (from NBCHAT_API_KEY)"


def test_short_keys_are_fully_masked() -> None:
    assert APIKey("sk-short").masked() == "****"


def test_key_cannot_be_pickled() -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(APIKey(SECRET))
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Settings.from_env({"NBCHAT_API_KEY": SECRET}))


@pytest.mark.parametrize("bad", ["", "   ", "Bearer sk-abc", "sk-a\tbc", "sk-\x00abc"])
def test_malformed_keys_are_refused_without_echoing_them(bad: str) -> None:
    with pytest.raises(ConfigError) as caught:
        APIKey(bad)
    if bad.strip():
        assert bad.strip() not in str(caught.value)


def test_invalid_settings_values_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="read_timeout"):
        Settings(read_timeout=0)
    with pytest.raises(ConfigError, match="max_retries"):
        Settings(max_retries=-1)


def test_surrounding_whitespace_of_a_pasted_key_is_dropped() -> None:
    assert APIKey("  sk-abc\n").reveal() == "sk-abc"
