"""Culling in the dashboard, in a real browser (Debian's chromium) against a real server:
a project of 5,000 photos culled by keyboard, compare and the loupe, undo, commit with
the sidecars only or with the trash, the trash with thumbnails and selection, sorting
across cameras, and live updates that redraw only the cards that changed."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Request, expect

from bench.big_project import seed
from enlarger.library.library import Library
from enlarger.queue import Worker
from tests.browsers import backend, shoot  # noqa: F401 (backend: SQLite suffices)
from tests.conftest import wait_for
from tests.images import Shot, camera_jpeg, dng, jpeg
from tests.photos import photo_of, processed, upload

CULLING_KEYS = {
    "p": {"flag": "pick"},
    "x": {"flag": "reject"},
    "4": {"rating": 4},
    "8": {"label": "green"},
}
DOM_NODES = "document.getElementsByTagName('*').length"
# What the loupe's image showed each time its title changed: nothing, or that photo.
TITLE_CHANGES = """() => {
  window.titleChanges = [];
  const img = () => document.querySelector('#loupe-panes img');
  new MutationObserver(() => window.titleChanges.push({
    title: document.getElementById('loupe-title').textContent,
    visible: img().style.visibility !== 'hidden',
    shown: img().dataset.shown || null,
  })).observe(document.getElementById('loupe-title'),
               { childList: true, characterData: true, subtree: true });
}"""
CONTACT_SHEET = """() => {
  const sheet = document.getElementById('photos').getBoundingClientRect();
  const cards = [...document.querySelectorAll('#photos .card:not([hidden])')]
    .map((c) => c.getBoundingClientRect())
    .filter((r) => r.top >= sheet.top && (r.top + r.bottom) / 2 <= sheet.bottom);  // mostly in view
  const tops = new Set(cards.map((r) => Math.round(r.top)));
  const inRow = (top) => cards.filter((r) => Math.round(r.top) === top).length;
  const columns = Math.max(...[...tops].map(inRow));
  return {
    inView: cards.length,
    tops: tops.size,
    rows: Math.ceil(cards.length / columns),
    heights: new Set(cards.map((r) => Math.round(r.height))).size,
    controls: document.querySelectorAll('#photos input, #photos button').length,
  };
}"""


def _photos(client: httpx.Client, folder: str, names: list[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(names), 200):
        params = [("basename", n) for n in names[start : start + 200]]
        for photo in client.get(f"/api/projects/{folder}/photos", params=params).json()["photos"]:
            found[photo["basename"]] = photo
    return found


def _shown(page: Page) -> list[str]:
    """The base names of the cards in view, in their order on the sheet."""
    return page.evaluate(
        """() => [...document.querySelectorAll('#photos .card:not([hidden])')]
            .map((c) => [Number(c.getAttribute('aria-posinset')), c.dataset.key])
            .sort((a, b) => a[0] - b[0]).map(([, key]) => key)"""
    )


@pytest.mark.heavy
def test_a_5000_photo_project_is_culled_by_keyboard(
    page: Page, client: httpx.Client, library: Library
) -> None:
    """A wedding's worth of photos: the sheet draws only what is in view (its DOM does not
    grow with the project), every decision made by keyboard reaches the server, the focus
    stays on the sheet after deciding on the last photo, and the exposure filter works."""
    names = seed(library, "wedding", 5000)
    page.goto("/projects/wedding")
    expect(page.locator("#photo-count")).to_have_text("(5000)", timeout=30_000)
    assert page.evaluate("document.activeElement.id") == "photos"  # keys work at once
    nodes = page.evaluate(DOM_NODES)
    assert nodes < 1500, nodes
    sheet = page.evaluate(CONTACT_SHEET)
    assert sheet["inView"] >= 30, sheet  # a contact sheet: dozens a screen, not seven
    assert sheet["tops"] == sheet["rows"] and sheet["heights"] == 1, sheet  # even rows
    assert sheet["controls"] == 0, sheet  # no checkboxes on cards: details on demand
    keys = list(CULLING_KEYS)
    started = time.monotonic()
    for n in range(240):
        page.keyboard.press(keys[n % 4])
    expected = {name: CULLING_KEYS[keys[n % 4]] for n, name in enumerate(names[:240])}

    def recorded() -> bool:
        photos = _photos(client, "wedding", list(expected))
        return all(
            photos[name][field] == value
            for name, change in expected.items()
            for field, value in change.items()
        )

    wait_for(recorded, timeout=180, interval=0.3)  # 240 requests: over 60 s on a busy machine
    rate = 240 / (time.monotonic() - started)
    print(f"keyboard culling at 5,000 photos: {rate:.1f} decisions per second")
    expect(page.locator("#photos .card.current")).to_have_attribute("data-key", names[240])
    assert page.evaluate(DOM_NODES) < 1500

    page.keyboard.press("End")
    expect(page.locator("#photos .card.current")).to_have_attribute("data-key", names[-1])
    page.keyboard.press("p")  # the last photo: no next one to go to
    page.keyboard.press("3")
    assert page.evaluate("document.activeElement.id") == "photos"
    wait_for(lambda: _photos(client, "wedding", [names[-1]])[names[-1]]["rating"] == 3)
    assert _photos(client, "wedding", [names[-1]])[names[-1]]["flag"] == "pick"
    assert page.evaluate(DOM_NODES) < 1500

    page.select_option("#filter-exposure", "dark")  # the seed makes every 97th frame dark
    expect(page.locator("#photo-count")).to_have_text(f"({5000 // 97} of 5000 shown)")
    first_dark = page.locator("#photos .card:not([hidden])").first
    badge = first_dark.locator(".badge.exposure")
    expect(badge).to_have_text("dark")  # each card says so
    expect(badge).to_have_attribute("title", re.compile(r"^\d\.\d stops under$"))
    shoot(page, "project-5000-dark")


def test_compare_decides_only_the_active_photo_and_undo_takes_a_decision_back(
    page: Page, client: httpx.Client, library: Library
) -> None:
    names = seed(library, "pair", 8)
    for name in names[:3]:
        client.patch(f"/api/projects/pair/photos/{name}", json={"rating": 2, "label": "blue"})
    page.goto("/projects/pair")
    expect(page.locator("#photo-count")).to_have_text("(8)")
    page.keyboard.press("Shift+ArrowRight")
    expect(page.locator("#selection-count")).to_have_text("2 selected")
    page.keyboard.press("c")
    expect(page.locator("#loupe-panes figure")).to_have_count(2)
    expect(page.locator("#loupe-panes figure.active")).to_have_attribute("data-basename", names[1])
    page.keyboard.press("ArrowRight")  # the other pane
    expect(page.locator("#loupe-panes figure.active")).to_have_attribute("data-basename", names[0])
    page.keyboard.press("x")
    wait_for(lambda: _photos(client, "pair", [names[0]])[names[0]]["flag"] == "reject")
    assert _photos(client, "pair", [names[1]])[names[1]]["flag"] == "unflagged"
    page.keyboard.press("Escape")
    expect(page.locator("#loupe")).to_be_hidden()

    page.keyboard.press("Control+z")
    wait_for(lambda: _photos(client, "pair", [names[0]])[names[0]]["flag"] == "unflagged")
    assert _photos(client, "pair", [names[0]])[names[0]]["label"] == "blue"  # nothing else
    expect(page.locator("#selection-count")).to_have_text("2 selected")  # as it was

    patches: list[str] = []
    page.on("request", lambda r: patches.append(r.url) if r.method == "PATCH" else None)
    page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("Shift+ArrowRight")
    expect(page.locator("#selection-count")).to_have_text("3 selected")
    page.keyboard.press("4")  # on all three
    wait_for(lambda: all(p["rating"] == 4 for p in _photos(client, "pair", names[:3]).values()))
    page.keyboard.press("Control+z")
    wait_for(lambda: all(p["rating"] == 2 for p in _photos(client, "pair", names[:3]).values()))
    assert all(p["label"] == "blue" for p in _photos(client, "pair", names[:3]).values())
    assert len(patches) == 2  # one request for the change, one to undo it

    page.keyboard.press("Control+ArrowRight")  # out of the selection, keeping it
    page.keyboard.press("Control+ArrowRight")
    page.keyboard.press("8")  # on that photo alone; the selection stays
    wait_for(lambda: _photos(client, "pair", [names[4]])[names[4]]["label"] == "green")
    expect(page.locator("#selection-count")).to_have_text("3 selected")
    page.keyboard.press("Control+ArrowLeft")
    page.keyboard.press("u")  # it is unflagged already: nothing to undo
    page.keyboard.press("Control+z")  # takes back the green label
    wait_for(lambda: _photos(client, "pair", [names[4]])[names[4]]["label"] is None)


def test_the_loupe_zooms_where_clicked_and_keeps_the_place_from_photo_to_photo(
    page: Page, client: httpx.Client, library: Library
) -> None:
    names = seed(library, "zoom", 6)
    page.set_viewport_size({"width": 900, "height": 700})
    page.goto("/projects/zoom")
    expect(page.locator("#photo-count")).to_have_text("(6)")
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    page.keyboard.press("Enter")
    image = page.locator("#loupe-panes img")
    expect(image).to_have_attribute("data-shown", names[0])
    following = _photos(client, "zoom", names[1:3])
    wait_for(  # the next photos' previews are fetched before they are asked for
        lambda: all(any(p["previewUrl"] in url for url in fetched) for p in following.values())
    )
    expect(page.locator("#loupe-info")).to_contain_text("Canon EOS R5 · RF24-70mm F2.8 L IS USM")
    expect(page.locator("#loupe-info")).to_contain_text("50 mm · 1/250 s · f/2.8 · ISO 400")
    taken = _photos(client, "zoom", names[:1])[names[0]]["takenAt"]  # the capture time, shown
    expect(page.locator("#loupe-info")).to_contain_text(taken.replace("T", " ")[:19])
    page.keyboard.press("End")  # to the last photo, in the loupe too
    expect(image).to_have_attribute("data-shown", names[-1])
    preceding = _photos(client, "zoom", names[-3:-1])
    wait_for(  # and the previews of the ones before it are fetched ahead as well
        lambda: all(any(p["previewUrl"] in url for url in fetched) for p in preceding.values())
    )
    page.keyboard.press("Home")
    expect(image).to_have_attribute("data-shown", names[0])
    box = image.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] * 0.8, box["y"] + box["height"] * 0.3)
    page.wait_for_function(
        "() => { const i = document.querySelector('#loupe-panes img');"
        " return i.dataset.shown && i.src.includes('/projects/') && i.naturalWidth === 1600; }"
    )
    stage = page.locator("#loupe-panes .stage")
    expect(page.locator("#loupe-state")).to_contain_text("100 %")
    place = stage.evaluate("s => [s.scrollLeft, s.scrollTop]")
    assert place[0] > 300 and place[1] > 0  # near where clicked, not the centre
    page.evaluate(TITLE_CHANGES)
    page.keyboard.press("ArrowRight")
    expect(page.locator("#loupe-title")).to_have_text(names[1])
    page.wait_for_function(
        "(name) => document.querySelector('#loupe-panes img').dataset.shown === name", arg=names[1]
    )
    after = stage.evaluate("s => [s.scrollLeft, s.scrollTop]")
    assert abs(after[0] - place[0]) < 2 and abs(after[1] - place[1]) < 2
    seen = page.evaluate("window.titleChanges")  # the last photo never shows as this one
    assert seen and all(not s["visible"] or s["shown"] == s["title"] for s in seen), seen
    frame = stage.bounding_box()
    assert frame is not None
    page.mouse.move(frame["x"] + 300, frame["y"] + 200)
    page.mouse.down()
    page.mouse.move(frame["x"] + 150, frame["y"] + 120, steps=5)  # a drag pans
    page.mouse.up()
    expect(page.locator("#loupe-state")).to_contain_text("100 %")  # and does not zoom out
    panned = stage.evaluate("s => [s.scrollLeft, s.scrollTop]")
    assert panned[0] > after[0] + 100 and panned[1] > after[1] + 50  # by about the drag
    shoot(page, "project-loupe-zoomed-at-a-point")


def test_keep_toggles_commit_with_sidecars_or_the_trash_restore_and_revert(
    page: Page, client: httpx.Client, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    client.post("/api/projects", json={"folder": "shoot"})
    upload(client, "shoot", jpeg(tmp_path / "A.jpg", 800, 600), dng(tmp_path / "A.DNG", 600, 400))
    upload(client, "shoot", jpeg(tmp_path / "B.jpg", 600, 800))
    run_worker()
    wait_for(lambda: processed(client, "shoot", "A") and processed(client, "shoot", "B"), 60)

    page.goto("/projects")
    page.get_by_role("link", name="shoot").click()
    expect(page.locator("h1")).to_have_text("shoot")  # the folder, once
    expect(page.locator("#photo-count")).to_have_text("(2)")
    page.keyboard.press("i")
    keep_raw = page.get_by_label("Keep RAW")
    expect(keep_raw).to_be_checked()
    keep_raw.click()
    wait_for(lambda: photo_of(client, "shoot", "A")["keep_raw"] is False)
    expect(page.locator("#pending-changes")).to_have_text("1 file(s) marked to go to the trash")
    page.locator('#photos .card[data-key="B"]').click()
    page.keyboard.press("x")
    wait_for(lambda: photo_of(client, "shoot", "B")["flag"] == "reject")

    page.get_by_role("button", name="Commit changes…").click()
    dialog = page.locator("#commit-dialog")
    expect(dialog).to_contain_text("2 file(s) will move to the project's trash")
    expect(dialog.locator("li")).to_have_text(["A.DNG", "B.jpg"])
    assert page.evaluate("document.activeElement.id") == "commit-sidecars"
    shoot(page, "project-commit-confirmation")
    page.keyboard.press("Enter")  # the default writes the sidecars and moves nothing
    wait_for(lambda: photo_of(client, "shoot", "B")["sidecars"] == ["B.jpg.xmp", "B.xmp"])
    assert len(photo_of(client, "shoot", "A")["files"]) == 2
    expect(page.locator("#trash-count")).to_have_text("")

    page.get_by_role("button", name="Commit changes…").click()
    dialog.get_by_role("button", name="Move 2 file(s) to the trash").click()
    expect(page.locator("#trash-count")).to_have_text(" (2)")
    page.get_by_role("button", name="Trash (2)…").click()
    trash = page.locator("#trash-dialog")
    expect(trash.locator("li")).to_have_count(2)
    expect(trash.locator("li img")).to_have_count(2)  # thumbnails kept while in the trash
    shoot(page, "project-trash")
    trash.get_by_label("Select B.jpg").check()
    trash.get_by_role("button", name="Restore 1 selected").click()
    expect(trash.locator("li")).to_have_count(1)
    trash.get_by_role("button", name="Restore A.DNG").click()
    expect(page.locator("#trash-empty")).to_be_visible()
    wait_for(lambda: len(photo_of(client, "shoot", "A")["files"]) == 2)
    wait_for(lambda: photo_of(client, "shoot", "B")["flag"] == "unflagged")  # restored: kept
    trash.get_by_role("button", name="Close").click()

    page.locator('#photos .card[data-key="B"]').click()
    keep_jpg = page.get_by_label("Keep JPG")
    keep_jpg.uncheck()
    wait_for(lambda: photo_of(client, "shoot", "B")["keep_jpg"] is False)
    page.get_by_role("button", name="Revert…").click()
    expect(page.locator("#confirm")).to_contain_text("will no longer be marked for the trash")
    page.locator("#confirm").get_by_role("button", name="Revert").click()
    expect(page.get_by_label("Keep JPG")).to_be_checked()
    assert photo_of(client, "shoot", "B")["keep_jpg"] is True


def test_photos_sort_by_capture_time_across_cameras(
    page: Page, client: httpx.Client, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    client.post("/api/projects", json={"folder": "two", "title": "Two cameras"})
    start = datetime(2026, 7, 14, 10, 0, 0)
    # A_0002 and B_0002 in the same second: B's fraction of it comes first
    shots = {"A_0001": (5, "50"), "A_0002": (7, "81"), "B_0001": (2, "10"), "B_0002": (7, "27")}
    for name, (seconds, subsec) in shots.items():
        taken = (start + timedelta(seconds=seconds)).strftime("%Y:%m:%d %H:%M:%S")
        camera_jpeg(tmp_path / f"{name}.JPG", Shot(taken=taken, subsec=subsec, serial=name[0]))
    upload(client, "two", *sorted(tmp_path.glob("*.JPG")))
    run_worker()
    wait_for(lambda: all(processed(client, "two", n) for n in shots), 60)
    page.goto("/projects/two")
    expect(page.locator("h1")).to_have_text("Two cameras two")
    expect(page.locator("#photo-count")).to_have_text("(4)")
    assert _shown(page) == ["A_0001", "A_0002", "B_0001", "B_0002"]
    page.select_option("#sort", "time")
    expect(page.locator("#photos .card[aria-posinset='1']")).to_have_attribute("data-key", "B_0001")
    assert _shown(page) == ["B_0001", "A_0001", "B_0002", "A_0002"]


# Times (the page's clock) of the live events that name photos and of the page's reads of
# the whole photo list, recorded from before the page's own code runs.
LIVE_LOG = """
window.liveLog = { named: [], whole: [] };
const PageEventSource = window.EventSource;
window.EventSource = class extends PageEventSource {
  constructor(...args) {
    super(...args);
    this.addEventListener('message', (message) => {
      const event = JSON.parse(message.data);
      if (event.photo || (event.photos && event.photos.length))
        window.liveLog.named.push(performance.now());
    });
  }
};
const pageFetch = window.fetch;
window.fetch = (resource, init) => {
  const url = String(resource);
  if (url.includes('/photos') && !url.includes('basename='))
    window.liveLog.whole.push(performance.now());
  return pageFetch(resource, init);
};
"""
SETTLED_MS = 4000  # project.js: the whole list is read once this long after the last event


def test_an_import_redraws_only_the_cards_that_changed(
    page: Page,
    client: httpx.Client,
    library: Library,
    run_worker: Callable[[], Worker],
    tmp_path: Path,
) -> None:
    """Photos arriving while the page is open are fetched by name as their events come;
    the cards already in view keep their image and are not drawn again, and the whole
    list is read again only once the events have stopped for SETTLED_MS (to pick up
    bursts), never because an event came."""
    seed(library, "live", 30)
    page.add_init_script(LIVE_LOG)
    page.goto("/projects/live")
    expect(page.locator("#photo-count")).to_have_text("(30)")
    page.wait_for_function("() => document.querySelectorAll('#photos img.loaded').length >= 20")
    before = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#photos .card:not([hidden])')]
            .map((c) => [c.dataset.key, [c.dataset.fills, c.querySelector('img').src]]))"""
    )
    started = page.evaluate("() => performance.now()")
    by_name: list[str] = []

    def on_request(request: Request) -> None:
        if "/photos" in request.url and "basename=" in request.url:
            by_name.append(request.url)

    page.on("request", on_request)
    arriving = [jpeg(tmp_path / f"ZZ_{n}.jpg", 400 + n, 300) for n in range(5)]
    upload(client, "live", *arriving)
    run_worker()
    expect(page.locator("#photo-count")).to_have_text("(35)")
    wait_for(lambda: all(processed(client, "live", f"ZZ_{n}") for n in range(5)), 60)
    page.wait_for_function(  # all 35 fit on the sheet: the new ones show their thumbnails
        "() => document.querySelectorAll("
        "'#photos .card[data-key^=\"ZZ_\"] img.loaded').length === 5"
    )
    # the read after the last event comes (the page then has the bursts as well)
    page.wait_for_function(
        "(started) => { const { named, whole } = window.liveLog;"
        " const last = Math.max(started, ...named);"
        " return whole.some((t) => t >= last); }",
        arg=started,
        timeout=30_000,
    )
    page.wait_for_load_state("networkidle")
    after = page.evaluate(
        """(keys) => Object.fromEntries(keys.map((k) => {
            const c = document.querySelector(`#photos .card[data-key="${k}"]`);
            return [k, c ? [c.dataset.fills, c.querySelector('img').src] : null];
        }))""",
        list(before),
    )
    assert after == before
    assert by_name, "arriving photos are fetched by name"
    log = page.evaluate("() => window.liveLog")
    named = [t for t in log["named"] if t >= started]
    assert len(named) >= 5
    for read in (t for t in log["whole"] if t >= started):
        last_event = max((t for t in named if t <= read), default=None)
        if last_event is not None:
            assert read - last_event >= SETTLED_MS - 50, (read, named)


def test_a_decision_in_one_tab_reaches_the_other_and_its_commit_dialog(
    page: Page, browser: Browser, live_server: str, client: httpx.Client, library: Library
) -> None:
    names = seed(library, "tabs", 6)
    other = browser.new_context(base_url=live_server, viewport={"width": 1600, "height": 1000})
    second = other.new_page()
    try:
        for tab in (page, second):
            tab.goto("/projects/tabs")
            expect(tab.locator("#photo-count")).to_have_text("(6)")
        page.keyboard.press("x")  # in the first tab
        card = second.locator(f'#photos .card[data-key="{names[0]}"]')
        expect(card).to_have_attribute("data-flag", "reject")  # the second follows
        expect(second.locator("#pending-changes")).to_have_text(
            "1 file(s) marked to go to the trash"
        )
        client.patch(f"/api/projects/tabs/photos/{names[3]}", json={"flag": "reject"})
        second.get_by_role("button", name="Commit changes…").click()
        dialog = second.locator("#commit-dialog")
        expect(dialog.locator("li")).to_have_text([f"{names[0]}.JPG", f"{names[3]}.JPG"])
        dialog.get_by_role("button", name="Cancel").click()
    finally:
        other.close()
