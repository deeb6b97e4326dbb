"""Settings: one object, read from defaults < `enlarger.toml` < environment < CLI flags.

Every field can be set in `enlarger.toml` (top-level keys, or under `[enlarger]`), by the
environment variable `ENLARGER_<FIELD>` and by the CLI flag `--<field>` where the command
offers it. Paths derived from `data_dir` are filled in last, so moving the data directory
moves the database and the blobs with it unless those are set explicitly.

Every value is checked when the settings are built: a misspelled choice, `ture` for a
boolean or `2.5` for a count stops the start with a SettingsError naming the setting and
what it takes, one line per problem, instead of quietly meaning something else.

`load_settings` reads the layers. `Settings(...)` itself reads neither the environment nor a
file: it is the defaults and the values given, checked the same way.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DATABASE_URL_SCHEMES = ("sqlite:///", "postgresql://", "postgres://", "postgresql+psycopg://")
ENV_PREFIX = "ENLARGER_"
CONFIG_FILE_ENV = "ENLARGER_CONFIG"
DEFAULT_CONFIG_FILE = "enlarger.toml"
# ENLARGER_ variables read by name, not as settings: the test suite's and the benchmarks'
# own (their prefixes), and the config file's path
ENV_NOT_SETTINGS_PREFIXES = ("ENLARGER_TEST_", "ENLARGER_BENCH_")


MIN_SECRET_BYTES = 16  # a shorter URL-signing secret could be guessed

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["text", "json"]
ImageFormat = Literal["jpeg", "webp", "avif"]
Segmenter = Literal["auto", "model", "backdrop", "onnx"]  # onnx: an older name of model
Preprocessing = Literal["imagenet", "isnet", "unit"]
PUBLISHERS = ("folder", "webhook", "shopify")


def _at_least_one(value: float) -> bool:
    return value >= 1


def _not_negative(value: float) -> bool:
    return value >= 0


def _percent(value: float) -> bool:
    return 1 <= value <= 100


# The numbers with a range: whether a value is in it, and what the error says it must be.
_NUMBER_RULES: dict[str, tuple[Callable[[float], bool], str]] = {
    "max_parallel_jobs": (_at_least_one, "must be at least 1"),
    "max_attempts_default": (_at_least_one, "must be at least 1"),
    "image_max_per_sku": (_at_least_one, "must be at least 1"),
    "fetch_max_bytes": (_at_least_one, "must be at least 1"),
    "preview_size": (_at_least_one, "must be at least 1"),
    "trash_retention_days": (_not_negative, "cannot be negative"),
    "settle_seconds": (_not_negative, "cannot be negative"),
    "settle_look_seconds": (_not_negative, "cannot be negative"),
    "blur_threshold": (_not_negative, "cannot be negative"),
    "burst_gap_seconds": (_not_negative, "cannot be negative"),
    "image_threads": (_not_negative, "must be 0 (automatic) or more"),
    "storage_timeout_seconds": (lambda value: value > 0, "must be more than 0"),
    "thumbnail_quality": (_percent, "must be between 1 and 100"),
    "preview_quality": (_percent, "must be between 1 and 100"),
    "product_review_below": (lambda value: 0 <= value <= 1, "is a confidence between 0 and 1"),
}


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the setting."""


@dataclass(frozen=True)
class _Layers:
    """What `load_settings` reads besides its flags: while it builds Settings, and only then."""

    environ: Mapping[str, str]
    config_file: Path | None


_LAYERS: ContextVar[_Layers | None] = ContextVar("enlarger_settings_layers", default=None)


class _Environment(EnvSettingsSource):
    """`ENLARGER_<FIELD>` from the environment given to load_settings (empty ones ignored).
    Other `ENLARGER_` variables (ENLARGER_CONFIG, a test's server) are not settings: ignored."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name.lower(): value for name, value in self._environ.items() if value != ""}


class _TomlFile(TomlConfigSettingsSource):
    """enlarger.toml: its `[enlarger]` table if it has one, else its top-level keys."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls, toml_file=path)

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        try:
            data = super()._read_file(file_path)
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{file_path}: not valid TOML ({exc})") from None
        table = data.get("enlarger", data)
        if not isinstance(table, dict):
            raise SettingsError(f"{file_path}: enlarger must be a table of settings")
        return table


