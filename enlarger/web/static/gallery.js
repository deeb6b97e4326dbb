// Gallery: every image, newest first, with live status badges, a viewer and uploads.
"use strict";
(() => {
  const { el, badge, api, act, confirm, live, uploader, placeholder, throttle, renewBeforeExpiry } = enlarger;
  const grid = document.getElementById("grid");
  const more = document.getElementById("more");
  const count = document.getElementById("image-count");
  const byCollection = document.getElementById("filter-collection");
  const byStatus = document.getElementById("filter-status");
  const names = document.getElementById("collection-names");
  const PAGE = 48;
  let images = []; // in grid order
  let total = 0;

  function card(image) {
    const img = el("img", {
      alt: image.title || image.originalFilename || "image",
      loading: "lazy",
      decoding: "async",
      width: 256,
      height: 256,
    });
    img.addEventListener("load", () => img.classList.add("loaded"));
    if (image.thumbnailUrl) img.src = image.thumbnailUrl;
    const hash = placeholder(image.thumbhash);
    const open = el(
      "button",
      { type: "button", class: "thumb", "aria-label": `Open ${image.title || image.id}`, onclick: () => view(image.id) },
      img,
    );
    if (hash) open.style.backgroundImage = `url(${hash})`;
    const caption = el(
      "div",
      { class: "caption" },
      el("span", { class: "title", title: image.title || "" }, image.title || image.originalFilename || image.id),
      badge(image.status),
      image.errorCode ? el("span", { class: "error" }, image.errorCode) : null,
      image.status === "FAILED"
        ? el("button", { type: "button", class: "quiet", "aria-label": `Remove ${image.title || image.originalFilename || image.id}`, onclick: (e) => remove(image, e.currentTarget) }, "Remove")
        : null,
    );
    return el("li", { class: "card", dataset: { id: image.id, status: image.status } }, open, caption);
  }

  function render() {
    grid.replaceChildren(...images.map(card));
    count.textContent = `(${total})`;
    more.hidden = images.length >= total;
    renewBeforeExpiry(images.map((i) => i.thumbnailUrl), renew);
  }

  function query(offset, limit = PAGE) {
    const params = new URLSearchParams({ limit, offset });
    if (byCollection.value) params.set("collection", byCollection.value);
    if (byStatus.value) params.set("status", byStatus.value);
    return `/api/images?${params}`;
  }

  // The first page, the next one (`append`), or every image shown again (`limit`).
  async function load(append = false, limit = PAGE) {
    const page = await api(query(append ? images.length : 0, limit));
    images = append ? images.concat(page.data) : page.data;
    total = page.count;
    const chosen = byCollection.value;
    byCollection.replaceChildren(el("option", { value: "" }, "all"), ...page.collections.map((c) => el("option", { value: c, selected: c === chosen }, c)));
    names.replaceChildren(...page.collections.map((c) => el("option", { value: c })));
    render();
    images.forEach(showUploadStatus);
  }

  // The images shown, again, with thumbnail URLs that have not expired.
  const renew = () => load(false, Math.max(images.length, PAGE));

  function matches(image) {
    return (!byCollection.value || image.collection === byCollection.value) && (!byStatus.value || image.status === byStatus.value);
  }

  const recount = throttle(() => load(false, Math.max(images.length, PAGE)), 400);

  // An image deleted: its card and its count leave.
  function forget(imageId) {
    const at = images.findIndex((i) => i.id === imageId);
    if (at < 0) {
      // on a page not loaded: whether the filters counted it, only the server knows
      if (images.length < total) recount();
      return;
    }
    images.splice(at, 1);
    total--;
    grid.querySelector(`[data-id="${CSS.escape(imageId)}"]`)?.remove();
    count.textContent = `(${total})`;
  }

  // An image changed: refresh its card in place (or add it where it sorts, when new).
  async function refresh(imageId) {
    let image;
    try {
      image = await api(`/api/images/${encodeURIComponent(imageId)}`);
    } catch {
      return; // deleted meanwhile
    }
    const at = images.findIndex((i) => i.id === imageId);
    if (at >= 0 && !matches(image)) {
      forget(imageId);
    } else if (at >= 0) {
      images[at] = image;
      grid.querySelector(`[data-id="${CSS.escape(imageId)}"]`)?.replaceWith(card(image));
    } else if (matches(image)) {
      const slot = slotFor(image);
      if (slot >= 0) {
        const after = images[slot];
        images.splice(slot, 0, image);
        total++;
        grid.insertBefore(card(image), after ? grid.querySelector(`[data-id="${CSS.escape(after.id)}"]`) : null);
      }
    }
    count.textContent = `(${total})`;
    showUploadStatus(image);
  }

  // The grid's order, the API's: newest upload first, then by id.
  function sortsBefore(a, b) {
    const at = Date.parse(a.uploadedAt), bt = Date.parse(b.uploadedAt);
    return at > bt || (at === bt && a.id < b.id);
  }

  // Where a card not shown belongs: before the first shown card it sorts before. Sorting
  // after them all, it is a new image only when every image is shown; else it is an
  // older one on a page not loaded (its STORED event, say): not new, not counted again.
  function slotFor(image) {
    const at = images.findIndex((shown) => sortsBefore(image, shown));
    if (at >= 0) return at;
    return images.length >= total ? images.length : -1;
  }

  // An upload's row follows its image to STORED (or FAILED, with the reason).
  function showUploadStatus(image) {
    for (const row of document.querySelectorAll(`#uploads li[data-image-id="${CSS.escape(image.id)}"]`)) {
      row.querySelector(".state").replaceChildren(badge(image.status), image.errorCode ? ` ${image.errorCode}` : "");
    }
  }

  // ---- the viewer -----------------------------------------------------------------------
  const viewer = document.getElementById("viewer");
  let viewing = null;

  async function view(imageId) {
    viewing = imageId;
    const image = await api(`/api/images/${encodeURIComponent(imageId)}`);
    document.getElementById("viewer-title").textContent = image.title || image.originalFilename || image.id;
    const shown = document.getElementById("viewer-img");
    shown.alt = image.title || "image";
    shown.src = image.previewUrl || image.thumbnailUrl || image.originalUrl || "";
    const facts = [
      ["Status", image.status + (image.errorCode ? ` (${image.errorCode}: ${image.errorMessage})` : "")],
      ["File", image.originalFilename],
      ["Collection", image.collection],
      ["Size", image.width ? `${image.width} × ${image.height}, ${enlarger.bytes(image.sizeBytes)}` : enlarger.bytes(image.sizeBytes)],
      ["Format", image.format],
      ["Taken", image.takenAt],
      ["Camera", [image.cameraMake, image.cameraModel].filter(Boolean).join(" ")],
    ].filter(([, v]) => v);
    document.getElementById("viewer-meta").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
    if (!viewer.open) viewer.showModal();
  }

  // Delete an image (its original goes to the project's trash), after asking.
  async function remove(image, button) {
    const name = image.title || image.originalFilename || image.id;
    const body = el("p", {}, image.status === "FAILED" ? `${name} failed (${image.errorCode}); it leaves the gallery, and any file it kept goes to the project's trash.` : `${name}'s original goes to the project's trash; its thumbnails and preview are deleted.`);
    if (!(await confirm(`Delete ${name}?`, body, "Delete", true))) return;
    const deleted = () => api(`/api/images/${encodeURIComponent(image.id)}`, { method: "DELETE" }).then(() => true);
    if (!(await act(button, deleted, `${name} deleted`))) return;
    if (viewing === image.id && viewer.open) viewer.close();
    const at = images.findIndex((i) => i.id === image.id);
    if (at >= 0) {
      images.splice(at, 1);
      total--;
    }
    grid.querySelector(`[data-id="${CSS.escape(image.id)}"]`)?.remove();
    count.textContent = `(${total})`;
  }

  function step(by) {
    const at = images.findIndex((i) => i.id === viewing);
    const next = images[at + by];
    if (next) view(next.id);
  }

  document.getElementById("viewer-prev").addEventListener("click", () => step(-1));
  document.getElementById("viewer-next").addEventListener("click", () => step(1));
  document.getElementById("viewer-close").addEventListener("click", () => viewer.close());
  document.getElementById("viewer-delete").addEventListener("click", (e) => {
    const image = images.find((i) => i.id === viewing);
    if (image) remove(image, e.currentTarget);
  });
  viewer.addEventListener("keydown", (e) => {
    if (e.key === "ArrowLeft") step(-1);
    if (e.key === "ArrowRight") step(1);
  });
  viewer.addEventListener("close", () => grid.querySelector(`[data-id="${CSS.escape(viewing || "")}"] .thumb`)?.focus());

  // ---- uploads --------------------------------------------------------------------------
  uploader({
    zone: document.getElementById("dropzone"),
    input: document.getElementById("files"),
    list: document.getElementById("uploads"),
    url: "/api/upload",
    field: "file",
    fields: () => ({ collection: document.getElementById("upload-collection").value.trim() }),
    onDone: (entry, body) => {
      entry.row.dataset.imageId = body.imageId;
      entry.state.replaceChildren(badge(body.status));
      refresh(body.imageId);
    },
  });

  more.addEventListener("click", () => load(true));
  byCollection.addEventListener("change", () => load());
  byStatus.addEventListener("change", () => load());
  // Changed images are refreshed one by one, a few at a time; a burst (a bulk import)
  // reloads the page instead of asking for each image.
  const changed = new Set();
  const flush = throttle(() => {
    const ids = [...changed];
    changed.clear();
    if (ids.length > 12) load();
    else ids.forEach(refresh);
  }, 400);
  live({ type: "image" }, (event) => {
    if (event.status === "DELETED") forget(event.imageId); // gone to the trash: nothing to ask
    else {
      changed.add(event.imageId);
      flush();
    }
  }, () => load());
  load();
})();
