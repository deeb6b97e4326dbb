"""The product pipeline's pure parts: the state machine, webhook signatures, cut-outs of
generated studio photos with known masks (light and grey products on white, sets of
several pieces, products cut by the frame, busy backgrounds), the built-in model and an
ONNX model the test builds, and compositing rules (aspect sizes, Amazon's white frame and
fill, a theme's own fill)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

from bench.product_photos import product_photo
from enlarger.catalog.states import (
    InvalidTransition,
    ProductStatus,
    check_fields,
    check_transition,
    remaining_seconds,
)
from enlarger.catalog.themes import BUILTIN_THEMES, load_themes
from enlarger.catalog.webhooks import WebhookRejected, secret_key, sign_standard, verify
from enlarger.config import Settings, SettingsError
from enlarger.media.compose import (
    Background,
    Placement,
    canvas_size,
    compose,
    draw_background,
)
from enlarger.media.segment import (
    BUILTIN_MODEL_SHA256,
    SaliencyModel,
    SegmentationError,
    boundary_f,
    bounding_box,
    builtin_model,
    cut_out,
    iou,
    remove_backdrop,
)
from tests.test_cli import invoke

pytestmark = pytest.mark.usefixtures("matting_compiled")
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
BODY = b'{"sku":"SKU-1","imageUrl":"https://img.example/a.jpg","sha256":"' + b"a" * 64 + b'"}'
NOW = 1_800_000_000


def _rgb(photo_jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(photo_jpeg)).convert("RGB"))


# ---- state machine ------------------------------------------------------------------------


def test_transitions_follow_the_pipeline_and_final_states_stay_final() -> None:
    check_transition(ProductStatus.NEW, ProductStatus.QUEUED)
    check_transition(ProductStatus.COMPOSITING, ProductStatus.PUBLISHING)
    check_transition(ProductStatus.SEGMENTING, ProductStatus.FAILED)
    with pytest.raises(InvalidTransition, match="cannot become"):
        check_transition(ProductStatus.NEW, ProductStatus.SEGMENTING)
    with pytest.raises(InvalidTransition, match="cannot become"):
        check_transition(ProductStatus.PUBLISHING, ProductStatus.COMPOSITING)
    for final in (ProductStatus.DONE, ProductStatus.FAILED):
        with pytest.raises(InvalidTransition, match="final"):
            check_transition(final, ProductStatus.FAILED)


def test_each_status_checks_its_required_fields() -> None:
    with pytest.raises(InvalidTransition, match="mask_key"):
        check_fields(ProductStatus.BG_GENERATING, {"original_key": "o.jpg"})
    check_fields(ProductStatus.BG_GENERATING, {"original_key": "o.jpg", "mask_key": "m.png"})
    with pytest.raises(InvalidTransition, match="error_code"):
        check_fields(ProductStatus.FAILED, {"error_message": "x"})
    with pytest.raises(InvalidTransition, match="media_ids"):
        check_fields(ProductStatus.DONE, {"composite_keys": ["c.jpg"], "media_ids": []})
    assert remaining_seconds(ProductStatus.QUEUED) > remaining_seconds(ProductStatus.PUBLISHING)
    assert remaining_seconds(ProductStatus.DONE) == 0


# ---- webhook signatures -------------------------------------------------------------------


def _standard_headers(body: bytes, secret: str = SECRET, stamp: int = NOW) -> dict[str, str]:
    signature = sign_standard(secret_key(secret), "msg_1", stamp, body)
    return {"webhook-id": "msg_1", "webhook-timestamp": str(stamp), "webhook-signature": signature}


def test_standard_webhook_signature_is_checked() -> None:
    keys = [secret_key(SECRET)]
    assert verify(_standard_headers(BODY), BODY, keys, now=NOW).webhook_id == "msg_1"
    # the spec's own construction: base64 HMAC-SHA256 of "id.timestamp.body"
    expected = base64.b64encode(
        hmac.new(keys[0], b"msg_1.%d." % NOW + BODY, hashlib.sha256).digest()
    ).decode()
    assert _standard_headers(BODY)["webhook-signature"] == f"v1,{expected}"
    with pytest.raises(WebhookRejected, match="does not match"):
        verify(_standard_headers(BODY), BODY + b" ", keys, now=NOW)
    with pytest.raises(WebhookRejected, match="five minutes"):
        verify(_standard_headers(BODY, stamp=NOW - 301), BODY, keys, now=NOW)
    other = "whsec_" + base64.b64encode(b"another secret of enough bytes!!").decode()
    with pytest.raises(WebhookRejected, match="does not match"):
        verify(_standard_headers(BODY, secret=other), BODY, keys, now=NOW)
    # rotation: either configured secret may sign; several signatures may be offered
    assert verify(_standard_headers(BODY, secret=other), BODY, [*keys, secret_key(other)], now=NOW)
    headers = _standard_headers(BODY)
    headers["webhook-signature"] = "v1,bm9wZQ== " + headers["webhook-signature"]
    assert verify(headers, BODY, keys, now=NOW).scheme == "standard"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing signature"),
        ({"webhook-signature": "v1,abc", "webhook-timestamp": str(NOW)}, "webhook-id"),
        ({"webhook-signature": "v1,abc", "webhook-id": "m", "webhook-timestamp": "x"}, "seconds"),
        ({"webhook-signature": "garbage", "webhook-id": "m", "webhook-timestamp": str(NOW)}, "v1"),
        ({"x-webhook-signature": "zz"}, "does not match"),
    ],
)
def test_malformed_signatures_are_rejected_with_a_reason(
    headers: dict[str, str], reason: str
) -> None:
    with pytest.raises(WebhookRejected, match=reason):
        verify(headers, BODY, [secret_key(SECRET)], now=NOW)


@pytest.mark.parametrize("header", ["x-webhook-signature", "x-3jms-signature"])
def test_reference_hmac_headers_are_accepted(header: str) -> None:
    plain = "a plain shared secret"
    digest = hmac.new(plain.encode(), BODY, hashlib.sha256).hexdigest()
    verified = verify({header: digest}, BODY, [secret_key(plain)])
    assert verified.webhook_id is None and verified.scheme == header
    assert verify({header: f"sha256={digest.upper()}"}, BODY, [secret_key(plain)])
    with pytest.raises(WebhookRejected):
        verify({header: digest}, BODY + b"x", [secret_key(plain)])
    with pytest.raises(WebhookRejected, match="no webhook secret"):
        verify({header: digest}, BODY, [])


# ---- segmentation -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_backdrop_removal_recovers_the_known_mask(seed: int) -> None:
    photo = product_photo(seed, 800, 800)
    alpha = remove_backdrop(_rgb(photo.jpeg))
    assert iou(alpha, photo.truth) >= 0.95, (photo.backdrop, photo.shape, photo.colour)
    # the cast shadow beside the product stays backdrop
    assert alpha[photo.truth == 0].mean() < 8


def test_a_plain_backdrop_has_no_product() -> None:
    empty = np.full((400, 600, 3), 240, dtype=np.uint8)
    empty += np.random.default_rng(1).integers(0, 3, empty.shape, dtype=np.uint8)
    with pytest.raises(SegmentationError, match="no product"):
        remove_backdrop(empty)


def _brightness_model(path: Path, size: int | None) -> Path:
    """A tiny salient-object model: foreground where the red channel is below 0.5
    (sigmoid(40 * (0.5 - R))), as a U²-Net-style (1,3,H,W) → (1,1,H,W) graph."""
    dim: list[int | str] = [size, size] if size else ["h", "w"]
    pixels = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, *dim])
    mask = helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, *dim])
    nodes = [
        helper.make_node("Slice", ["input", "starts", "ends", "axes"], ["red"]),
        helper.make_node("Sub", ["half", "red"], ["darker"]),
        helper.make_node("Mul", ["darker", "gain"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["mask"]),
    ]
    constants = [
        helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [1]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        helper.make_tensor("half", TensorProto.FLOAT, [], [0.5]),
        helper.make_tensor("gain", TensorProto.FLOAT, [], [40.0]),
    ]
    graph = helper.make_graph(nodes, "brightness", [pixels], [mask], constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("size", [None, 256])
def test_a_local_onnx_model_cuts_out_the_product(tmp_path: Path, size: int | None) -> None:
    photo = product_photo(1, 640, 480)  # a blue box on grey: its red channel is low
    model = SaliencyModel(_brightness_model(tmp_path / "tiny.onnx", size), "unit")
    cut = cut_out(_rgb(photo.jpeg), model, "model")
    assert cut.alpha.shape == photo.truth.shape
    assert iou(cut.alpha, photo.truth) >= 0.9


def test_a_missing_broken_or_altered_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SegmentationError, match="no segmentation model"):
        SaliencyModel(tmp_path / "absent.onnx")
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    with pytest.raises(SegmentationError, match="cannot load"):
        SaliencyModel(tmp_path / "broken.onnx")
    altered = tmp_path / "u2netp.onnx"
    altered.write_bytes(b"x" + (tmp_path / "broken.onnx").read_bytes())
    with pytest.raises(SegmentationError, match="SHA-256"):
        SaliencyModel(altered, sha256=BUILTIN_MODEL_SHA256)
    with pytest.raises(SegmentationError, match="preprocessing"):
        SaliencyModel(_brightness_model(tmp_path / "tiny.onnx", 64), "rgb")


@pytest.mark.parametrize("seed", range(4))
def test_the_default_cut_out_recovers_generated_products(seed: int) -> None:
    photo = product_photo(seed, 800, 800)
    cut = cut_out(_rgb(photo.jpeg))
    assert iou(cut.alpha, photo.truth) >= 0.95 and boundary_f(cut.alpha, photo.truth) >= 0.9
    assert cut.alpha[photo.truth == 0].mean() < 8  # the cast shadow stays backdrop
    assert cut.confidence >= 0.8 and cut.concerns == ()


@pytest.mark.parametrize("grey", [140, 190, 225])
def test_light_and_grey_products_on_white_are_kept_whole(grey: int) -> None:
    """Issue 26, item 1: a light product on white is not erased as if it were shadow."""
    photo = product_photo(10, 600, 600, "white", "box", (grey, grey, grey))
    cut = cut_out(_rgb(photo.jpeg))
    assert iou(cut.alpha, photo.truth) >= 0.95, cut.method


def test_every_piece_of_a_set_is_kept() -> None:
    """Issue 26, item 2: a pair is two pieces, and both are published."""
    photo = product_photo(3, 900, 600, pieces=2)
    cut = cut_out(_rgb(photo.jpeg))
    assert cut.pieces == 2 and iou(cut.alpha, photo.truth) >= 0.95
    backdrop_only = remove_backdrop(_rgb(photo.jpeg))
    assert iou(backdrop_only, photo.truth) >= 0.95


def test_a_busy_background_makes_a_doubtful_cut_out() -> None:
    """Issue 26, item 3: a product in front of clutter is not called certain."""
    photo = product_photo(2, 640, 640)
    rng = np.random.default_rng(7)
    clutter = np.kron(rng.integers(0, 255, (16, 16, 3)), np.ones((40, 40, 1))).astype(np.uint8)
    rgb = np.where(photo.truth[..., None] >= 128, _rgb(photo.jpeg), clutter)
    cut = cut_out(rgb)
    codes = {concern.code for concern in cut.concerns}
    assert "BUSY_BACKGROUND" in codes and cut.method.startswith("model")
    assert cut.confidence < 0.8, (cut.confidence, codes)


def test_a_product_cut_by_the_frame_is_flagged() -> None:
    """Issue 26, item 4: the frame cutting the product off is told, with the side."""
    photo = product_photo(4, 800, 800)
    left, _, _, _ = bounding_box(photo.truth)
    rgb = _rgb(photo.jpeg)[:, left + 60 :]
    cut = cut_out(rgb)
    assert "left" in cut.cropped_sides
    assert "CROPPED" in {concern.code for concern in cut.concerns}


def test_the_built_in_model_ships_with_the_package_and_is_checked() -> None:
    model = builtin_model()
    assert model.name == "u2netp" and builtin_model() is model
    photo = product_photo(5, 480, 480)
    views = model.views(_rgb(photo.jpeg))
    assert len(views) == 3 and all(view.shape == (480, 480) for view in views)
    assert iou((np.mean(views, axis=0) * 255).astype(np.uint8), photo.truth) >= 0.9


def test_boundary_f_measures_edges_within_a_tolerance() -> None:
    truth = np.zeros((100, 100), dtype=np.uint8)
    truth[20:80, 20:80] = 255
    shifted = np.roll(truth, 2, axis=1)
    far = np.roll(truth, 10, axis=1)
    assert boundary_f(truth, truth) == 1.0
    assert boundary_f(shifted, truth) == 1.0 and boundary_f(far, truth) < 0.6
    assert boundary_f(np.zeros_like(truth), truth) == 0.0


# ---- compositing --------------------------------------------------------------------------


def test_canvas_sizes_of_every_aspect() -> None:
    assert canvas_size("1:1", 2048) == (2048, 2048)
    assert canvas_size("4:5", 2048) == (1638, 2048)
    assert canvas_size("3:4", 2048) == (1536, 2048)
    assert canvas_size("16:9", 2048) == (2048, 1152)


def test_amazon_main_is_pure_white_with_the_product_filling_85_percent() -> None:
    photo = product_photo(4, 800, 800)
    rgb = _rgb(photo.jpeg)
    alpha = remove_backdrop(rgb)
    white = draw_background(Background("solid", ((255, 255, 255),)), 2000, 2000)
    pixels, (x, y, width, height) = compose(rgb, alpha, white, Placement(fill=0.9))
    assert max(width, height) >= 0.85 * 2000
    assert abs((x + width / 2) - 1000) <= 1 and abs((y + height / 2) - 1000) <= 1
    corners = [pixels[:40, :40], pixels[:40, -40:], pixels[-40:, :40], pixels[-40:, -40:]]
    assert all((corner == 255).all() for corner in corners)
    assert bounding_box(np.where((pixels < 250).any(axis=2), 255, 0))[2] >= 0.85 * 2000 - 2


def test_studio_theme_stands_the_product_on_the_floor_with_a_shadow() -> None:
    photo = product_photo(2, 800, 800)
    rgb = _rgb(photo.jpeg)
    alpha = remove_backdrop(rgb)
    theme = BUILTIN_THEMES["default"]
    width, height = canvas_size("4:5", 1024)
    background = draw_background(theme.background, width, height)
    shadowed, (x, y, w, h) = compose(rgb, alpha, background, theme.placement())
    plain, _ = compose(rgb, alpha, background, Placement(fill=0.8, on_floor=True))
    assert y + h == round(height * 0.86)
    below = np.s_[y + h + 2 : y + h + 10, x + w // 2 - 20 : x + w // 2 + 20]
    assert shadowed[below].mean() < plain[below].mean() - 10
    assert background[5].mean() > background[-5].mean()  # wall lighter than the floor


# ---- settings and themes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"product_publishers": "folder,ftp"}, "product_publishers"),
        ({"product_publishers": "shopify"}, "shopify_access_token"),
        ({"product_publishers": "webhook"}, "product_webhook_url"),
        ({"product_segmenter": "onnx"}, "product_onnx_model"),
        ({"product_segmenter": "magic"}, "auto, model or backdrop"),
        ({"product_onnx_preprocessing": "bgr"}, "imagenet, isnet or unit"),
        ({"product_review_below": 1.5}, "between 0 and 1"),
        ({"image_max_per_sku": 0}, "image_max_per_sku"),
    ],
)
def test_product_settings_are_checked(changes: dict[str, object], reason: str) -> None:
    with pytest.raises(SettingsError, match=reason):
        Settings(**changes)  # type: ignore[arg-type]


def test_themes_come_from_a_toml_file_and_may_run_externally(tmp_path: Path) -> None:
    themes_file = tmp_path / "themes.toml"
    themes_file.write_text(
        '[themes.summer]\nbackground = "gradient"\ncolours = ["#fdf6e3", [245, 208, 169]]\n'
        'shadow = false\naspects = ["1:1"]\npresets = ["amazon-main"]\n'
    )
    settings = Settings(product_themes_file=str(themes_file), product_external_themes="summer")
    themes = load_themes(settings)
    summer = themes["summer"]
    assert summer.background == Background("gradient", ((253, 246, 227), (245, 208, 169)))
    assert (summer.aspects, summer.presets, summer.external) == (("1:1",), ("amazon-main",), True)
    assert not themes["default"].external
    with pytest.raises(SettingsError, match="unknown themes"):
        load_themes(Settings(product_external_themes="winter"))
    themes_file.write_text('[themes.bad]\nbackground = "solid"\naspects = ["2:1"]\n')
    with pytest.raises(SettingsError, match="unknown aspects"):
        load_themes(Settings(product_themes_file=str(themes_file)))


def test_a_theme_sets_a_presets_fill_within_the_marketplaces_rule(tmp_path: Path) -> None:
    """Issue 26, item 6: Amazon's fill is the theme's to choose, down to Amazon's 85 %."""
    themes_file = tmp_path / "themes.toml"
    themes_file.write_text(
        '[themes.tight]\nbackground = "solid"\nfill = 0.7\n'
        "preset_fill = { amazon-main = 0.87, shopify = 0.6 }\n"
    )
    tight = load_themes(Settings(product_themes_file=str(themes_file)))["tight"]
    assert tight.placement().fill == 0.7
    assert tight.placement("amazon-main").fill == 0.87
    assert tight.placement("shopify").fill == 0.6
    assert BUILTIN_THEMES["white"].placement("amazon-main").fill == 0.9
    for wrong, reason in [
        ("{ amazon-main = 0.8 }", "between 0.85 and 1"),
        ("{ etsy = 0.8 }", "unknown preset"),
        ("0.8", "table"),
    ]:
        themes_file.write_text(f'[themes.bad]\nbackground = "solid"\npreset_fill = {wrong}\n')
        with pytest.raises(SettingsError, match=reason):
            load_themes(Settings(product_themes_file=str(themes_file)))