class Settings(BaseSettings):
    """Frozen, hashable (a functools.cache key) and picklable (spawned workers get a copy)."""

    model_config = SettingsConfigDict(
        frozen=True, env_prefix=ENV_PREFIX, env_ignore_empty=True, extra="forbid"
    )

    data_dir: Path = Path("./enlarger-data")
    database_url: str = ""
    storage_url: str = ""
    s3_endpoint_url: str = ""
    storage_timeout_seconds: float = 15.0  # an S3 call unanswered this long gives up
    handlers: str = "enlarger.bootstrap:registry"
    log_level: LogLevel = "INFO"  # DEBUG, INFO, WARNING, ERROR or CRITICAL (any case)
    log_format: LogFormat = "text"  # or "json": one JSON object per line, with request ids

    # Worker pipeline (reference 003's knobs).
    max_parallel_jobs: int = 4
    priority_lane_slots: int = 1
    priority_threshold: int = 90
    heartbeat_ms: int = 1000
    stale_seconds: float = 10.0
    max_attempts_default: int = 3

    # Engine tuning beyond the reference.
    claim_batch: int = 100
    poll_interval_ms: int = 20
    retry_base_seconds: float = 2.0
    retry_cap_seconds: float = 600.0
    # how long a job waits out an outage of its database or storage, its attempts unspent
    outage_budget_seconds: float = 900.0
    job_timeout_seconds: float = 3600.0
    shutdown_grace_seconds: float = 30.0
    prune_after_seconds: float = 3600.0
    event_retention_seconds: float = 86400.0
    cpu_max_tasks_per_child: int = 200
    cpu_max_rss_mb: int = 1024
    cpu_kill_rss_mb: int = 2048  # a CPU child past this while running is killed
    image_threads: int = 0  # libvips threads per image job; 0: the cores shared out by slot

    # Photo library: upload limits and derivative recipes.
    max_upload_bytes: int = 200 * 1024 * 1024
    max_pixels: int = 200_000_000
    max_form_bytes: int = 2 * 1024**3  # one upload request, all its files together
    upload_idle_seconds: float = 60.0  # a request body that stops this long is refused (408)
    upload_max_seconds: float = 3600.0  # and one that takes longer than this in all
    head_timeout_seconds: float = 5.0  # a request line and headers not whole by then: 408
    max_connections: int = 1000  # open at once per server; more are closed at once (503)
    max_connections_per_client: int = 100  # open at once from one address (0: no limit)
    thumbnail_sizes: str = "64,128,256,512"  # long side in pixels, comma-separated
    thumbnail_format: ImageFormat = "jpeg"  # jpeg, webp or avif
    thumbnail_quality: int = 80
    preview_size: int = 2000
    preview_format: ImageFormat = "jpeg"
    preview_quality: int = 85

    # Project maintenance (reference 003).
    trash_retention_days: float = 30.0  # trash_maintenance purges what is older
    settle_seconds: float = 60.0  # files changed this recently may still be being written
    settle_look_seconds: float = 1.0  # folder_check's second look at them, this much later
    manifest_verify_hashes: bool = True  # manifest_check reads every file to hash it
    blur_threshold: float = 40.0  # culling: a photo whose sharpest region is below is blurry
    burst_gap_seconds: float = 2.0  # culling: frames of a burst are at most this far apart

    # Product images (reference 004): intake, fetching, themes and publishing.
    webhook_secrets: str = ""  # comma-separated; whsec_<base64> or a plain shared secret
    webhooks_insecure: bool = False  # accept unsigned webhooks (development only)
    image_max_per_sku: int = 50  # product jobs per SKU (failed ones not counted)
    fetch_allow_hosts: str = ""  # host:port entries fetched from even on private addresses
    fetch_max_bytes: int = 50 * 1024 * 1024
    fetch_timeout_seconds: float = 60.0
    product_themes_file: str = ""  # a TOML file of themes beside the built-in ones
    product_external_themes: str = ""  # themes whose jobs an external worker runs
    product_segmenter: Segmenter = "auto"  # auto, model or backdrop (see enlarger.media.segment)
    product_onnx_model: str = ""  # a local .onnx salient-object model instead of U²-Net-p
    product_onnx_preprocessing: Preprocessing = "imagenet"  # imagenet, isnet or unit
    product_review_below: float = 0.8  # hold cut-outs less sure than this for review; 0: never
    product_publishers: str = "folder"  # comma-separated: folder, webhook, shopify
    product_publish_url: str = ""  # folder publisher: file://… or s3://…; default: storage
    product_webhook_url: str = ""  # webhook publisher: where composites are announced
    product_webhook_secret: str = ""  # whsec_… signing the announcements
    shopify_shop: str = ""  # shopify publisher: my-shop.myshopify.com (or a base URL)
    shopify_access_token: str = ""  # an Admin API token with write_products
    shopify_api_version: str = "2025-01"

    # Serving: blob URLs are signed with secret_key (created in data_dir when empty).
    secret_key: str = ""
    url_expiry_seconds: int = 3600
    docs_public: bool = False  # /docs and /openapi.json without a token, once tokens exist
    public_url: str = ""  # https://photos.example.com: local blob URLs become absolute

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            layers = _LAYERS.get()
            raise SettingsError(_problems(exc, layers.config_file if layers else None)) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """First wins: flags (the values given), environment, TOML file; then the defaults.
        Outside load_settings only the values given."""
        layers = _LAYERS.get()
        if layers is None:
            return (init_settings,)
        sources = [init_settings, _Environment(settings_cls, layers.environ)]
        if layers.config_file is not None:
            sources.append(_TomlFile(settings_cls, layers.config_file))
        return tuple(sources)

    # ---- one setting at a time (the error names it) ---------------------------------------

    @field_validator("data_dir")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("log_level", mode="before")
    @classmethod
    def _any_case(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator(*_NUMBER_RULES)
    @classmethod
    def _in_range(cls, value: float, info: ValidationInfo) -> float:
        name = info.field_name or ""
        holds, rule = _NUMBER_RULES[name]
        if not holds(value):
            raise ValueError(f"{name} {rule}")
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, value: str) -> str:
        if value and len(value.encode()) < MIN_SECRET_BYTES:
            raise ValueError(
                f"secret_key must be at least {MIN_SECRET_BYTES} bytes (it signs blob URLs); "
                "leave it empty to have one made in data_dir"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if value and not value.startswith(DATABASE_URL_SCHEMES):
            raise ValueError(
                f"database_url {value!r} is not a database enlarger can use: give "
                "sqlite:///path/to/file.db or postgresql://user@host:port/database"
            )
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        public = urlsplit(value)
        if value and (public.scheme not in ("http", "https") or not public.netloc or public.query):
            raise ValueError("public_url must be an http(s) address such as https://host")
        return value

    @field_validator("product_review_below")
    @classmethod
    def _review_below(cls, value: float) -> float:
        if not 0.0 <= value <= 1.0:
            raise ValueError("product_review_below is a confidence between 0 and 1")
        return value

    @field_validator("product_publishers")
    @classmethod
    def _publishers(cls, value: str) -> str:
        names = _comma_list(value)
        unknown = [name for name in names if name not in PUBLISHERS]
        if unknown or not names:
            problem = f"unknown publisher {', '.join(map(repr, unknown))}" if unknown else "none"
            raise ValueError(
                f"product_publishers: {problem}; use {_either(PUBLISHERS)}, comma-separated"
            )
        return value

    @field_validator("thumbnail_sizes")
    @classmethod
    def _thumbnail_sizes(cls, value: str) -> str:
        try:
            sizes = _size_list(value)
        except ValueError:
            sizes = []
        if not sizes or min(sizes) < 1:
            raise ValueError("thumbnail_sizes must be positive pixel sizes, like 64,128,256")
        return value

    # ---- settings that must agree (the message names them) --------------------------------

    @model_validator(mode="after")
    def _agree(self) -> Settings:
        if not 0 <= self.priority_lane_slots <= self.max_parallel_jobs:
            raise ValueError(
                f"priority_lane_slots must be between 0 and max_parallel_jobs "
                f"({self.max_parallel_jobs}), not {self.priority_lane_slots}"
            )
        if self.heartbeat_ms <= 0 or self.stale_seconds * 1000 <= self.heartbeat_ms:
            raise ValueError(
                f"stale_seconds ({self.stale_seconds:g}) must be longer than one heartbeat "
                f"(heartbeat_ms: {self.heartbeat_ms})"
            )
        if self.product_segmenter == "onnx" and not self.product_onnx_model:
            raise ValueError("product_segmenter=onnx needs product_onnx_model (a local path)")
        publishers = self.product_publisher_list
        if "shopify" in publishers and not (self.shopify_shop and self.shopify_access_token):
            raise ValueError("the shopify publisher needs shopify_shop and shopify_access_token")
        if "webhook" in publishers and not (
            self.product_webhook_url and self.product_webhook_secret
        ):
            raise ValueError(
                "the webhook publisher needs product_webhook_url and product_webhook_secret"
            )
        return self

    @property
    def resolved_image_threads(self) -> int:
        """Jobs run side by side in `max_parallel_jobs` slots; threads inside each job on
        top of that contend for the same cores (bench/ingest_e2e.py on two cores: fewer
        images per second reached STORED with libvips' default of a thread per core)."""
        if self.image_threads:
            return self.image_threads
        if hasattr(os, "sched_getaffinity"):
            cores = len(os.sched_getaffinity(0))
        else:
            cores = os.cpu_count() or 1
        return max(1, cores // self.max_parallel_jobs)

    @property
    def product_cut_method(self) -> str:
        """How products are cut out; `onnx`, an older name, is the model method."""
        return "model" if self.product_segmenter == "onnx" else self.product_segmenter

    @property
    def product_publisher_list(self) -> list[str]:
        return _comma_list(self.product_publishers)

    @property
    def secret_file(self) -> Path:
        return self.data_dir / "secret.key"

    @property
    def thumbnail_size_list(self) -> list[int]:
        return _size_list(self.thumbnail_sizes)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'enlarger.db').resolve()}"

    @property
    def resolved_storage_url(self) -> str:
        if self.storage_url:
            return self.storage_url
        return f"file://{(self.data_dir / 'library').resolve()}"

    def replace(self, **changes: Any) -> Settings:
        """A copy with `changes`, checked like any Settings (model_copy would not check them)."""
        return type(self)(**{**self.model_dump(), **changes})


