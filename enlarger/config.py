"""Settings: one object, read from defaults < `enlarger.toml` < environment < CLI flags.

Every field can be set in `enlarger.toml` (top-level keys, or under `[enlarger]`), by the
environment variable `ENLARGER_<FIELD>` and by the CLI flag `--<field>` where the command
offers it. Paths derived from `data_dir` are filled in last, so moving the data directory
moves the database and the blobs with it unless those are set explicitly.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import urlsplit

ENV_PREFIX = "ENLARGER_"
CONFIG_FILE_ENV = "ENLARGER_CONFIG"
DEFAULT_CONFIG_FILE = "enlarger.toml"


MIN_SECRET_BYTES = 16  # a shorter URL-signing secret could be guessed


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the setting."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("./enlarger-data")
    database_url: str = ""
    storage_url: str = ""
    s3_endpoint_url: str = ""
    storage_timeout_seconds: float = 15.0  # an S3 call unanswered this long gives up
    handlers: str = "enlarger.bootstrap:registry"
    log_level: str = "INFO"
    log_format: str = "text"  # or "json": one JSON object per line, with request ids

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
    thumbnail_format: str = "jpeg"  # jpeg, webp or avif
    thumbnail_quality: int = 80
    preview_size: int = 2000
    preview_format: str = "jpeg"
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
    product_segmenter: str = "auto"  # auto, model or backdrop (see enlarger.media.segment)
    product_onnx_model: str = ""  # a local .onnx salient-object model instead of U²-Net-p
    product_onnx_preprocessing: str = "imagenet"  # imagenet, isnet or unit
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

    def __post_init__(self) -> None:
        if self.log_format not in ("text", "json"):
            raise SettingsError("log_format must be text or json")
        if self.max_parallel_jobs < 1:
            raise SettingsError("max_parallel_jobs must be at least 1")
        if not 0 <= self.priority_lane_slots <= self.max_parallel_jobs:
            raise SettingsError("priority_lane_slots must be between 0 and max_parallel_jobs")
        if self.heartbeat_ms <= 0 or self.stale_seconds * 1000 <= self.heartbeat_ms:
            raise SettingsError("stale_seconds must be longer than one heartbeat (heartbeat_ms)")
        if self.max_attempts_default < 1:
            raise SettingsError("max_attempts_default must be at least 1")
        if min(self.trash_retention_days, self.settle_seconds, self.settle_look_seconds) < 0:
            raise SettingsError(
                "trash_retention_days, settle_seconds and settle_look_seconds cannot be negative"
            )
        if self.blur_threshold < 0 or self.burst_gap_seconds < 0:
            raise SettingsError("blur_threshold and burst_gap_seconds cannot be negative")
        if self.storage_timeout_seconds <= 0:
            raise SettingsError("storage_timeout_seconds must be more than 0")
        if self.image_threads < 0:
            raise SettingsError("image_threads must be 0 (automatic) or more")
        if self.secret_key and len(self.secret_key.encode()) < MIN_SECRET_BYTES:
            raise SettingsError(
                f"secret_key must be at least {MIN_SECRET_BYTES} bytes (it signs blob URLs); "
                "leave it empty to have one made in data_dir"
            )
        if self.image_max_per_sku < 1 or self.fetch_max_bytes < 1:
            raise SettingsError("image_max_per_sku and fetch_max_bytes must be at least 1")
        public = urlsplit(self.public_url)
        if self.public_url and (
            public.scheme not in ("http", "https") or not public.netloc or public.query
        ):
            raise SettingsError("public_url must be an http(s) address such as https://host")
        if self.product_segmenter not in ("auto", "model", "backdrop", "onnx"):
            raise SettingsError("product_segmenter must be auto, model or backdrop")
        if self.product_segmenter == "onnx" and not self.product_onnx_model:
            raise SettingsError("product_segmenter=onnx needs product_onnx_model (a local path)")
        if self.product_onnx_preprocessing not in ("imagenet", "isnet", "unit"):
            raise SettingsError("product_onnx_preprocessing must be imagenet, isnet or unit")
        if not 0.0 <= self.product_review_below <= 1.0:
            raise SettingsError("product_review_below is a confidence between 0 and 1")
        unknown = set(self.product_publisher_list) - {"folder", "webhook", "shopify"}
        if unknown or not self.product_publisher_list:
            raise SettingsError("product_publishers takes folder, webhook and shopify")
        if "shopify" in self.product_publisher_list and not (
            self.shopify_shop and self.shopify_access_token
        ):
            raise SettingsError("the shopify publisher needs shopify_shop and shopify_access_token")
        if "webhook" in self.product_publisher_list and not (
            self.product_webhook_url and self.product_webhook_secret
        ):
            raise SettingsError(
                "the webhook publisher needs product_webhook_url and product_webhook_secret"
            )
        try:
            sizes = self.thumbnail_size_list
        except ValueError:
            sizes = []
        if not sizes or min(sizes) < 1:
            raise SettingsError("thumbnail_sizes must be positive pixel sizes, like 64,128,256")

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
        return [part.strip() for part in self.product_publishers.split(",") if part.strip()]

    @property
    def secret_file(self) -> Path:
        return self.data_dir / "secret.key"

    @property
    def thumbnail_size_list(self) -> list[int]:
        return sorted(int(part) for part in self.thumbnail_sizes.split(",") if part.strip())

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
        return dataclasses.replace(self, **changes)


def _coerce(name: str, kind: type, raw: Any) -> Any:
    """Turn a TOML, environment or flag value into the field's type, or say which field is wrong."""
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            return str(raw).strip().lower() in {"1", "true", "yes", "on"}
        if kind is Path:
            return Path(raw).expanduser()
        return kind(raw)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"setting {name!r}: cannot use {raw!r} ({exc})") from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML ({exc})") from None
    return data.get("enlarger", data)


def load_settings(
    overrides: dict[str, Any] | None = None,
    *,
    environ: dict[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Build Settings from the layers; `overrides` are CLI flags (None values are ignored)."""
    env = os.environ if environ is None else environ
    hints = get_type_hints(Settings)
    known = {f.name for f in fields(Settings)}
    values: dict[str, Any] = {}

    path = config_file or Path(env.get(CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE))
    if path.is_file():
        for key, raw in _read_toml(path).items():
            if key not in known:
                raise SettingsError(f"{path}: unknown setting {key!r}")
            values[key] = _coerce(key, hints[key], raw)
    elif config_file is not None or CONFIG_FILE_ENV in env:
        raise SettingsError(f"config file {path} does not exist")

    for key in known:
        raw = env.get(ENV_PREFIX + key.upper())
        if raw is not None and raw != "":
            values[key] = _coerce(key, hints[key], raw)

    for key, raw in (overrides or {}).items():
        if raw is not None:
            values[key] = _coerce(key, hints[key], raw)

    return Settings(**values)
