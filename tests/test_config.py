"""Settings from the environment and flags, checked at start."""

from __future__ import annotations

import os

import pytest

from tidings.config import DEFAULT_DATABASE_URL, DEFAULT_FILES_URL, Settings, SettingsError


def test_defaults_serve_sqlite_on_loopback_8080() -> None:
    settings = Settings.from_env({})
    assert (settings.host, settings.port, settings.database_url) == (
        "127.0.0.1",
        8080,
        DEFAULT_DATABASE_URL,
    )
    assert settings.max_body_chars == 4000 and settings.idle_timeout_seconds == 60
    assert settings.files_url == DEFAULT_FILES_URL == "file://./data/files"


def test_workers_default_to_one_and_auto_is_one_per_core(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings.from_env({}).workers == 1
    assert Settings.from_env({"TIDINGS_WORKERS": "3"}).workers == 3
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert Settings.from_env({"TIDINGS_WORKERS": "auto"}).workers == 16


def test_environment_variables_set_settings_and_flags_win() -> None:
    env = {"TIDINGS_PORT": "9000", "TIDINGS_HOST": "0.0.0.0", "TIDINGS_RATE_LIMIT_USER": "0"}
    settings = Settings.from_env(env, port=9100, host=None)
    assert (settings.port, settings.host, settings.rate_limit_user) == (9100, "0.0.0.0", 0)


@pytest.mark.parametrize(
    "env",
    [
        {"TIDINGS_PORT": "eighty"},
        {"TIDINGS_PORT": "70000"},
        {"TIDINGS_MAX_BODY_CHARS": "0"},
        {"TIDINGS_RATE_LIMIT_CONNECTION": "-1"},
        {"TIDINGS_SQLITE_SYNCHRONOUS": "sometimes"},
        {"TIDINGS_SEND_QUEUE_FRAMES": "10", "TIDINGS_WRITE_BATCH_MAX": "100"},
        {"TIDINGS_WRITE_BATCH_MAX": "-1"},
        # The default batch on PostgreSQL (3000) does not fit a queue of 2000 frames.
        {"TIDINGS_SEND_QUEUE_FRAMES": "2000", "TIDINGS_DATABASE_URL": "postgresql://h/db"},
        {"TIDINGS_FILES_URL": "/srv/files"},
        {"TIDINGS_WORKERS": "0"},
        {"TIDINGS_WORKERS": "many"},
    ],
)
def test_a_bad_value_is_refused_at_start_with_its_name(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match="TIDINGS_"):
        Settings.from_env(env)


def test_the_largest_write_batch_is_chosen_by_database_unless_set() -> None:
    assert Settings().largest_batch == 1000
    assert Settings.from_env({"TIDINGS_DATABASE_URL": "postgresql://h/db"}).largest_batch == 3000
    assert Settings.from_env({"TIDINGS_DATABASE_URL": "mysql://h/db"}).largest_batch == 3000
    assert Settings.from_env({"TIDINGS_WRITE_BATCH_MAX": "200"}).largest_batch == 200


def test_a_redis_cluster_is_asked_for_and_its_prefix_and_urls_are_checked() -> None:
    from tidings.redis_target import RedisTarget

    on = {"TIDINGS_REDIS_URL": "redis://a:7000/0", "TIDINGS_REDIS_CLUSTER": "true"}
    assert Settings.from_env(on).redis_cluster is True
    assert Settings.from_env({"TIDINGS_REDIS_URL": "redis://a:6379/0"}).redis_cluster is False
    # Redis hashes only a name's first {...}: the prefix must not bring its own.
    with pytest.raises(SettingsError, match="must not contain"):
        Settings.from_env(on | {"TIDINGS_REDIS_PREFIX": "{app}:"})
    # Several seed nodes: a cluster's, not one server's.
    several = "redis://a:7000/0,redis://b:7001/0"
    assert Settings.from_env(on | {"TIDINGS_REDIS_URL": several}).redis_url == several
    with pytest.raises(SettingsError, match="only with TIDINGS_REDIS_CLUSTER"):
        Settings.from_env({"TIDINGS_REDIS_URL": several})
    # The deployment's keys share one slot on a cluster; one server keeps the old names.
    assert RedisTarget("redis://a/0", "t:", cluster=True).shared == "{t:}"
    assert RedisTarget("redis://a/0", "t:").shared == "t:"
    shown = RedisTarget("redis://:secret@a:7000/0,redis://:secret@b:7001/0", cluster=True)
    assert "secret" not in shown.safe_url() and "b:7001" in shown.safe_url()


def test_archive_after_takes_a_duration() -> None:
    def after(raw: str) -> float:
        return Settings.from_env({"TIDINGS_ARCHIVE_AFTER_SECONDS": raw}).archive_after_seconds

    assert after("180d") == 180 * 86400
    assert after("12h") == 12 * 3600
    assert after("30m") == 1800
    assert after("2w") == 14 * 86400
    assert after("90") == 90
    assert Settings.from_env({}).archive_after_seconds == 0  # off unless asked
    for bad in ("soon", "-3d", "12x"):
        with pytest.raises(SettingsError, match="TIDINGS_ARCHIVE_AFTER_SECONDS"):
            after(bad)
    with pytest.raises(SettingsError, match="ARCHIVE_EVERY"):
        Settings.from_env({"TIDINGS_ARCHIVE_EVERY_SECONDS": "0"})