def _comma_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _size_list(value: str) -> list[int]:
    return sorted(int(part) for part in _comma_list(value))


def _either(choices: tuple[str, ...] | list[str]) -> str:
    """`a, b or c`."""
    return f"{', '.join(choices[:-1])} or {choices[-1]}" if len(choices) > 1 else choices[0]


# What a choice's error offers, where not every accepted value is worth offering.
_OFFERED = {"product_segmenter": ("auto", "model", "backdrop")}


def _problem(error: ErrorDetails, config_file: Path | None) -> str:
    """One line naming the setting, what it was given (secrets not shown) and what it takes."""
    name = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    given = "the value" if "secret" in name or "token" in name else repr(error["input"])
    if kind == "extra_forbidden":
        where = f"{config_file}: " if config_file else ""
        return f"{where}unknown setting {name!r}"
    if kind == "value_error":
        message = str(error.get("ctx", {}).get("error", error["msg"]))
        return message if not name or name in message else f"{name}: {message}"
    if kind.startswith("bool_"):
        return f"{name}: {given} is not a boolean; use true or false"
    if kind.startswith("int_"):
        return f"{name}: {given} is not a whole number"
    if kind.startswith("float_"):
        return f"{name}: {given} is not a number"
    if kind == "literal_error":
        field = Settings.model_fields[name]
        choices = _OFFERED.get(name) or tuple(str(arg) for arg in get_args(field.annotation))
        return f"{name}: {given} is not allowed; use {_either(choices)}"
    if kind.startswith("string_"):
        return f"{name}: {given} is not text; put it in quotes"
    return f"{name}: {given}: {error['msg']}"


