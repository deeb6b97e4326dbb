"""Settings come from defaults < enlarger.toml < environment < flags, with clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from enlarger.config import Settings, SettingsError, load_settings


def test_defaults_derive_paths_from_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings(environ={"ENLARGER_DATA_DIR": str(tmp_path)})
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'enlarger.db'}"
    assert settings.resolved_storage_url == f"file://{tmp_path / 'library'}"
    assert (settings.max_parallel_jobs, settings.priority_lane_slots) == (4, 1)
    assert (settings.priority_threshold, settings.max_attempts_default) == (90, 3)


def test_layers_override_in_order(tmp_path: Path) -> None:
    config = tmp_path / "enlarger.toml"
    config.write_text(
        "max_parallel_jobs = 8\npriority_lane_slots = 2\nheartbeat_ms = 500\nstale_seconds = 5\n"
    )
    settings = load_settings(
        {"priority_lane_slots": 3, "heartbeat_ms": None},
        environ={
            "ENLARGER_CONFIG": str(config),
            "ENLARGER_HEARTBEAT_MS": "250",
            "ENLARGER_PRIORITY_LANE_SLOTS": "1",
        },
    )
    assert settings.max_parallel_jobs == 8  # file
    assert settings.heartbeat_ms == 250  # environment beats file; a None flag is no flag
    assert settings.priority_lane_slots == 3  # flag beats environment
    assert settings.stale_seconds == 5.0


def test_enlarger_table_in_toml_is_read(tmp_path: Path) -> None:
    config = tmp_path / "enlarger.toml"
    config.write_text("[enlarger]\npriority_threshold = 70\n")
    assert load_settings(environ={}, config_file=config).priority_threshold == 70


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("max_parallel_jobs = 'many'", "max_parallel_jobs"),
        ("max_paralel_jobs = 2", "unknown setting 'max_paralel_jobs'"),
        ("priority_lane_slots = 9", "priority_lane_slots must be between"),
        ("stale_seconds = 0.5", "stale_seconds must be longer"),
        ("image_threads = -1", "image_threads must be 0"),
        ("public_url = 'photos.example.com'", "public_url must be an http"),
        ("public_url = 'ftp://photos.example.com'", "public_url must be an http"),
        ("this is = not toml [", "not valid TOML"),
        ("secret_key = 'short'", "secret_key must be at least 16 bytes"),
    ],
)
def test_bad_settings_are_named(tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "enlarger.toml"
    config.write_text(content)
    with pytest.raises(SettingsError, match=message):
        load_settings(environ={}, config_file=config)


def test_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(environ={"ENLARGER_CONFIG": str(tmp_path / "nope.toml")})


def test_replace_keeps_validation() -> None:
    with pytest.raises(SettingsError):
        Settings().replace(max_parallel_jobs=0)


def test_image_threads_share_the_cores_out_among_the_slots() -> None:
    cores = len(os.sched_getaffinity(0))
    assert Settings(max_parallel_jobs=1).resolved_image_threads == cores
    assert Settings(max_parallel_jobs=cores * 2).resolved_image_threads == 1
    assert Settings(max_parallel_jobs=1, image_threads=3).resolved_image_threads == 3
