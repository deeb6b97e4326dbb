"""Settings come from defaults < enlarger.toml < environment < flags, with clear errors."""

from __future__ import annotations

import functools
import os
import pickle
from pathlib import Path

import pytest

from enlarger.config import Settings, SettingsError, load_settings, unknown_environment


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
        ("priority_lane_slots = 9", r"max_parallel_jobs \(4\), not 9"),
        ("stale_seconds = 0.5", r"stale_seconds \(0.5\) must be longer"),
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


# ---- every value checked, the error naming the setting and what it takes ----------------------


@pytest.fixture
def clean_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory of its own (its enlarger.toml is the default file), none of the
    caller's ENLARGER_ settings, and one variable with the prefix that is no setting."""
    for name in list(os.environ):
        if name.startswith("ENLARGER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ENLARGER_TEST_PG", "postgresql://elsewhere/")  # not a setting: ignored
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_variable_that_names_no_setting_is_told_of_with_the_nearest_name(
    clean_start: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("ENLARGER_DATBASE_URL", "ENLARGER_Max_Parallel_Jobs", "ENLARGER_CONFIG_FILE"):
        monkeypatch.setenv(variable, "3")
    monkeypatch.setenv("ENLARGER_SHINY", "yes")
    monkeypatch.setenv("ENLARGER_BENCH_PG", "postgresql://elsewhere/")  # the benchmarks' own
    monkeypatch.setenv("ENLARGER_CONFIG", str(clean_start / "enlarger.toml"))
    (clean_start / "enlarger.toml").write_text("")
    assert load_settings().max_parallel_jobs == 3  # names are read in any case
    assert unknown_environment() == [
        "ENLARGER_CONFIG_FILE is not a setting, so it is ignored; did you mean ENLARGER_CONFIG?",
        "ENLARGER_DATBASE_URL is not a setting, so it is ignored; did you mean"
        " ENLARGER_DATABASE_URL?",
        "ENLARGER_SHINY is not a setting, so it is ignored",
    ]


def test_a_misspelled_boolean_is_refused_not_read_as_false(
    clean_start: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENLARGER_MANIFEST_VERIFY_HASHES", "ture")
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert str(refused.value) == (
        "manifest_verify_hashes: 'ture' is not a boolean; use true or false"
    )
    for spelling, meaning in [("false", False), ("0", False), ("Off", False), ("yes", True)]:
        monkeypatch.setenv("ENLARGER_MANIFEST_VERIFY_HASHES", spelling)
        assert load_settings().manifest_verify_hashes is meaning


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ENLARGER_LOG_FORMAT", "jsn", "log_format: 'jsn' is not allowed; use text or json"),
        (
            "ENLARGER_THUMBNAIL_FORMAT",
            "jpg",
            "thumbnail_format: 'jpg' is not allowed; use jpeg, webp or avif",
        ),
        (
            "ENLARGER_LOG_LEVEL",
            "verbose",
            "log_level: 'VERBOSE' is not allowed; use DEBUG, INFO, WARNING, ERROR or CRITICAL",
        ),
    ],
)
def test_a_misspelled_choice_is_refused_listing_the_choices(
    clean_start: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert str(refused.value) == message


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("max_parallel_jobs = 2.5", "max_parallel_jobs: 2.5 is not a whole number"),
        ("[enlarger]\nheartbeat_ms = '1s'", "heartbeat_ms: '1s' is not a whole number"),
        ("stale_seconds = 'soon'", "stale_seconds: 'soon' is not a number"),
    ],
)
def test_a_bad_number_in_the_file_is_refused_naming_the_setting(
    clean_start: Path, content: str, message: str
) -> None:
    (clean_start / "enlarger.toml").write_text(content)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert str(refused.value) == message


def test_every_problem_is_a_line_of_its_own_and_secrets_are_not_shown(
    clean_start: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_start / "enlarger.toml").write_text("secret_key = 12345678901234567890\n")
    monkeypatch.setenv("ENLARGER_PRIORITY_THRESHOLD", "high")
    monkeypatch.setenv("ENLARGER_WEBHOOKS_INSECURE", "maybe")
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert sorted(str(refused.value).splitlines()) == [
        "priority_threshold: 'high' is not a whole number",
        "secret_key: the value is not text; put it in quotes",
        "webhooks_insecure: 'maybe' is not a boolean; use true or false",
    ]


def test_flags_beat_the_environment_which_beats_the_file_which_beats_the_defaults(
    clean_start: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_start / "enlarger.toml").write_text(
        "max_parallel_jobs = 8\npriority_lane_slots = 2\nheartbeat_ms = 500\n"
    )
    monkeypatch.setenv("ENLARGER_PRIORITY_LANE_SLOTS", "1")
    monkeypatch.setenv("ENLARGER_HEARTBEAT_MS", "250")
    monkeypatch.setenv("ENLARGER_LOG_LEVEL", "")  # empty: not set
    settings = load_settings({"priority_lane_slots": 3, "heartbeat_ms": None})
    assert settings.priority_lane_slots == 3  # flag over environment over file
    assert settings.heartbeat_ms == 250  # environment over file; a None flag is no flag
    assert settings.max_parallel_jobs == 8  # file over default
    assert (settings.stale_seconds, settings.log_level) == (10.0, "INFO")  # defaults


def test_settings_built_in_code_read_no_environment_and_travel_by_pickle(
    clean_start: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENLARGER_MAX_PARALLEL_JOBS", "7")
    assert Settings().max_parallel_jobs == 4  # only load_settings reads the layers
    loaded = load_settings()
    assert loaded.max_parallel_jobs == 7
    copy = pickle.loads(pickle.dumps(loaded))
    assert copy == loaded and hash(copy) == hash(loaded)
    cached = functools.cache(lambda settings: object())
    assert cached(copy) is cached(loaded) is not cached(loaded.replace(max_parallel_jobs=6))
