"""The dashboard in a real browser (Debian's chromium driven by Playwright) against a
real server and worker: uploads reaching STORED live, keep/commit/restore, a failed
job's reason and its retry, product jobs, sign-in, and every page usable on a phone and
by keyboard. Screenshots of each page go to `test-artifacts/screenshots/`."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import thumbhash
from playwright.sync_api import (
    Browser,
    Page,
    Route,
    expect,
)

from enlarger.access import tokens
from enlarger.access.tokens import Role
from enlarger.catalog import product_jobs as products
from enlarger.catalog.catalog import Catalog
from enlarger.catalog.states import ProductError, ProductStatus
from enlarger.library import processing
from enlarger.library.library import Library
from enlarger.queue import Worker
from tests.browsers import backend, shoot  # noqa: F401 (backend: SQLite suffices)
from tests.conftest import wait_for
from tests.images import jpeg, photo
from tests.photos import arriving, processed, upload

PAGES = ["/", "/projects", "/projects/shoot", "/jobs", "/products"]


def _drop(page: Page, target: str, path: Path) -> None:
    """Drop a file on `target` as a user's drag from the desktop would (a DataTransfer)."""
    page.evaluate(
        """([target, name, data]) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: "image/jpeg" }));
            const zone = document.querySelector(target);
            const init = { dataTransfer: transfer, bubbles: true, cancelable: true };
            zone.dispatchEvent(new DragEvent("dragover", init));
            zone.dispatchEvent(new DragEvent("drop", init));
        }""",
        [target, path.name, base64.b64encode(path.read_bytes()).decode()],
    )