@pytest.mark.parametrize("command", ["worker", "serve"])
def test_a_bad_themes_file_or_a_missing_model_stops_a_process_with_one_line(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    themes_file = tmp_path / "themes.toml"
    themes_file.write_text(
        '[themes.loose]\nbackground = "solid"\npresets = ["amazon-main"]\n'
        "preset_fill = { amazon-main = 0.5 }\n"
    )
    monkeypatch.setenv("ENLARGER_PRODUCT_THEMES_FILE", str(themes_file))
    code, out = invoke(command, "--data-dir", str(tmp_path / "data"))
    out = " ".join(out.split())  # as the terminal's width wrapped it
    assert code == 2 and "between 0.85 and 1" in out and "Traceback" not in out
    assert not (tmp_path / "data").exists()  # stopped before migrating anything
    themes_file.write_text(
        '[themes.plain]\nbackground = "solid"\npresets = ["shopify"]\n'
        "preset_fill = { amazon-main = 0.9 }\n"
    )
    code, out = invoke(command, "--data-dir", str(tmp_path / "data"))
    assert code == 2 and "does not render" in " ".join(out.split())
    monkeypatch.delenv("ENLARGER_PRODUCT_THEMES_FILE")
    monkeypatch.setenv("ENLARGER_PRODUCT_ONNX_MODEL", str(tmp_path / "absent.onnx"))
    code, out = invoke(command, "--data-dir", str(tmp_path / "data"))
    out = "".join(out.split())
    assert code == 2 and "nomodelfile" in out and "absent.onnx" in out


def test_backdrop_removal_alone_is_not_trusted_on_a_busy_photo() -> None:
    """A reviewer's re-run with backdrop removal comes back doubtful when it should."""
    photo = product_photo(2, 640, 640)
    rng = np.random.default_rng(7)
    clutter = np.kron(rng.integers(0, 255, (16, 16, 3)), np.ones((40, 40, 1))).astype(np.uint8)
    rgb = np.where(photo.truth[..., None] >= 128, _rgb(photo.jpeg), clutter)
    cut = cut_out(rgb, method="backdrop")
    assert cut.method == "backdrop" and cut.confidence <= 0.5
    shadowed = cut_out(_rgb(product_photo(0, 600, 600).jpeg), method="backdrop")
    assert "SHADOWS" in {concern.code for concern in shadowed.concerns}
    assert shadowed.confidence < 0.8