def _problems(exc: ValidationError, config_file: Path | None) -> str:
    return "\n".join(_problem(error, config_file) for error in exc.errors())


def load_settings(
    overrides: dict[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Build Settings from the layers; `overrides` are CLI flags (None values are ignored).
    `environ` stands in for the process's environment (tests, benchmarks)."""
    env = os.environ if environ is None else environ
    path = config_file or Path(env.get(CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE))
    if not path.is_file() and (config_file is not None or CONFIG_FILE_ENV in env):
        raise SettingsError(f"config file {path} does not exist")
    flags = {name: value for name, value in (overrides or {}).items() if value is not None}
    token = _LAYERS.set(_Layers(env, path if path.is_file() else None))
    try:
        return Settings(**flags)
    finally:
        _LAYERS.reset(token)


def unknown_environment(environ: Mapping[str, str] | None = None) -> list[str]:
    """A line for each ENLARGER_ variable that names no setting, with the setting it looks
    most like: the environment source passes over them in silence, so a misspelled name
    would leave the default in force unseen (the config file refuses unknown names)."""
    env = os.environ if environ is None else environ
    names = [*Settings.model_fields, CONFIG_FILE_ENV.removeprefix(ENV_PREFIX).lower()]
    lines = []
    for variable in sorted(env):
        name = variable.upper()
        setting = name.removeprefix(ENV_PREFIX).lower()
        if (
            not name.startswith(ENV_PREFIX)
            or name.startswith(ENV_NOT_SETTINGS_PREFIXES)
            or setting in names
        ):
            continue
        nearest = difflib.get_close_matches(setting, names, n=1)
        hint = f"; did you mean {ENV_PREFIX}{nearest[0].upper()}?" if nearest else ""
        lines.append(f"{variable} is not a setting, so it is ignored{hint}")
    return lines