def test_uploads_through_the_page_reach_stored_without_a_reload(
    page: Page, client: httpx.Client, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    page.goto("/")
    expect(page.locator("#live")).to_have_text("live")
    page.evaluate("window.notReloaded = true")
    page.set_input_files("#files", str(jpeg(tmp_path / "first.jpg", 1200, 800)))
    _drop(page, "#dropzone", jpeg(tmp_path / "second.jpg", 700, 1000))

    rows = page.locator("#uploads li")
    expect(rows).to_have_count(2)
    for name in ("first.jpg", "second.jpg"):
        row = page.locator(f'#uploads li[data-name="{name}"]')
        expect(row.locator(".badge")).to_have_text("INGESTED")
        assert row.locator("progress").evaluate("bar => bar.value") == 100
    expect(page.locator("#grid li")).to_have_count(2)

    run_worker()
    expect(page.locator('#grid li[data-status="STORED"]')).to_have_count(2, timeout=60_000)
    expect(page.locator("#uploads .badge", has_text="STORED")).to_have_count(2)
    assert page.evaluate("window.notReloaded") is True
    page.wait_for_function(
        "[...document.querySelectorAll('#grid img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    placeholders = page.locator("#grid .thumb").evaluate_all(
        "buttons => buttons.map(b => b.style.backgroundImage)"
    )
    assert all(p.startswith('url("data:image/png') for p in placeholders), placeholders

    image = client.get("/api/images").json()["data"][0]
    decoded = page.evaluate(
        """data => {
            const hash = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const out = enlarger.thumbhashToRGBA(hash);
            return [out.w, out.h, Array.from(out.rgba)];
        }""",
        image["thumbhash"],
    )
    width, height, rgba = thumbhash.thumb_hash_to_rgba(base64.b64decode(image["thumbhash"]))
    assert decoded[:2] == [width, height]
    assert max(abs(a - b) for a, b in zip(decoded[2], rgba, strict=True)) <= 1

    shown = page.locator("#grid .caption .title").all_inner_texts()
    assert sorted(shown) == ["first", "second"]
    page.locator("#grid .thumb").first.focus()
    page.keyboard.press("Enter")
    viewer = page.locator("#viewer")
    expect(viewer).to_be_visible()
    expect(page.locator("#viewer-title")).to_have_text(shown[0])
    page.wait_for_function("document.getElementById('viewer-img').naturalWidth > 0")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#viewer-title")).to_have_text(shown[1])
    shoot(page, "gallery-viewer")
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    shoot(page, "gallery")


def test_a_burst_of_images_all_show_stored(
    page: Page, client: httpx.Client, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    """A bulk import's flood of events: the gallery keeps up (it reloads its page
    rather than asking for each image) and misses none."""
    page.goto("/")
    expect(page.locator("#live")).to_have_text("live")
    for n in range(16):
        photo = jpeg(tmp_path / f"burst-{n}.jpg", 320 + n, 240)
        assert client.post(
            "/api/upload", files={"file": (photo.name, photo.read_bytes())}
        ).is_success
    run_worker()
    expect(page.locator('#grid li[data-status="STORED"]')).to_have_count(16, timeout=90_000)
    expect(page.locator("#image-count")).to_have_text("(16)")


def test_images_on_a_page_not_loaded_are_counted_right(
    page: Page, client: httpx.Client, library: Library, tmp_path: Path
) -> None:
    """More images than one page: an older image's event (its original stored, as a
    burst's are while the newest already fill the page) adds no card and no count; a
    new upload still arrives at the top, counted once; an older image deleted is
    counted out."""
    ids = []
    for n in range(50):  # the page shows 48
        made = jpeg(tmp_path / f"old-{n}.jpg", 200 + n, 150)
        answer = client.post("/api/upload", files={"file": (made.name, made.read_bytes())})
        ids.append(answer.json()["imageId"])
    page.goto("/")
    expect(page.locator("#live")).to_have_text("live")
    expect(page.locator("#image-count")).to_have_text("(50)")
    expect(page.locator("#grid li")).to_have_count(48)

    oldest = ids[0]
    with page.expect_response(lambda r: r.url.endswith(f"/api/images/{oldest}")):
        processing.offload_original(library, oldest)  # as its job does: PROCESSING
    newest = jpeg(tmp_path / "new.jpg", 900, 600)
    assert client.post("/api/upload", files={"file": (newest.name, newest.read_bytes())}).is_success
    expect(page.locator("#grid .caption .title").first).to_have_text("new")
    expect(page.locator("#image-count")).to_have_text("(51)")
    expect(page.locator("#grid li")).to_have_count(49)
    assert page.locator(f'#grid li[data-id="{oldest}"]').count() == 0

    assert client.delete(f"/api/images/{ids[1]}").is_success  # not shown either
    expect(page.locator("#image-count")).to_have_text("(50)")
    expect(page.locator("#grid li")).to_have_count(49)


def test_a_failed_jobs_reason_is_shown_and_it_can_be_retried(
    page: Page, library: Library, run_worker: Callable[[], Worker], client: httpx.Client
) -> None:
    job_id = library.queue.enqueue("mystery_type", {"what": "nobody handles this"}).id
    run_worker()
    wait_for(lambda: client.get(f"/api/admin/jobs/{job_id}").json()["status"] == "FAILED")

    page.goto("/jobs")
    failure = page.locator(f'#failed li[data-job-id="{job_id}"]')
    expect(failure.locator(".reason")).to_contain_text("UNKNOWN_JOB_TYPE")
    expect(failure.locator(".reason")).to_contain_text("mystery_type")
    shoot(page, "jobs")
    failure.get_by_role("button", name=f"Retry job {job_id}").click()
    wait_for(
        lambda: (
            [
                e.kind for e in library.queue.store.read_events(0, 10_000) if e.job_id == job_id
            ].count("retry")
            == 1
        )
    )
    expect(page.locator(f'#failed li[data-job-id="{job_id}"]')).to_have_count(1)  # failed again

    waiting = library.queue.enqueue("OFFLOAD_ORIGINAL", {"imageId": "later"}, delay_s=3600).id
    pending = page.locator(f'#pending li[data-job-id="{waiting}"]')
    pending.get_by_role("button", name=f"Cancel job {waiting}").click()
    expect(pending).to_have_count(0)
    assert client.get(f"/api/admin/jobs/{waiting}").json()["status"] == "CANCELLED"

    row = page.locator('#type-rows tr[data-type="OFFLOAD_ORIGINAL"]')
    row.get_by_role("button", name="Pause OFFLOAD_ORIGINAL").click()
    expect(row.locator(".badge")).to_have_text("paused")
    assert library.queue.store.paused_types() == ["OFFLOAD_ORIGINAL"]
    row.get_by_role("button", name="Resume OFFLOAD_ORIGINAL").click()
    expect(row.locator(".badge")).to_have_count(0)
    assert library.queue.store.paused_types() == []
    expect(page.locator("#throughput")).to_have_text(re.compile(r"^\d+ jobs$"))


def test_product_jobs_show_their_stage_live(page: Page, catalog: Catalog) -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    created = products.create_job(catalog, "SKU-9", "https://example.com/9.jpg", digest, "default")
    page.goto("/products")
    job = page.locator(f'#product-jobs li[data-job-id="{created.job_id}"]')
    expect(job).to_have_attribute("data-status", "QUEUED")
    expect(job.locator(".stages li.current")).to_have_text("QUEUED")
    expect(page.locator("#total")).to_have_text("1")

    products.fail(catalog, created.job_id, ProductError.DOWNLOAD_FAILED, "the host said 404")
    expect(job).to_have_attribute("data-status", "FAILED")
    expect(job.locator(".stages li.failed")).to_have_text("FAILED: DOWNLOAD_FAILED")
    job.get_by_role("button", name="Details").click()
    expect(page.locator(f"#details-{created.job_id}")).to_contain_text("the host said 404")
    expect(page.locator("#failure-rate")).to_have_text("100.0 %")
    shoot(page, "products")


def _held_for_review(catalog: Catalog, sku: str) -> str:
    """A product job brought to NEEDS_REVIEW by hand (no worker runs here)."""
    digest = hashlib.sha256(sku.encode()).hexdigest()
    job_id = products.create_job(
        catalog, sku, "https://example.com/p.jpg", digest, "default"
    ).job_id
    prefix = products.artifact_prefix({"sku": sku, "id": job_id})
    steps = [
        (
            ProductStatus.QUEUED,
            ProductStatus.SEGMENTING,
            {"original_key": f"{prefix}original.jpeg"},
        ),
        (ProductStatus.SEGMENTING, ProductStatus.BG_GENERATING, {"mask_key": f"{prefix}mask.png"}),
        (ProductStatus.BG_GENERATING, ProductStatus.COMPOSITING, {"bg_keys": [f"{prefix}bg.jpg"]}),
        (
            ProductStatus.COMPOSITING,
            ProductStatus.NEEDS_REVIEW,
            {
                "cutout_key": f"{prefix}cutout.png",
                "composite_keys": [f"{prefix}composite-1x1.jpg"],
                "thumb_keys": [f"{prefix}thumb-1x1.jpg"],
                "confidence": 0.42,
                "cutout_method": "model",
                "concerns": [{"code": "VIEWS_DISAGREE", "message": "the views agree only 61%"}],
            },
        ),
    ]
    picture = photo(320, 240).jpegsave_buffer(Q=80)
    for name in ("original.jpeg", "cutout.png", "composite-1x1.jpg", "thumb-1x1.jpg"):
        catalog.blobs.put_bytes(f"{prefix}{name}", picture)  # browsers sniff, not trust, types
    for expected, new, updates in steps:
        products.advance(catalog, job_id, expected, new, updates)
    return job_id


def test_a_held_cut_out_is_accepted_rejected_or_cut_out_again_from_the_page(
    page: Page, catalog: Catalog
) -> None:
    accept, reject, again = (_held_for_review(catalog, sku) for sku in ("CAP-1", "CAP-2", "CAP-3"))
    page.goto("/products")
    review = page.locator("#review")
    expect(review).to_be_visible()
    expect(page.locator("#review-count")).to_have_text("3")
    held = page.locator(f'#review-jobs li[data-job-id="{accept}"]')
    expect(held).to_contain_text("confidence 42 %")
    expect(held.locator('.concerns li[data-code="VIEWS_DISAGREE"]')).to_contain_text("61%")
    expect(
        page.locator(f'#product-jobs li[data-job-id="{accept}"] .stages li.current')
    ).to_have_text("NEEDS_REVIEW")
    shoot(page, "products-review")
    held.get_by_role("button", name="Accept and publish").click()
    expect(held).to_have_count(0)
    expect(page.locator("#review-count")).to_have_text("2")
    assert products.get_job(catalog, accept)["status"] == "PUBLISHING"

    doubtful = page.locator(f'#review-jobs li[data-job-id="{reject}"]')
    doubtful.get_by_label("Why reject CAP-2").fill("a strap is missing")
    doubtful.get_by_role("button", name="Reject").click()
    expect(doubtful).to_have_count(0)
    rejected = products.get_job(catalog, reject)
    assert (rejected["status"], rejected["error_code"]) == ("FAILED", "REJECTED")
    assert "a strap is missing" in rejected["error_message"]

    other = page.locator(f'#review-jobs li[data-job-id="{again}"]')
    other.get_by_label("Method to cut CAP-3 out again").select_option("backdrop")
    other.get_by_role("button", name="Cut out again").click()
    expect(review).to_be_hidden()
    rerun = products.get_job(catalog, again)
    assert (rerun["status"], rerun["requested_method"]) == ("SEGMENTING", "backdrop")
    expect(page.locator("#cutout-failure-rate")).to_have_text("100.0 %")


def test_signing_in_with_a_token_opens_the_dashboard(
    page: Page, library: Library, live_server: str
) -> None:
    _, token = tokens.create(library.engine, Role.VIEWER, "browser")
    page.goto("/jobs")
    expect(page).to_have_url(f"{live_server}/login?next=/jobs")
    page.get_by_label("API token").fill("enl_not-a-real-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("That token is unknown or revoked.")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{live_server}/jobs")
    expect(page.locator("#live")).to_have_text("live")  # the event stream took the cookie
    expect(page.locator("#type-rows tr").first).to_be_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "enlarger_token")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{live_server}/login")


UNNAMED_CONTROLS = """() => [
    ...document.querySelectorAll('a[href], button, input:not([type=hidden]), select')
].filter((node) => {
        const labelled = node.labels && [...node.labels].some((l) => l.textContent.trim());
        const named = node.getAttribute('aria-label') || node.textContent.trim() || node.title;
        return !(labelled || named);
    })
    .map((node) => node.outerHTML.slice(0, 120))"""


def test_every_page_fits_a_phone_and_names_its_controls(
    browser: Browser, live_server: str, client: httpx.Client, tmp_path: Path
) -> None:
    client.post("/api/projects", json={"folder": "shoot"})
    upload(client, "shoot", jpeg(tmp_path / "P.jpg", 400, 300))
    client.post("/api/upload", files={"file": ("g.jpg", jpeg(tmp_path / "g.jpg").read_bytes())})
    context = browser.new_context(
        base_url=live_server, viewport={"width": 390, "height": 844}, is_mobile=True
    )
    page = context.new_page()
    try:
        for path in PAGES:
            page.goto(path)
            expect(page.locator("#live")).to_have_text("live")
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, (path, overflow)
            assert page.evaluate(UNNAMED_CONTROLS) == [], path
            if path == "/projects/shoot":  # culling starts at once: the sheet has the keys,
                assert page.evaluate("document.activeElement.id") == "photos"
                first = "document.querySelector('body > *')"  # and one link leads back to it
                assert page.evaluate(f"{first}.matches('a.skip[href=\"#photos\"]')")
            else:
                page.keyboard.press("Tab")
                assert page.evaluate("document.activeElement.className") == "skip", path
            name = "gallery" if path == "/" else path.strip("/").replace("/", "-")
            shoot(page, f"phone-{name}")
    finally:
        context.close()


def test_signing_in_never_redirects_to_another_site(client: httpx.Client, library: Library) -> None:
    _, token = tokens.create(library.engine, Role.VIEWER, "browser")
    for target, expected in [
        ("/jobs?x=1", "/jobs?x=1"),
        ("//evil.example/", "/"),
        ("/\\evil.example/", "/"),
        ("https://evil.example/", "/"),
    ]:
        answer = client.post("/login", data={"token": token, "next": target})
        assert answer.status_code == 303 and answer.headers["location"] == expected, target


def test_api_docs_render_offline(page: Page, live_server: str) -> None:
    """Swagger UI's files come from this server: with every other host unreachable the
    docs still show every operation."""
    elsewhere: list[str] = []

    def only_here(route: Route) -> None:
        if route.request.url.startswith(live_server):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.context.route("**/*", only_here)
    page.goto("/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("OAS 3.1")
    expect(page.locator(".opblock-summary-path", has_text="/api/upload").first).to_be_visible()
    assert elsewhere == []


def test_the_new_project_pattern_is_enforced(page: Page) -> None:
    """A pattern current Chrome cannot compile (it reads `pattern` with the `v` flag) is
    ignored, with a console error; this one is checked."""
    page.goto("/projects")
    folder = page.locator("#new-folder")
    folder.fill("Bad Name!")
    assert folder.evaluate("input => input.validity.patternMismatch") is True
    folder.fill("wedding-2026")
    assert folder.evaluate("input => input.validity.valid") is True


def test_an_unknown_page_is_a_page_not_json(page: Page) -> None:
    for path, says in (("/no-such-page", "/no-such-page"), ("/projects/nowhere", "nowhere")):
        response = page.goto(path)
        assert response is not None and response.status == 404
        expect(page.locator("main h1")).to_have_text("Not found")
        expect(page.locator("main")).to_contain_text(says)
        expect(page.locator("nav a", has_text="Projects")).to_be_visible()


@pytest.mark.parametrize("library_changes", [{"url_expiry_seconds": 4}])
def test_an_open_page_renews_its_signed_urls_before_they_expire(
    page: Page, client: httpx.Client, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    """A tab left open keeps working thumbnails: each page asks for fresh URLs shortly
    before the first of its URLs expires (here after 4 s, not the default hour)."""
    client.post("/api/projects", json={"folder": "shoot", "title": "Shoot"})
    upload(client, "shoot", jpeg(tmp_path / "A.jpg", 800, 600))
    run_worker()
    wait_for(lambda: processed(client, "shoot", "A"), 60)

    for path, thumbnail, links in (
        ("/", "#grid li img", None),
        ("/projects/shoot", "#photos .card img", "#loupe-panes img"),
    ):
        page.goto(path)
        image = page.locator(thumbnail).first
        expect(image).to_have_class(re.compile("loaded"))
        first = image.get_attribute("src")
        page.wait_for_timeout(6_000)  # past the first URLs' expiry
        assert client.get(first).status_code == 403  # which the server now refuses
        renewed = page.locator(thumbnail).first.get_attribute("src")
        assert renewed and renewed != first
        assert client.get(renewed).status_code == 200
        if links:  # the loupe shows the preview by its renewed URL
            page.locator("#photos .card").first.dblclick()
            assert client.get(page.locator(links).first.get_attribute("src")).status_code == 200
            page.keyboard.press("Escape")
    s3_url = (
        "http://s3.test/b/k.jpg?X-Amz-Date=20261203T010000Z&X-Amz-Expires=3600&X-Amz-Signature=0"
    )
    expiry = page.evaluate(f"enlarger.urlExpiry({s3_url!r})")
    assert expiry == datetime(2026, 12, 3, 2, 0, tzinfo=UTC).timestamp() * 1000


def test_a_failed_upload_can_be_removed_and_any_image_deleted_from_the_viewer(
    page: Page, client: httpx.Client, tmp_path: Path
) -> None:
    failed = client.post("/api/upload", files={"file": ("notes.txt", b"not an image")})
    assert failed.status_code == 422
    kept = client.post(
        "/api/upload", files={"file": ("a.jpg", jpeg(tmp_path / "a.jpg").read_bytes())}
    )
    page.goto("/")
    expect(page.locator("#grid li")).to_have_count(2)
    card = page.locator('#grid li[data-status="FAILED"]')
    card.get_by_role("button", name="Remove notes").click()
    expect(page.locator("#confirm")).to_contain_text("UNSUPPORTED_FORMAT")
    page.locator("#confirm-ok").click()
    expect(page.locator("#grid li")).to_have_count(1)
    expect(page.locator("#image-count")).to_have_text("(1)")

    page.locator("#grid li .thumb").first.click()
    expect(page.locator("#viewer")).to_be_visible()
    page.get_by_role("button", name="Delete…").click()
    page.locator("#confirm-ok").click()
    expect(page.locator("#viewer")).to_be_hidden()
    expect(page.locator("#grid li")).to_have_count(0)
    assert client.get(f"/api/images/{kept.json()['imageId']}").status_code == 404
    assert client.get("/api/images").json()["count"] == 0


@pytest.mark.parametrize("library_changes", [{"settle_seconds": 600, "settle_look_seconds": 0.5}])
def test_the_project_page_says_which_files_are_still_being_copied_in(
    page: Page,
    client: httpx.Client,
    library: Library,
    run_worker: Callable[[], Worker],
    tmp_path: Path,
) -> None:
    client.post("/api/projects", json={"folder": "card"})
    run_worker()
    whole = jpeg(tmp_path / "IMG_2.JPG", 1600, 1200).read_bytes()
    with arriving(library, "projects/card/IMG_2.JPG", whole):
        wait_for(lambda: library.blobs.info("projects/card/IMG_2.JPG") is not None)
        queued = client.post("/api/projects/card/jobs", json={"type": "folder_check"})
        wait_for(lambda: client.get("/api/projects/card").json()["settling"], timeout=30)
        page.goto("/projects/card")
        expect(page.locator("#settling")).to_contain_text("1 file(s) still being copied")
        expect(page.locator("#settling")).to_contain_text("IMG_2.JPG")
        shoot(page, "project-files-settling")
    assert queued.status_code == 202
    expect(page.locator("#settling")).to_be_hidden(timeout=30_000)
    expect(page.locator('#photos .card[data-key="IMG_2"]')).to_be_visible(timeout=30_000)
