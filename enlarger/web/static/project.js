// One project, culled: a contact sheet of its photos (drawn as they scroll into view, so a
// wedding of 5,000 costs what 50 do), decisions by keyboard or in bulk with undo, filters
// and sorting, a loupe and a compare view zooming to 100 %, bursts with their suggested
// frame; commit (sidecars only, or with the trash) and revert, uploads, and the trash
// with thumbnails and restore. Live events fetch only the photos they name, so an import
// redraws only the cards that changed.
"use strict";
(() => {
  const { el, badge, api, act, confirm, live, uploader, toast, when, bytes, renewBeforeExpiry } = enlarger;
  const folder = document.getElementById("project").dataset.folder;
  const base = `/api/projects/${encodeURIComponent(folder)}`;
  const sheet = document.getElementById("photos");
  const pending = document.getElementById("pending-changes");
  const details = document.getElementById("details");
  const LABELS = ["red", "yellow", "green", "blue", "purple"];
  const LABEL_KEYS = { 6: "red", 7: "yellow", 8: "green", 9: "blue" };
  const SIZES = { s: [124, 152], m: [172, 206], l: [244, 282] };
  const PAGE = 500; // photos per request while loading (the first screen waits for one)
  const FETCH_AT_ONCE = 100; // photos named per live refresh request
  const GATHER_MS = 1000; // live events gathered this long into one request (an import sends many)
  const SETTLED_MS = 4000; // then, this long after the last, the list is read whole once
  const UNDO_DEPTH = 200;

  const byName = new Map(); // base name → photo, as the API shows it
  let order = []; // every base name, in the sort's order
  let shown = []; // those the filters show (kept while culling: a decision hides nothing)
  let current = null; // the photo the keys act on
  const selected = new Set();
  let anchor = null; // where a Shift-extended selection started
  const undo = [];

  // ---- what the photos say --------------------------------------------------------------
  const unkeptFiles = (p) => p.files.filter((f) => (f.role === "jpg" ? !p.keep_jpg : !p.keep_raw));
  const leavesFiles = (p) => (p.flag === "reject" ? p.files : unkeptFiles(p));
  const leaving = () => [...byName.values()].flatMap((p) => leavesFiles(p).map((f) => f.filename));
  const decided = (p) => p.flag !== "unflagged" || p.rating || p.label;

  function marks(photo) {
    const found = [];
    if (photo.flag === "pick") found.push(el("span", { class: "flag pick", title: "picked" }, "✓"));
    if (photo.flag === "reject") found.push(el("span", { class: "flag reject", title: "rejected" }, "✕"));
    if (photo.rating) found.push(el("span", { class: "stars", title: `${photo.rating} star${photo.rating === 1 ? "" : "s"}` }, "★".repeat(photo.rating)));
    if (LABELS.includes(photo.label)) found.push(el("span", { class: `label-dot l-${photo.label}`, title: `${photo.label} label` }));
    const assist = photo.assist;
    if (assist?.blurry) found.push(el("span", { class: "badge s-failed", title: `sharpness ${assist.sharpness}` }, "blurry"));
    if (assist?.dark) found.push(el("span", { class: "badge exposure", title: `${assist.stopsUnder.toFixed(1)} stops under` }, "dark"));
    if (assist?.bright) found.push(el("span", { class: "badge exposure", title: "over-exposed, highlights clipped" }, "bright"));
    if (assist?.burst) {
      const text = assist.bestInBurst ? `★ burst ${assist.burstSize}` : `burst ${assist.burstSize}`;
      found.push(el("span", { class: assist.bestInBurst ? "badge s-done" : "badge", title: assist.reasons.join("; ") || `burst ${assist.burst}` }, text));
    }
    return el("span", { class: "decisions" }, found);
  }

  // ---- filters and sort -----------------------------------------------------------------
  function filters() {
    return {
      flag: document.getElementById("filter-flag").value,
      rating: Number(document.getElementById("filter-rating").value),
      label: document.getElementById("filter-label").value,
      exposure: document.getElementById("filter-exposure").value,
      burst: document.getElementById("filter-burst").checked,
      blurry: document.getElementById("filter-blurry").checked,
    };
  }

  function matches(p, f) {
    if (f.flag !== "all" && p.flag !== f.flag) return false;
    if (p.rating < f.rating) return false;
    if (f.label === "none" ? p.label !== null : f.label !== "any" && p.label !== f.label) return false;
    if (f.exposure !== "any" && !p.assist?.[f.exposure]) return false;
    if (f.burst && !p.assist?.burst) return false;
    return !(f.blurry && !p.assist?.blurry);
  }

  function sortKey(p) {
    return p.takenAt ? `0${p.takenAt.slice(0, 26)}` : `1${p.basename}`; // undated last
  }

  function resort() {
    const byTime = document.getElementById("sort").value === "time";
    order = [...byName.keys()];
    if (byTime) {
      const keys = new Map(order.map((n) => [n, sortKey(byName.get(n))]));
      order.sort((a, b) => (keys.get(a) < keys.get(b) ? -1 : keys.get(a) > keys.get(b) ? 1 : a < b ? -1 : 1));
    } else {
      order.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    }
  }

  // Apply the filters: with `keep`, photos in view stay there (a photo rejected under
  // "unflagged" does not vanish under the cursor).
  function applyView(keep) {
    const f = filters();
    const before = keep ? new Set(shown) : new Set();
    const at = keep && current ? shown.indexOf(current) : -1;
    const offset = at >= 0 ? grid.offsetOf(at) : null; // the current photo stays where it is
    shown = order.filter((n) => matches(byName.get(n), f) || before.has(n));
    for (const name of [...selected]) if (!byName.has(name)) selected.delete(name);
    if (!shown.includes(current)) current = shown[0] ?? null;
    grid.show(shown);
    summarise();
    if (current && offset !== null && offset >= 0 && offset < sheet.clientHeight) grid.keepAt(shown.indexOf(current), offset);
    else if (current) grid.reveal(shown.indexOf(current));
    markActive();
  }

  // ---- the sheet --------------------------------------------------------------------------
  function createCard() {
    const img = el("img", { alt: "", decoding: "async", draggable: "false" });
    img.addEventListener("load", () => img.classList.add("loaded"));
    return el(
      "div",
      { class: "card photo", role: "option" },
      el("div", { class: "thumb" }, img, el("span", { class: "thumb-state" }), el("span", { class: "decisions" })),
      el("div", { class: "cap" }, el("span", { class: "name" }), el("span", { class: "kind" })),
    );
  }

  function fillCard(card, name) {
    const photo = byName.get(name);
    if (!photo) return;
    const img = card.querySelector("img");
    const url = photo.thumbnailUrl || "";
    if (img.getAttribute("src") !== url) {
      img.classList.remove("loaded");
      if (url) img.src = url;
      else img.removeAttribute("src");
    }
    img.alt = name;
    card.querySelector(".thumb-state").textContent = photo.thumbnail_status === "done" ? "" : photo.files.length ? photo.thumbnail_status : "in the trash";
    card.querySelector(".name").textContent = shortened(name);
    card.querySelector(".name").title = photo.files.map((f) => f.filename).join(", ");
    const roles = new Set(photo.files.map((f) => f.role));
    card.querySelector(".kind").textContent = roles.size > 1 ? "+RAW" : roles.has("raw") ? "RAW" : "";
    card.querySelector(".decisions").replaceWith(marks(photo));
    card.dataset.basename = name;
    card.dataset.flag = photo.flag;
    card.dataset.rating = photo.rating;
    card.dataset.label = photo.label || "";
    card.classList.toggle("rejected", photo.flag === "reject");
    card.classList.toggle("dropped", leavesFiles(photo).length > 0);
    markCard(card);
  }

  // A long name loses its middle, not its end: camera B's IMG_0025-2 stays told apart.
  function shortened(name) {
    const room = { s: 12, m: 18, l: 26 }[size()];
    return name.length <= room ? name : `${name.slice(0, 4)}…${name.slice(-(room - 5))}`;
  }

  function markCard(card) {
    const name = card.dataset.key;
    card.classList.toggle("current", name === current);
    card.classList.toggle("selected", selected.has(name));
    card.setAttribute("aria-selected", String(selected.has(name)));
  }

  const grid = enlarger.photoGrid(sheet, { cellWidth: SIZES.m[0], cellHeight: SIZES.m[1], create: createCard, fill: fillCard });

  // The cursor and the selection show on the cards in view; nothing else is redrawn.
  function markActive() {
    for (const card of sheet.querySelectorAll(".card:not([hidden])")) markCard(card);
    const card = current ? grid.cardOf(current) : null;
    if (card) sheet.setAttribute("aria-activedescendant", card.id);
    else sheet.removeAttribute("aria-activedescendant");
    if (!details.hidden) drawDetails();
  }

  function summarise() {
    const total = byName.size;
    document.getElementById("photo-count").textContent = shown.length === total ? `(${total})` : `(${shown.length} of ${total} shown)`;
    const gone = leaving();
    pending.textContent = gone.length ? `${gone.length} file(s) marked to go to the trash` : "nothing marked for the trash";
    document.getElementById("selection-bar").hidden = selected.size === 0;
    document.getElementById("selection-count").textContent = `${selected.size} selected`;
  }

  sheet.addEventListener("click", (e) => {
    const card = e.target.closest(".card");
    if (card) pointAt(card.dataset.key, e.shiftKey ? "range" : e.ctrlKey || e.metaKey ? "toggle" : "only");
  });
  sheet.addEventListener("dblclick", (e) => {
    const card = e.target.closest(".card");
    if (card) openLoupe([card.dataset.key]);
  });

  // ---- the cursor and the selection ------------------------------------------------------
  function pointAt(name, how = "only") {
    if (name === null || name === undefined) return;
    if (anchor === null) anchor = current ?? name; // a range starts where the cursor was
    current = name;
    if (how === "range") {
      const [a, b] = [shown.indexOf(anchor), shown.indexOf(name)].sort((x, y) => x - y);
      selected.clear();
      for (const n of shown.slice(a, b + 1)) selected.add(n);
    } else if (how === "toggle") {
      if (selected.has(name)) selected.delete(name);
      else selected.add(name);
      anchor = name;
    } else {
      selected.clear();
      anchor = name;
    }
    grid.reveal(shown.indexOf(name));
    markActive();
    summarise();
  }

  function step(by, how) {
    if (!shown.length) return;
    const at = Math.max(0, shown.indexOf(current));
    pointAt(shown[Math.min(shown.length - 1, Math.max(0, at + by))], how);
  }

  // ---- decisions ---------------------------------------------------------------------------
  function targets() {
    if (loupe.open) return current ? [current] : []; // in compare, the active pane only
    return selected.size > 1 && selected.has(current) ? [...selected] : current ? [current] : [];
  }

  function store(photo) {
    if (!byName.has(photo.basename)) {
      byName.set(photo.basename, photo);
      return true;
    }
    byName.set(photo.basename, { ...byName.get(photo.basename), ...photo });
    return false;
  }

  // Changes reach the server in the order they were made: sent at once, a pick and then
  // a star could land star first, and two stars pressed quickly the first one last.
  let saving = Promise.resolve();
  function inOrder(send) {
    const request = saving.then(send);
    saving = request.catch(() => {});
    return request;
  }

  // Record one change on these photos (optimistically: the page shows it at once, and
  // puts it back if the server refuses it); it can be undone.
  async function decide(change, names = targets(), { advance = true, remember = true } = {}) {
    if (!names.length) return;
    const before = names.map((n) => byName.get(n));
    const differs = before.some((p) => Object.entries(change).some(([k, v]) => p[k] !== v));
    if (remember && differs) { // a change that changes nothing is no step to undo
      const was = before.map((p) => Object.fromEntries(Object.keys(change).map((k) => [k, p[k]])));
      undo.push({ names, was, current, selection: [...selected] });
      if (undo.length > UNDO_DEPTH) undo.shift();
    }
    for (const p of before) store({ ...p, ...change });
    changed(names);
    if (advance && names.length === 1 && document.getElementById("auto-advance").checked && !("keep_jpg" in change || "keep_raw" in change)) {
      next();
    }
    try {
      await inOrder(() => names.length === 1
        ? api(`${base}/photos/${encodeURIComponent(names[0])}`, { method: "PATCH", json: change })
        : api(`${base}/photos`, { method: "PATCH", json: { basenames: names, ...change } }));
    } catch (error) {
      for (const p of before) store(p);
      changed(names);
      toast(`Not saved: ${error.message}`, true);
    }
  }

  // Put back what the last change changed: the photos with the same values before it
  // together, in one request; the cursor and the selection go back where they were.
  async function undoLast() {
    const last = undo.pop();
    if (!last) return toast("Nothing to undo.");
    const groups = new Map();
    last.names.forEach((name, i) => {
      const key = JSON.stringify(last.was[i]);
      groups.set(key, [...(groups.get(key) || []), name]);
    });
    current = last.current;
    anchor = current; // a Shift+arrow after it starts here
    selected.clear();
    last.selection.forEach((name) => selected.add(name));
    if (shown.includes(current)) grid.reveal(shown.indexOf(current));
    markActive();
    summarise();
    if (loupe.open) loupe.move(current);
    await Promise.all([...groups].map(([was, names]) => decide(JSON.parse(was), names, { advance: false, remember: false })));
    toast(`Undone on ${last.names.length} photo(s)`);
  }

  function changed(names) {
    grid.refresh(names);
    summarise();
    loupe.refresh();
    if (!details.hidden) drawDetails();
  }

  function next() {
    if (loupe.open && loupe.compared.length > 1) {
      const at = loupe.compared.indexOf(current);
      current = loupe.compared[(at + 1) % loupe.compared.length];
      loupe.move(current);
      return;
    }
    const at = shown.indexOf(current);
    if (at < 0 || at >= shown.length - 1) return; // the last one: stay, keys still work
    if (loupe.open) showInLoupe(shown[at + 1]);
    else if (selected.size && !selected.has(current)) moveCursor(shown[at + 1]); // as Ctrl+arrow
    else pointAt(shown[at + 1]);
  }

  // The cursor moves; the selection stays (Ctrl+arrow, and the next photo after deciding
  // on one outside the selection).
  function moveCursor(name) {
    current = name;
    grid.reveal(shown.indexOf(current));
    markActive();
  }

  function decisionFor(key) {
    const lower = key.toLowerCase();
    if (lower === "p") return { flag: "pick" };
    if (lower === "x") return { flag: "reject" };
    if (lower === "u") return { flag: "unflagged" };
    if (/^[0-5]$/.test(key)) return { rating: Number(key) };
    if (LABEL_KEYS[key]) return { label: LABEL_KEYS[key] };
    return null;
  }

  // ---- loupe and compare -----------------------------------------------------------------
  const loupe = enlarger.createLoupe({
    dialog: document.getElementById("loupe"),
    photoOf: (name) => byName.get(name),
    neighbours: (name, n) => {
      const at = shown.indexOf(name);
      return [...shown.slice(at + 1, at + 1 + n), ...shown.slice(Math.max(0, at - n), at).reverse()];
    },
    burstOf: (photo) => (photo.assist?.burst ? order.filter((n) => byName.get(n).assist?.burst === photo.assist.burst).map((n) => byName.get(n)) : []),
    marks,
    onActivate: (name, single) => {
      if (single) showInLoupe(name);
      else {
        current = name;
        loupe.move(name);
      }
    },
    onDraw: () => loupeState(),
  });

  function loupeState() {
    const photo = byName.get(current);
    if (!photo) return;
    const position = `${shown.indexOf(current) + 1} / ${shown.length}`;
    document.getElementById("loupe-state").textContent = `${position} · ${loupe.state()} · ${photo.flag}, ${photo.rating} star${photo.rating === 1 ? "" : "s"}${photo.label ? `, ${photo.label}` : ""}`;
  }

  function openLoupe(names) {
    const open = names.filter((n) => byName.has(n)).slice(0, 4);
    if (!open.length) return;
    current = open.includes(current) ? current : open[0];
    loupe.show(open, current);
    loupeState();
  }

  function showInLoupe(name) {
    current = name;
    loupe.move(name);
    loupeState();
    grid.reveal(shown.indexOf(name));
    markActive();
  }

  document.getElementById("loupe").addEventListener("close", () => {
    markActive();
    sheet.focus();
  });
  document.getElementById("loupe-close").addEventListener("click", () => loupe.close());

  function compareSelection() {
    const at = Math.max(0, shown.indexOf(current));
    const names = selected.size > 1 ? shown.filter((n) => selected.has(n)) : shown.slice(at, at + 2);
    if (names.length < 2) return toast("Select two to four photos to compare.", true);
    if (names.length > 4) toast("Comparing the first four selected photos.");
    openLoupe(names);
  }

  // ---- the details of the current photo ---------------------------------------------------
  function toggle(photo, role) {
    const available = photo.files.some((f) => f.role === role);
    const box = el("input", {
      type: "checkbox",
      id: `keep-${role}`,
      checked: role === "jpg" ? photo.keep_jpg : photo.keep_raw,
      disabled: !available,
      onchange: () => {
        decide(role === "jpg" ? { keep_jpg: box.checked } : { keep_raw: box.checked }, [photo.basename]);
        sheet.focus(); // the keys go on acting on the photos
      },
    });
    return el("label", { for: `keep-${role}` }, box, `Keep ${role.toUpperCase()}`);
  }

  function drawDetails() {
    const photo = byName.get(current);
    if (!photo) return details.replaceChildren(el("p", { class: "muted" }, "No photo."));
    const focused = document.activeElement && details.contains(document.activeElement) ? document.activeElement.id : null;
    const assist = photo.assist;
    const parts = [
      el("h2", {}, photo.basename),
      marks(photo),
      el("ul", { class: "files" }, ...photo.files.map((f) => el("li", {}, `${f.filename} `, badge(f.status)))),
      photo.files.length ? null : el("p", { class: "muted" }, "No file left: restore one from the trash."),
      el("div", { class: "keep" }, toggle(photo, "jpg"), toggle(photo, "raw")),
      photo.sidecars.length ? el("p", { class: "muted" }, `Sidecars: ${photo.sidecars.join(", ")}`) : null,
      assist ? el("p", { class: "muted" }, `Sharpness ${assist.sharpness}${assist.stopsUnder !== null ? `, ${assist.stopsUnder.toFixed(1)} stops under` : ""}${assist.burst ? `, burst of ${assist.burstSize}` : ""}`) : null,
      photo.takenAt ? el("p", { class: "muted" }, `Taken ${enlarger.shotAt(photo.takenAt)}`) : null,
    ];
    details.replaceChildren(...parts.filter(Boolean));
    if (focused) document.getElementById(focused)?.focus();
  }

  function toggleDetails() {
    details.hidden = !details.hidden;
    document.getElementById("toggle-details").setAttribute("aria-expanded", String(!details.hidden));
    if (!details.hidden) drawDetails();
  }
  document.getElementById("toggle-details").addEventListener("click", () => {
    toggleDetails();
    sheet.focus(); // the keys go on acting on the photos
  });
  details.addEventListener("keydown", (e) => {
    if (e.key === "Escape") sheet.focus(); // from a keep toggle back to the sheet
  });

  // ---- keys --------------------------------------------------------------------------------
  document.addEventListener("keydown", (e) => {
    const inLoupe = loupe.open;
    if (e.target.closest("input, select, textarea, button, summary") && !e.target.closest("#loupe")) return;
    if ([...document.querySelectorAll("dialog[open]")].some((d) => d.id !== "loupe")) return;
    if (e.altKey) return;
    const key = e.key;
    if ((e.ctrlKey || e.metaKey) && key.toLowerCase() === "z") {
      e.preventDefault();
      undoLast();
      return;
    }
    if ((e.ctrlKey || e.metaKey) && key.toLowerCase() === "a" && !inLoupe) {
      e.preventDefault();
      shown.forEach((n) => selected.add(n));
      markActive();
      summarise();
      return;
    }
    if ((e.ctrlKey || e.metaKey) && key.startsWith("Arrow") && !inLoupe) {
      e.preventDefault(); // the cursor moves, the selection stays (Space adds to it)
      const at = Math.max(0, shown.indexOf(current));
      const by = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: grid.columns, ArrowUp: -grid.columns }[key];
      moveCursor(shown[Math.min(shown.length - 1, Math.max(0, at + by))]);
      return;
    }
    if (e.ctrlKey || e.metaKey) return;
    let decision = decisionFor(key);
    if (decision) {
      e.preventDefault();
      if (!current && shown.length) current = shown[0];
      if (decision.label && targets().every((n) => byName.get(n).label === decision.label)) {
        decision = { label: null }; // the same label key again takes it off, as in Lightroom
      }
      decide(decision);
      if (inLoupe) loupeState();
      return;
    }
    const columns = grid.columns;
    const rowsInView = Math.max(1, Math.floor(sheet.clientHeight / (SIZES[size()][1])));
    const moves = inLoupe
      ? { ArrowRight: 1, ArrowLeft: -1, ArrowDown: 1, ArrowUp: -1, Home: -shown.length, End: shown.length }
      : { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns, ArrowUp: -columns, PageDown: columns * rowsInView, PageUp: -columns * rowsInView, Home: -shown.length, End: shown.length };
    const move = moves[key];
    if (move !== undefined) {
      e.preventDefault();
      if (inLoupe && loupe.compared.length > 1) {
        const at = loupe.compared.indexOf(current);
        current = loupe.compared[(at + (move > 0 ? 1 : loupe.compared.length - 1)) % loupe.compared.length];
        loupe.move(current);
        loupeState();
      } else if (inLoupe) {
        const at = shown.indexOf(current);
        const to = shown[Math.min(shown.length - 1, Math.max(0, at + move))];
        if (to && to !== current) showInLoupe(to);
      } else {
        step(move, e.shiftKey ? "range" : "only");
      }
      return;
    }
    const lower = key.toLowerCase();
    if (key === " " && !inLoupe) {
      e.preventDefault();
      if (current) pointAt(current, "toggle");
    } else if (key === "Enter" || lower === "e") {
      e.preventDefault();
      if (!inLoupe && current) openLoupe([current]);
    } else if (lower === "c") {
      e.preventDefault();
      if (!inLoupe) compareSelection();
    } else if (lower === "z") {
      e.preventDefault();
      if (!inLoupe && current) openLoupe([current]);
      loupe.toggleZoom();
      loupeState();
    } else if (lower === "g" && inLoupe) {
      loupe.close();
    } else if (lower === "i") {
      e.preventDefault();
      toggleDetails();
    } else if (key === "Escape" && !inLoupe && selected.size) {
      selected.clear();
      markActive();
      summarise();
    }
  });

  // ---- filters, sort, size, bulk actions --------------------------------------------------
  const size = () => document.getElementById("card-size").value;
  const KEPT_VIEW = ["sort", "card-size", "auto-advance"]; // remembered by this browser
  for (const id of KEPT_VIEW) {
    const saved = localStorage.getItem(`enlarger.${id}`);
    const input = document.getElementById(id);
    if (saved === null) continue;
    if (input.type === "checkbox") input.checked = saved === "true";
    else if ([...input.options].some((o) => o.value === saved)) input.value = saved;
  }
  document.getElementById("filters").addEventListener("change", (e) => {
    if (KEPT_VIEW.includes(e.target.id)) {
      localStorage.setItem(`enlarger.${e.target.id}`, e.target.type === "checkbox" ? e.target.checked : e.target.value);
    }
    if (e.target.id === "auto-advance") return;
    if (e.target.id === "card-size") {
      grid.resize(...SIZES[size()]);
      grid.refresh(shown); // names are shortened for the size
    }
    if (e.target.id === "sort") resort();
    applyView(false);
  });
  document.getElementById("filters").addEventListener("submit", (e) => e.preventDefault());
  for (const button of document.querySelectorAll("#selection-bar [data-change]")) {
    button.addEventListener("click", () => decide(JSON.parse(button.dataset.change), [...selected]));
  }
  document.getElementById("bulk-rating").addEventListener("change", (e) => {
    if (e.target.value !== "") decide({ rating: Number(e.target.value) }, [...selected]);
    e.target.value = "";
  });
  document.getElementById("bulk-label").addEventListener("change", (e) => {
    const value = e.target.value;
    if (value !== "") decide({ label: value === "clear" ? null : value }, [...selected]);
    e.target.value = "";
  });
  document.getElementById("compare-selected").addEventListener("click", compareSelection);
  document.getElementById("clear-selection").addEventListener("click", () => {
    selected.clear();
    markActive();
    summarise();
  });

  // ---- loading and live updates ------------------------------------------------------------
  // The first page is shown as soon as it arrives; the rest follow.
  async function load() {
    let after = null;
    const seen = new Set();
    const differ = [];
    let first = true;
    do {
      const query = new URLSearchParams({ limit: PAGE, ...(after ? { after } : {}) });
      const page = await api(`${base}/photos?${query}`);
      for (const photo of page.photos) {
        seen.add(photo.basename);
        const before = byName.get(photo.basename);
        if (before && JSON.stringify(before) !== JSON.stringify(photo)) differ.push(photo.basename);
        byName.set(photo.basename, photo);
      }
      after = page.nextAfter;
      if (first || !after) {
        if (!after) for (const name of [...byName.keys()]) if (!seen.has(name)) byName.delete(name);
        resort();
        applyView(!first);
        first = false;
      }
    } while (after);
    resort();
    applyView(true);
    grid.refresh(differ); // read afresh: new URLs, bursts, whatever changed elsewhere
    loupe.refresh();
    watchSettling();
    renewBeforeExpiry([...byName.values()].flatMap((p) => [p.thumbnailUrl, p.previewUrl]), load);
  }

  // Files folder_check found still being copied into the folder: said here, and looked
  // at again until they are taken in (their photos then arrive as events).
  async function watchSettling() {
    clearTimeout(watchSettling.again);
    const { settling } = await api(base);
    const note = document.getElementById("settling");
    note.hidden = !settling.length;
    note.textContent = settling.length
      ? `${settling.length} file(s) still being copied into the folder (${settling.slice(0, 3).join(", ")}${settling.length > 3 ? ", …" : ""}): taken in once they settle`
      : "";
    if (settling.length) watchSettling.again = setTimeout(watchSettling, 3000);
  }

  const named = new Set(); // photos live events said changed, to fetch
  let fetching = null;
  async function fetchNamed() {
    if (fetching || !named.size) return;
    const names = [...named].slice(0, FETCH_AT_ONCE);
    names.forEach((n) => named.delete(n));
    const query = new URLSearchParams([...names.map((n) => ["basename", n]), ["bursts", "false"]]);
    fetching = api(`${base}/photos?${query}`)
      .then(({ photos }) => {
        const known = photos.filter((p) => byName.has(p.basename)).map((p) => p.basename);
        let added = false;
        for (const photo of photos) added = store(photo) || added;
        const found = new Set(photos.map((p) => p.basename));
        for (const name of names) if (!found.has(name) && byName.delete(name)) added = true;
        if (added) {
          resort();
          applyView(true); // new photos take their places; the cards of the others stay
        }
        changed(known);
      })
      .catch((error) => toast(`Live refresh failed: ${error.message}`, true))
      .finally(() => {
        fetching = null;
        if (named.size) setTimeout(fetchNamed, GATHER_MS);
      });
  }

  const reloadSoon = enlarger.throttle(() => {
    load();
    loadTrash();
  }, 2000);

  function onEvent(event) {
    const names = event.photos || (event.photo ? [event.photo] : []);
    if (names.length) {
      names.forEach((name) => named.add(name));
      onEvent.timer ??= setTimeout(() => {
        onEvent.timer = null;
        fetchNamed();
      }, GATHER_MS);
      clearTimeout(onEvent.settled); // fetched by name without bursts: read them once quiet
      onEvent.settled = setTimeout(load, SETTLED_MS);
    }
  }

  // ---- trash, commit, revert, process, uploads ---------------------------------------------
  const trashList = document.getElementById("trash");
  async function loadTrash() {
    const { files } = await api(`${base}/trash`);
    document.getElementById("trash-count").textContent = files.length ? ` (${files.length})` : "";
    document.getElementById("trash-empty").hidden = files.length > 0;
    document.getElementById("trash-actions").hidden = files.length === 0;
    document.getElementById("trash-all").checked = false;
    trashList.replaceChildren(
      ...files.map((f) => {
        const box = el("input", { type: "checkbox", value: f.filename, "aria-label": `Select ${f.filename}` });
        const thumb = f.thumbnailUrl ? el("img", { src: f.thumbnailUrl, alt: f.filename, width: 120, height: 120 }) : el("div", { class: "no-thumb" }, "no thumbnail");
        const restore = el("button", { type: "button", "aria-label": `Restore ${f.filename}` }, "Restore");
        restore.addEventListener("click", () => restoreFiles([f.filename], restore));
        return el("li", { dataset: { filename: f.filename } }, el("label", {}, box, thumb), el("span", { class: "name" }, f.filename), el("span", { class: "muted" }, `${bytes(f.sizeBytes)}, ${when(f.trashedAt)}`), restore);
      }),
    );
    selectionChanged();
  }

  function checkedInTrash() {
    return [...trashList.querySelectorAll("input:checked")].map((box) => box.value);
  }

  function selectionChanged() {
    const picked = checkedInTrash();
    const button = document.getElementById("restore-selected");
    button.disabled = picked.length === 0;
    button.textContent = picked.length ? `Restore ${picked.length} selected` : "Restore selected";
  }

  async function restoreFiles(filenames, button) {
    const done = await act(button, () => api(`${base}/trash/restore`, { method: "POST", json: { filenames } }));
    if (done) {
      if (done.restored.length) toast(`${done.restored.length} file(s) restored`);
      for (const [name, why] of Object.entries(done.refused)) toast(`${name}: ${why}`, true);
      for (const name of done.restored) named.add(name.replace(/\.[^.]*$/, ""));
      fetchNamed();
    }
    await loadTrash();
    const dialog = document.getElementById("trash-dialog");
    (dialog.querySelector("#trash input") || dialog.querySelector("[data-close]")).focus(); // stay in the dialog
  }

  trashList.addEventListener("change", selectionChanged);
  document.getElementById("trash-all").addEventListener("change", (e) => {
    for (const box of trashList.querySelectorAll("input")) box.checked = e.target.checked;
    selectionChanged();
  });
  document.getElementById("restore-selected").addEventListener("click", (e) => restoreFiles(checkedInTrash(), e.currentTarget));
  document.getElementById("open-trash").addEventListener("click", () => {
    loadTrash();
    document.getElementById("trash-dialog").showModal();
  });
  document.getElementById("open-upload").addEventListener("click", () => document.getElementById("upload-dialog").showModal());
  for (const close of document.querySelectorAll("dialog [data-close]")) {
    close.addEventListener("click", () => close.closest("dialog").close());
  }
  for (const dialog of document.querySelectorAll("#trash-dialog, #upload-dialog, #commit-dialog")) {
    dialog.addEventListener("close", () => sheet.focus());
  }

  // Commit: writing the sidecars is the default (Enter); moving files to the trash is
  // its own button, never the one focused.
  document.getElementById("commit").addEventListener("click", async (e) => {
    const button = e.currentTarget; // gone once the handler awaits
    // what would move, as the server has it (another tab, another client may have decided)
    const preview = await act(button, () => api(`${base}/commit-changes`, { method: "POST", json: { dryRun: true } }));
    if (!preview) return;
    const gone = preview.trashed;
    const count = [...byName.values()].filter(decided).length;
    if (!gone.length && !count) {
      toast("Nothing to commit: every file is kept and nothing is decided.");
      return;
    }
    const dialog = document.getElementById("commit-dialog");
    const body = [
      el("p", {}, `The decisions of ${count} photo(s) are written to their .xmp sidecars wherever those say otherwise.`),
      el("p", {}, gone.length ? `${gone.length} file(s) will move to the project's trash (restorable from there):` : "No file moves to the trash."),
    ];
    if (gone.length) body.push(el("ul", {}, ...gone.slice(0, 200).map((n) => el("li", {}, n)), gone.length > 200 ? el("li", {}, `… and ${gone.length - 200} more`) : null));
    document.getElementById("commit-body").replaceChildren(...body);
    const trash = document.getElementById("commit-trash");
    trash.hidden = gone.length === 0;
    trash.textContent = `Move ${gone.length} file(s) to the trash`;
    dialog.returnValue = "";
    dialog.showModal();
    document.getElementById("commit-sidecars").focus();
    const choice = await new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue), { once: true }));
    if (choice !== "sidecars" && choice !== "trash") return;
    const done = await act(button, () => api(`${base}/commit-changes`, { method: "POST", json: { trash: choice === "trash" } }), (r) => `${r.trashed.length} file(s) moved to the trash, ${r.sidecars.length} sidecar(s) written`);
    if (done) {
      for (const [name, why] of Object.entries(done.sidecars_refused)) toast(`${name} left as it is: ${why}`, true);
      load();
      loadTrash();
    }
  });

  document.getElementById("revert").addEventListener("click", async (e) => {
    const button = e.currentTarget;
    const unkept = [...byName.values()].flatMap(unkeptFiles).length;
    const body = el("p", {}, unkept ? `Every keep flag goes back to the files that are there; ${unkept} file(s) will no longer be marked for the trash. Decisions (and so rejections) stay. Nothing moves.` : "Every keep flag already matches the files; nothing will change.");
    if (!(await confirm("Revert keep flags?", body, "Revert"))) return;
    const done = await act(button, () => api(`${base}/revert-changes`, { method: "POST" }), (r) => `${r.photosChanged} photo(s) reset`);
    if (done) load();
  });

  document.getElementById("process").addEventListener("click", async (e) => {
    await act(e.currentTarget, () => api(`${base}/process`, { method: "POST", json: {} }), (r) => `Job ${r.jobId} queued`);
    sheet.focus();
  });

  uploader({
    zone: document.getElementById("dropzone"),
    input: document.getElementById("files"),
    list: document.getElementById("uploads"),
    url: `${base}/upload`,
    field: "files",
    onDone: (entry, body) => {
      const outcome = body.files[0] || {};
      entry.state.replaceChildren(outcome.error_code ? badge("FAILED") : badge(outcome.duplicate ? "duplicate" : "uploaded"), outcome.error_code ? ` ${outcome.error_code}` : "");
      for (const file of body.files) if (file.basename) named.add(file.basename);
      fetchNamed();
    },
  });

  // Image and photo events only: they name the photos that changed, by an import here
  // or a decision in another tab (an import's jobs send four times as many events, which
  // this page would only skip).
  live({ project: folder, type: "image,photo" }, onEvent, reloadSoon);
  grid.resize(...SIZES[size()]);
  sheet.focus();
  load().then(() => sheet.focus());
  loadTrash();
})();
