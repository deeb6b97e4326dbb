// One project: photos as JPG/RAW pairs with keep toggles and culling decisions (pick,
// reject, stars, colour labels) made by keyboard or in bulk, filters, a loupe and a
// compare view zooming to 100 %, bursts with their suggested frame; commit and revert
// (each confirmed with what it will do), uploads, and the trash with restore.
"use strict";
(() => {
  const { el, badge, api, act, confirm, live, uploader, throttle, toast, when, bytes, renewBeforeExpiry } = enlarger;
  const folder = document.getElementById("project").dataset.folder;
  const base = `/api/projects/${encodeURIComponent(folder)}`;
  const list = document.getElementById("photos");
  const pending = document.getElementById("pending-changes");
  const loupe = document.getElementById("loupe");
  const LABEL_KEYS = { 6: "red", 7: "yellow", 8: "green", 9: "blue" };
  const BROWSER_FORMATS = new Set(["jpeg", "png", "webp", "gif", "avif"]);

  let photos = [];
  let byName = new Map();
  let shown = []; // base names in view order: the filter's, kept while culling
  let current = null; // the photo the keys act on
  const selected = new Set();
  let anchor = null; // where a Shift-extended selection started
  let compared = []; // the photos in the loupe (one) or compare view (two to four)
  let zoomed = false;
  const originals = new Map(); // base name → the URL that shows it at 100 % (a signed one)

  // ---- what the photos say --------------------------------------------------------------
  const unkeptFiles = (p) => p.files.filter((f) => (f.role === "jpg" ? !p.keep_jpg : !p.keep_raw));
  const leavesFiles = (p) => (p.flag === "reject" ? p.files : unkeptFiles(p));
  const leaving = () => photos.flatMap((p) => leavesFiles(p).map((f) => f.filename));
  const stars = (n) => "★".repeat(n) + "☆".repeat(5 - n);

  function filters() {
    return {
      flag: document.getElementById("filter-flag").value,
      rating: Number(document.getElementById("filter-rating").value),
      label: document.getElementById("filter-label").value,
      burst: document.getElementById("filter-burst").checked,
      blurry: document.getElementById("filter-blurry").checked,
    };
  }

  function matches(p, f) {
    if (f.flag !== "all" && p.flag !== f.flag) return false;
    if (p.rating < f.rating) return false;
    if (f.label === "none" ? p.label !== null : f.label !== "any" && p.label !== f.label) return false;
    if (f.burst && !p.assist?.burst) return false;
    return !(f.blurry && !p.assist?.blurry);
  }

  // ---- the grid ---------------------------------------------------------------------------
  function toggle(photo, role) {
    const available = role === "jpg" ? photo.jpg_available : photo.raw_available;
    const id = `keep-${role}-${photo.basename}`;
    const box = el("input", {
      type: "checkbox",
      id,
      checked: role === "jpg" ? photo.keep_jpg : photo.keep_raw,
      disabled: !available,
      onchange: async () => {
        const change = role === "jpg" ? { keep_jpg: box.checked } : { keep_raw: box.checked };
        const saved = await act(box, () => api(`${base}/photos/${encodeURIComponent(photo.basename)}`, { method: "PATCH", json: change }));
        if (saved) {
          store({ ...saved, assist: byName.get(photo.basename).assist });
          redraw([photo.basename]);
          document.getElementById(id)?.focus();
        } else {
          box.checked = !box.checked;
        }
      },
    });
    return el("label", { for: id }, box, `Keep ${role.toUpperCase()}`);
  }

  function decisionMarks(photo) {
    const marks = [];
    if (photo.flag === "pick") marks.push(el("span", { class: "flag pick", title: "picked" }, "✓ picked"));
    if (photo.flag === "reject") marks.push(el("span", { class: "flag reject", title: "rejected" }, "✕ rejected"));
    marks.push(el("span", { class: "stars", "aria-label": `${photo.rating} stars` }, stars(photo.rating)));
    if (photo.label) marks.push(el("span", { class: `label-dot l-${photo.label}`, title: `${photo.label} label` }, photo.label));
    const assist = photo.assist;
    if (assist?.blurry) marks.push(el("span", { class: "badge s-failed", title: `sharpness ${assist.sharpness}` }, "blurry"));
    if (assist?.burst) {
      const text = assist.bestInBurst ? `best of burst (${assist.burstSize})` : `burst of ${assist.burstSize}`;
      marks.push(el("span", { class: assist.bestInBurst ? "badge s-done" : "badge", title: assist.reasons.join("; ") || `burst ${assist.burst}` }, text));
    }
    return el("div", { class: "decisions" }, marks);
  }

  function photoCard(photo) {
    const img = el("img", { alt: photo.basename, loading: "lazy", width: 256, height: 256 });
    img.addEventListener("load", () => img.classList.add("loaded"));
    if (photo.thumbnailUrl) img.src = photo.thumbnailUrl;
    const files = photo.files.map((f) => el("span", {}, `${f.filename} `, badge(f.status)));
    const classes = ["card", "photo"];
    if (leavesFiles(photo).length) classes.push("dropped");
    if (photo.flag === "reject") classes.push("rejected");
    if (photo.basename === current) classes.push("current");
    if (selected.has(photo.basename)) classes.push("selected");
    const card = el(
      "li",
      { class: classes.join(" "), role: "option", tabindex: photo.basename === current ? 0 : -1, "aria-selected": String(selected.has(photo.basename)), dataset: { basename: photo.basename, flag: photo.flag, rating: photo.rating, label: photo.label || "" } },
      el("div", { class: "thumb" }, img),
      el("div", { class: "caption" }, el("strong", { class: "title" }, photo.basename), decisionMarks(photo), ...files, el("span", { class: "muted" }, photo.files.length ? `thumbnail ${photo.thumbnail_status}, preview ${photo.preview_status}` : "no file left: restore one from the trash")),
      el("div", { class: "keep" }, toggle(photo, "jpg"), toggle(photo, "raw")),
    );
    card.addEventListener("click", (e) => {
      if (e.target.closest(".keep")) return;
      pointAt(photo.basename, e.shiftKey ? "range" : e.ctrlKey || e.metaKey ? "toggle" : "only");
    });
    card.addEventListener("dblclick", (e) => {
      if (!e.target.closest(".keep")) openLoupe([photo.basename]);
    });
    return card;
  }

  const cardOf = (basename) => list.querySelector(`li[data-basename="${CSS.escape(basename)}"]`);

  function redraw(basenames) {
    for (const name of basenames) {
      const old = cardOf(name);
      if (old && byName.has(name)) old.replaceWith(photoCard(byName.get(name)));
    }
    summarise();
    if (loupe.open) drawLoupe();
  }

  function render() {
    list.replaceChildren(...shown.map((name) => photoCard(byName.get(name))));
    summarise();
    renewBeforeExpiry(photos.flatMap((p) => [p.thumbnailUrl, p.previewUrl]), load);
  }

  function summarise() {
    const count = shown.length === photos.length ? `(${photos.length})` : `(${shown.length} of ${photos.length} shown)`;
    document.getElementById("photo-count").textContent = count;
    const gone = leaving();
    pending.textContent = gone.length ? `${gone.length} file(s) marked to go to the trash` : "no pending changes";
    const bar = document.getElementById("selection-bar");
    bar.hidden = selected.size === 0;
    document.getElementById("selection-count").textContent = `${selected.size} selected`;
  }

  function store(photo) {
    const at = photos.findIndex((p) => p.basename === photo.basename);
    if (at >= 0) photos[at] = photo;
    byName.set(photo.basename, photo);
  }

  function applyFilters(keepShown) {
    const f = filters();
    const before = new Set(keepShown ? shown : []);
    shown = photos.filter((p) => matches(p, f) || before.has(p.basename)).map((p) => p.basename);
    for (const name of [...selected]) if (!shown.includes(name)) selected.delete(name);
    if (!shown.includes(current)) current = shown[0] ?? null;
    render();
  }

  async function load() {
    ({ photos } = await api(`${base}/photos`));
    byName = new Map(photos.map((p) => [p.basename, p]));
    originals.clear(); // their signed URLs are renewed with the rest
    applyFilters(true);
    if (loupe.open) {
      compared = compared.filter((name) => byName.has(name));
      if (compared.length) drawLoupe();
      else loupe.close();
    }
  }

  // ---- the cursor and the selection ------------------------------------------------------
  function pointAt(name, how = "only") {
    if (name === null || name === undefined) return;
    const before = [current, ...selected];
    current = name;
    if (how === "range" && anchor !== null) {
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
    redraw([...new Set([...before, name, ...selected])].filter(Boolean));
    focusCurrent();
  }

  function focusCurrent() {
    const card = current && cardOf(current);
    if (card && !loupe.open) {
      card.focus({ preventScroll: true });
      card.scrollIntoView({ block: "nearest" });
    }
  }

  function columns() {
    const cards = [...list.children];
    if (cards.length < 2) return 1;
    const top = cards[0].offsetTop;
    const n = cards.findIndex((c) => c.offsetTop !== top);
    return n === -1 ? cards.length : n;
  }

  function step(by, how) {
    if (!shown.length) return;
    const at = Math.max(0, shown.indexOf(current));
    const next = Math.min(shown.length - 1, Math.max(0, at + by));
    if (how === "range" && anchor === null) anchor = current;
    pointAt(shown[next], how);
  }

  // ---- decisions --------------------------------------------------------------------------
  function targets() {
    return selected.size > 1 && selected.has(current) ? [...selected] : current ? [current] : [];
  }

  async function decide(change, names = targets()) {
    if (!names.length) return;
    const before = names.map((n) => byName.get(n));
    if ("label" in change && change.label !== null && before.every((p) => p.label === change.label)) {
      change = { label: null }; // the same label key again takes it off, as in Lightroom
    }
    for (const p of before) store({ ...p, ...change });
    redraw(names);
    const single = names.length === 1;
    if (single && document.getElementById("auto-advance").checked && !("keep_jpg" in change)) advance();
    try {
      if (single) await api(`${base}/photos/${encodeURIComponent(names[0])}`, { method: "PATCH", json: change });
      else await api(`${base}/photos`, { method: "PATCH", json: { basenames: names, ...change } });
    } catch (error) {
      for (const p of before) store(p);
      redraw(names);
      toast(`Not saved: ${error.message}`, true);
    }
  }

  function advance() {
    if (loupe.open && compared.length > 1) {
      const at = compared.indexOf(current);
      current = compared[(at + 1) % compared.length];
      drawLoupe();
      return;
    }
    const at = shown.indexOf(current);
    if (at >= 0 && at < shown.length - 1) {
      if (loupe.open) showInLoupe(shown[at + 1]);
      else pointAt(shown[at + 1]);
    }
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
  function openLoupe(names) {
    compared = names.filter((n) => byName.has(n)).slice(0, 4);
    if (!compared.length) return;
    current = compared.includes(current) ? current : compared[0];
    zoomed = false;
    drawLoupe();
    if (!loupe.open) loupe.showModal();
    document.getElementById("loupe-panes").focus();
  }

  function showInLoupe(name) {
    if (compared.length > 1) return;
    compared = [name];
    current = name;
    drawLoupe();
  }

  function sourceFile(photo) {
    return photo.files.find((f) => f.filename === photo.source);
  }

  async function originalUrl(photo) {
    if (originals.has(photo.basename)) return originals.get(photo.basename);
    const file = sourceFile(photo);
    let url = photo.previewUrl;
    if (file) {
      const image = `/api/images/${encodeURIComponent(file.imageId)}`;
      const { format, originalUrl: original } = await api(image);
      if (BROWSER_FORMATS.has(format) && original) url = original;
      else ({ url } = await api(`${image}/full-view`)); // a RAW, HEIC or TIFF, rendered whole
    }
    originals.set(photo.basename, url);
    return url;
  }

  function pane(photo) {
    const img = el("img", { alt: photo.basename, src: photo.previewUrl || photo.thumbnailUrl || "" });
    const frame = el("div", { class: zoomed ? "stage zoomed" : "stage" }, img);
    if (zoomed) {
      originalUrl(photo)
        .then((url) => {
          if (!url) return;
          img.addEventListener("load", () => centre(frame), { once: true });
          img.src = url;
        })
        .catch((error) => toast(`No 100 % view of ${photo.basename}: ${error.message}`, true));
      frame.addEventListener("scroll", () => follow(frame));
    }
    const caption = el("div", { class: "pane-caption" }, el("strong", {}, photo.basename), decisionMarks(photo));
    const box = el("figure", { class: photo.basename === current ? "pane active" : "pane", dataset: { basename: photo.basename } }, frame, caption);
    box.addEventListener("click", () => {
      current = photo.basename;
      drawLoupe();
    });
    return box;
  }

  function centre(frame) {
    frame.scrollLeft = (frame.scrollWidth - frame.clientWidth) / 2;
    frame.scrollTop = (frame.scrollHeight - frame.clientHeight) / 2;
  }

  // Compared photos zoom together: scrolling one scrolls the others to the same place.
  let following = false;
  function follow(source) {
    if (following) return;
    following = true;
    const x = source.scrollLeft / Math.max(1, source.scrollWidth - source.clientWidth);
    const y = source.scrollTop / Math.max(1, source.scrollHeight - source.clientHeight);
    for (const other of loupe.querySelectorAll(".stage.zoomed")) {
      if (other === source) continue;
      other.scrollLeft = x * (other.scrollWidth - other.clientWidth);
      other.scrollTop = y * (other.scrollHeight - other.clientHeight);
    }
    setTimeout(() => (following = false), 30); // the scroll events it caused have fired
  }

  // Panes are rebuilt only when what they show changes (other photos, or the zoom), so a
  // decision or a live refresh keeps the place a zoomed view was scrolled to. (A loaded
  // image stays on screen after its signed URL expires.)
  let drawn = "";
  function drawLoupe() {
    const photo = byName.get(current);
    if (!photo) return;
    const position = `${shown.indexOf(current) + 1} / ${shown.length}`;
    document.getElementById("loupe-title").textContent = compared.length > 1 ? `Compare ${compared.length} photos` : photo.basename;
    document.getElementById("loupe-state").textContent = `${position} · ${zoomed ? "100 %" : "fit"} · ${photo.flag}, ${photo.rating} stars${photo.label ? `, ${photo.label}` : ""}`;
    const panes = document.getElementById("loupe-panes");
    const showing = JSON.stringify([zoomed, compared]);
    if (showing !== drawn || panes.children.length !== compared.length) {
      drawn = showing;
      panes.className = `loupe-panes n${compared.length}`;
      panes.replaceChildren(...compared.map((name) => pane(byName.get(name))));
    }
    for (const box of panes.children) {
      const shownPhoto = byName.get(box.dataset.basename);
      box.classList.toggle("active", box.dataset.basename === current);
      box.querySelector(".decisions").replaceWith(decisionMarks(shownPhoto));
    }
    drawBurstStrip(photo);
  }

  function drawBurstStrip(photo) {
    const strip = document.getElementById("burst-strip");
    const burst = photo.assist?.burst;
    strip.hidden = !burst || compared.length > 1;
    if (strip.hidden) return strip.replaceChildren();
    const frames = photos.filter((p) => p.assist?.burst === burst);
    strip.replaceChildren(
      ...frames.map((p) => {
        const img = el("img", { alt: p.basename, src: p.thumbnailUrl || "", width: 96, height: 96 });
        const item = el("li", { class: p.basename === current ? "current" : "", dataset: { basename: p.basename }, title: p.assist.reasons.join("; ") }, img, el("span", {}, p.assist.bestInBurst ? `★ ${p.basename}` : p.basename));
        item.addEventListener("click", () => showInLoupe(p.basename));
        return item;
      }),
    );
  }

  loupe.addEventListener("close", () => {
    compared = [];
    zoomed = false;
    drawn = "";
    document.getElementById("loupe-panes").replaceChildren();
    render();
    focusCurrent();
  });
  document.getElementById("loupe-close").addEventListener("click", () => loupe.close());

  // ---- keys --------------------------------------------------------------------------------
  document.addEventListener("keydown", (e) => {
    if (e.target.closest("input, select, textarea, button") && !e.target.closest("#loupe")) return;
    if (document.getElementById("confirm").open) return;
    if (e.altKey) return;
    const key = e.key;
    if ((e.ctrlKey || e.metaKey) && key.toLowerCase() === "a") {
      e.preventDefault();
      shown.forEach((n) => selected.add(n));
      render();
      focusCurrent();
      return;
    }
    if (e.ctrlKey || e.metaKey) return;
    const decision = decisionFor(key);
    if (decision) {
      e.preventDefault();
      if (!current && shown.length) current = shown[0];
      decide(decision);
      return;
    }
    const inLoupe = loupe.open;
    const move = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: inLoupe ? 1 : columns(), ArrowUp: inLoupe ? -1 : -columns() }[key];
    if (move !== undefined) {
      e.preventDefault();
      if (inLoupe && compared.length > 1) {
        const at = compared.indexOf(current);
        current = compared[(at + (move > 0 ? 1 : compared.length - 1)) % compared.length];
        drawLoupe();
      } else if (inLoupe) {
        const at = shown.indexOf(current);
        const next = shown[Math.min(shown.length - 1, Math.max(0, at + move))];
        if (next) showInLoupe(next);
      } else {
        step(move, e.shiftKey ? "range" : "only");
      }
      return;
    }
    if (key === " " && !inLoupe) {
      e.preventDefault();
      if (current) pointAt(current, "toggle");
    } else if (key === "Enter" || key.toLowerCase() === "e") {
      e.preventDefault();
      if (!inLoupe && current) openLoupe([current]);
    } else if (key.toLowerCase() === "c") {
      e.preventDefault();
      compareSelection();
    } else if (key.toLowerCase() === "z") {
      e.preventDefault();
      if (!inLoupe && current) openLoupe([current]);
      zoomed = !zoomed;
      drawLoupe();
    } else if (key.toLowerCase() === "g" && inLoupe) {
      loupe.close();
    } else if (key === "Escape" && !inLoupe && selected.size) {
      selected.clear();
      render();
      focusCurrent();
    }
  });

  function compareSelection() {
    const names = selected.size > 1 ? shown.filter((n) => selected.has(n)) : shown.slice(Math.max(0, shown.indexOf(current)), Math.max(0, shown.indexOf(current)) + 2);
    if (names.length < 2) return toast("Select two to four photos to compare.", true);
    if (names.length > 4) toast("Comparing the first four selected photos.");
    openLoupe(names);
  }

  // ---- the bar of filters and bulk actions -------------------------------------------------
  document.getElementById("filters").addEventListener("change", (e) => {
    if (e.target.id !== "auto-advance") applyFilters(false);
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
    render();
  });

  // ---- trash, commit, revert, process, uploads ---------------------------------------------
  async function loadTrash() {
    const { files } = await api(`${base}/trash`);
    document.getElementById("trash-empty").hidden = files.length > 0;
    document.getElementById("trash").replaceChildren(
      ...files.map((f) => {
        const restore = el("button", { type: "button", "aria-label": `Restore ${f.filename}` }, "Restore");
        restore.addEventListener("click", async () => {
          const done = await act(restore, () => api(`${base}/trash/restore`, { method: "POST", json: { filenames: [f.filename] } }));
          if (done && done.restored.length) toast(`${f.filename} restored`);
          else if (done) toast(`${f.filename}: ${Object.values(done.refused)[0]}`, true);
          load();
          loadTrash();
        });
        return el("li", { dataset: { filename: f.filename } }, el("span", { class: "grow" }, f.filename), el("span", { class: "muted" }, `${bytes(f.sizeBytes)}, trashed ${when(f.trashedAt)}`), restore);
      }),
    );
  }

  document.getElementById("commit").addEventListener("click", async (e) => {
    const button = e.currentTarget; // gone once the handler awaits
    const gone = leaving();
    const decided = photos.filter((p) => p.flag !== "unflagged" || p.rating || p.label).length;
    if (!gone.length && !decided) {
      toast("Nothing to commit: every file is kept and nothing is rated.");
      return;
    }
    const body = [
      el("p", {}, `Decisions are written to the .xmp sidecars of ${decided} photo(s) where they changed.`),
      el("p", {}, gone.length ? `${gone.length} file(s) will move to the project's trash (restorable from there):` : "No file moves to the trash."),
      el("ul", {}, ...gone.map((n) => el("li", {}, n))),
    ];
    const label = gone.length ? `Move ${gone.length} file(s) to the trash` : "Write sidecars";
    if (!(await confirm("Commit changes?", body, label, gone.length > 0))) return;
    const done = await act(button, () => api(`${base}/commit-changes`, { method: "POST" }), (r) => `${r.trashed.length} file(s) moved to the trash, ${r.sidecars.length} sidecar(s) written`);
    if (done) {
      for (const [name, why] of Object.entries(done.sidecars_refused)) toast(`${name} left as it is: ${why}`, true);
      load();
      loadTrash();
    }
  });

  document.getElementById("revert").addEventListener("click", async (e) => {
    const button = e.currentTarget;
    const unkept = photos.flatMap(unkeptFiles).length;
    const body = el("p", {}, unkept ? `Every keep flag goes back to the files that are there; ${unkept} file(s) will no longer be marked for the trash. Decisions (and so rejections) stay. Nothing moves.` : "Every keep flag already matches the files; nothing will change.");
    if (!(await confirm("Revert keep flags?", body, "Revert"))) return;
    const done = await act(button, () => api(`${base}/revert-changes`, { method: "POST" }), (r) => `${r.photosChanged} photo(s) reset`);
    if (done) load();
  });

  document.getElementById("process").addEventListener("click", (e) =>
    act(e.currentTarget, () => api(`${base}/process`, { method: "POST", json: {} }), (r) => `Job ${r.jobId} queued`),
  );

  uploader({
    zone: document.getElementById("dropzone"),
    input: document.getElementById("files"),
    list: document.getElementById("uploads"),
    url: `${base}/upload`,
    field: "files",
    onDone: (entry, body) => {
      const outcome = body.files[0] || {};
      entry.state.replaceChildren(outcome.error_code ? badge("FAILED") : badge(outcome.duplicate ? "duplicate" : "uploaded"), outcome.error_code ? ` ${outcome.error_code}` : "");
      load();
    },
  });

  const refresh = throttle(() => { load(); loadTrash(); }, 500);
  live({ project: folder }, refresh, refresh);
  load();
  loadTrash();
})();
