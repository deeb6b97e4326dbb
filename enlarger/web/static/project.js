// One project: photos as JPG/RAW pairs with keep toggles, commit and revert (each
// confirmed with what it will do), uploads, and the trash with restore.
"use strict";
(() => {
  const { el, badge, api, act, confirm, live, uploader, throttle, toast, when, bytes, renewBeforeExpiry } = enlarger;
  const folder = document.getElementById("project").dataset.folder;
  const base = `/api/projects/${encodeURIComponent(folder)}`;
  const list = document.getElementById("photos");
  const pending = document.getElementById("pending-changes");
  let photos = [];

  // The files commit-changes would move to the trash: those whose keep flag is off.
  function leaving() {
    return photos.flatMap((p) => p.files.filter((f) => (f.role === "jpg" ? !p.keep_jpg : !p.keep_raw)).map((f) => f.filename));
  }

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
          photos[photos.findIndex((p) => p.basename === photo.basename)] = saved;
          render();
          document.getElementById(id)?.focus();
        } else {
          box.checked = !box.checked;
        }
      },
    });
    return el("label", { for: id }, box, `Keep ${role.toUpperCase()}`);
  }

  function photoCard(photo) {
    const img = el("img", { alt: photo.basename, loading: "lazy", width: 256, height: 256 });
    img.addEventListener("load", () => img.classList.add("loaded"));
    if (photo.thumbnailUrl) img.src = photo.thumbnailUrl;
    const files = photo.files.map((f) => el("span", {}, `${f.filename} `, badge(f.status)));
    const dropped = photo.files.some((f) => (f.role === "jpg" ? !photo.keep_jpg : !photo.keep_raw));
    return el(
      "li",
      { class: dropped ? "card photo dropped" : "card photo", dataset: { basename: photo.basename } },
      el("a", { class: "thumb", href: photo.previewUrl || "#", "aria-label": `Preview of ${photo.basename}`, target: "_blank", rel: "noopener" }, img),
      el("div", { class: "caption" }, el("strong", { class: "title" }, photo.basename), ...files, el("span", { class: "muted" }, photo.files.length ? `thumbnail ${photo.thumbnail_status}, preview ${photo.preview_status}` : "no file left: restore one from the trash")),
      el("div", { class: "keep" }, toggle(photo, "jpg"), toggle(photo, "raw")),
    );
  }

  function render() {
    list.replaceChildren(...photos.map(photoCard));
    document.getElementById("photo-count").textContent = `(${photos.length})`;
    const gone = leaving();
    pending.textContent = gone.length ? `${gone.length} file(s) marked to go to the trash` : "no pending changes";
    renewBeforeExpiry(photos.flatMap((p) => [p.thumbnailUrl, p.previewUrl]), load);
  }

  async function load() {
    ({ photos } = await api(`${base}/photos`));
    render();
  }

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
    if (!gone.length) {
      toast("Nothing to commit: every file is kept.");
      return;
    }
    const body = [el("p", {}, `${gone.length} file(s) will move to the project's trash (restorable from there):`), el("ul", {}, ...gone.map((n) => el("li", {}, n)))];
    if (!(await confirm("Commit changes?", body, `Move ${gone.length} file(s) to the trash`, true))) return;
    const done = await act(button, () => api(`${base}/commit-changes`, { method: "POST" }), (r) => `${r.trashed.length} file(s) moved to the trash`);
    if (done) {
      load();
      loadTrash();
    }
  });

  document.getElementById("revert").addEventListener("click", async (e) => {
    const button = e.currentTarget;
    const gone = leaving();
    const body = el("p", {}, gone.length ? `Every keep flag goes back to the files that are there; ${gone.length} file(s) will no longer be marked for the trash. Nothing moves.` : "Every keep flag already matches the files; nothing will change.");
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
