// The loupe: one photo as large as the window allows, or two to four side by side to
// compare, each at 100 % where you click (or with Z), the place you zoomed to kept from
// one photo to the next. The previews of the photos before and after are fetched and
// decoded ahead, so the next photo shows at once; so are their camera details.
"use strict";
(() => {
  const { el, api, toast } = enlarger;
  const BROWSER_FORMATS = new Set(["jpeg", "png", "webp", "gif", "avif"]);
  const AHEAD = 2; // photos fetched ahead on each side
  const KEPT = 12; // decoded previews kept at most

  function createLoupe({ dialog, photoOf, neighbours, burstOf, marks, onActivate, onDraw }) {
    const panes = dialog.querySelector("#loupe-panes");
    let compared = [];
    let current = null;
    let zoomed = false;
    let point = { x: 0.5, y: 0.5, vx: 0.5, vy: 0.5 }; // image fraction, and where in view
    let drawn = "";
    const previews = new Map(); // URL → a decoded Image (most recent last)
    const images = new Map(); // image id → its API record (camera details, format, original)
    const originals = new Map(); // base name → the URL that shows it at 100 %

    function prefetch(url) {
      if (!url || previews.has(url)) return;
      const image = new Image();
      image.decoding = "async";
      image.src = url;
      image.decode().catch(() => {}); // a failed one just is not ready ahead
      previews.set(url, image);
      while (previews.size > KEPT) previews.delete(previews.keys().next().value);
    }

    function record(photo) {
      const file = photo && photo.files.find((f) => f.filename === photo.source);
      if (!file) return Promise.resolve(null);
      if (!images.has(file.imageId)) {
        images.set(file.imageId, api(`/api/images/${encodeURIComponent(file.imageId)}`).catch(() => null));
      }
      return images.get(file.imageId);
    }

    // `whileRendering` runs once if the server has to render the view first (a worker
    // does it; the preview can stand in meanwhile).
    async function originalUrl(photo, whileRendering = () => {}) {
      if (originals.has(photo.basename)) return originals.get(photo.basename);
      const image = await record(photo);
      let url = photo.previewUrl;
      if (image) {
        if (BROWSER_FORMATS.has(image.format) && image.originalUrl) url = image.originalUrl;
        else url = (await fullView(image.id, whileRendering)) || url;
      }
      originals.set(photo.basename, url);
      return url;
    }

    // Ask until the worker has rendered it (202 with Retry-After until then); null when it
    // cannot be rendered, or takes over two minutes.
    async function fullView(id, whileRendering) {
      const deadline = Date.now() + 120000;
      for (let asked = 0; ; asked += 1) {
        const view = await api(`/api/images/${encodeURIComponent(id)}/full-view`);
        if (view.status === "done") return view.url;
        if (view.status === "failed") {
          toast(`No 100 % view: ${view.error || view.errorCode}`, true);
          return null;
        }
        if (Date.now() > deadline) return null;
        if (asked === 0) whileRendering();
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }

    // ---- zoom -----------------------------------------------------------------------------
    function aim(stage, img) {
      stage.scrollLeft = point.x * img.naturalWidth - point.vx * stage.clientWidth;
      stage.scrollTop = point.y * img.naturalHeight - point.vy * stage.clientHeight;
    }

    function zoomAt(event, stage, img) {
      const box = img.getBoundingClientRect();
      const frame = stage.getBoundingClientRect();
      point = {
        x: Math.min(1, Math.max(0, (event.clientX - box.left) / box.width)),
        y: Math.min(1, Math.max(0, (event.clientY - box.top) / box.height)),
        vx: (event.clientX - frame.left) / frame.width,
        vy: (event.clientY - frame.top) / frame.height,
      };
      setZoom(true);
    }

    function setZoom(on) {
      zoomed = on;
      drawn = "";
      draw();
    }

    // Compared photos zoom together: scrolling one scrolls the others to the same place.
    let following = false;
    function follow(source) {
      if (following) return;
      following = true;
      const img = source.querySelector("img");
      if (img && img.naturalWidth) {
        point = {
          x: (source.scrollLeft + point.vx * source.clientWidth) / img.naturalWidth,
          y: (source.scrollTop + point.vy * source.clientHeight) / img.naturalHeight,
          vx: point.vx,
          vy: point.vy,
        };
      }
      for (const other of panes.querySelectorAll(".stage.zoomed")) {
        if (other === source) continue;
        const otherImg = other.querySelector("img");
        if (otherImg && otherImg.naturalWidth) aim(other, otherImg);
      }
      requestAnimationFrame(() => (following = false));
    }

    // ---- drawing --------------------------------------------------------------------------
    // Another photo in an image element: until its pixels are decoded the element shows
    // nothing (never the last photo's pixels under this one's name), unless they were
    // fetched and decoded ahead.
    function showImage(img, name, url) {
      if (!url || img.closest(".pane")?.dataset.basename !== name) return; // moved on since
      delete img.dataset.shown;
      if (img.getAttribute("src") !== url) {
        const ahead = previews.get(url) || (originalAhead?.getAttribute("src") === url ? originalAhead : null);
        const ready = ahead && ahead.complete && ahead.naturalWidth;
        img.style.visibility = ready ? "" : "hidden";
        img.src = url;
        if (ready) img.dataset.shown = name; // decoded ahead: it shows with the next frame
      }
      const done = () => {
        if (img.getAttribute("src") !== url) return;
        img.style.visibility = "";
        img.dataset.shown = name;
      };
      img.decode().then(done, done);
    }

    function pane(name) {
      const photo = photoOf(name);
      const img = el("img", { alt: name, draggable: "false" });
      const stage = el("div", { class: zoomed ? "stage zoomed" : "stage" }, img);
      const caption = el("div", { class: "pane-caption" }, el("strong", {}, name), marks(photo));
      const box = el("figure", { class: "pane", dataset: { basename: name } }, stage, caption);
      let dragged = false; // a drag pans a zoomed view; only a click zooms out
      stage.addEventListener("pointerdown", (down) => {
        if (!zoomed || down.button !== 0) return;
        dragged = false;
        const from = { x: down.clientX, y: down.clientY, left: stage.scrollLeft, top: stage.scrollTop };
        const pan = (move) => {
          const dx = move.clientX - from.x;
          const dy = move.clientY - from.y;
          if (Math.abs(dx) + Math.abs(dy) > 4) {
            dragged = true;
            stage.classList.add("dragging");
          }
          stage.scrollLeft = from.left - dx;
          stage.scrollTop = from.top - dy;
        };
        const stop = () => {
          stage.classList.remove("dragging");
          window.removeEventListener("pointermove", pan);
          window.removeEventListener("pointerup", stop);
        };
        window.addEventListener("pointermove", pan);
        window.addEventListener("pointerup", stop);
      });
      stage.addEventListener("click", (event) => {
        if (dragged) return;
        if (compared.length > 1 && name !== current) onActivate(name);
        else if (zoomed) setZoom(false);
        else zoomAt(event, stage, img);
      });
      if (zoomed) {
        stage.addEventListener("scroll", () => follow(stage));
        img.addEventListener("load", () => aim(stage, img));
        originalUrl(photo, () => showImage(img, name, photo.previewUrl))
          .then((url) => showImage(img, name, url))
          .catch((error) => toast(`No 100 % view of ${name}: ${error.message}`, true));
      } else {
        showImage(img, name, photo.previewUrl || photo.thumbnailUrl);
      }
      return box;
    }

    function draw() {
      const photo = photoOf(current);
      if (!photo) return;
      const showing = JSON.stringify([zoomed, compared.length > 1 ? compared : []]);
      const single = compared.length === 1;
      if (showing !== drawn || panes.children.length !== compared.length) {
        drawn = showing;
        panes.className = `loupe-panes n${compared.length}`;
        panes.replaceChildren(...compared.map(pane));
      } else if (single) {
        redrawSingle(panes.firstElementChild, photo);
      }
      for (const box of panes.children) {
        box.classList.toggle("active", box.dataset.basename === current);
        box.querySelector(".decisions").replaceWith(marks(photoOf(box.dataset.basename)));
      }
      dialog.querySelector("#loupe-title").textContent =
        compared.length > 1 ? `Compare ${compared.length} photos` : current;
      info(photo);
      strip(photo);
      ahead();
      onDraw();
    }

    // One photo after another in one pane: the same elements, another image (already
    // decoded when it was fetched ahead); a zoomed view keeps its place.
    function redrawSingle(box, photo) {
      const name = photo.basename;
      if (box.dataset.basename === name) return;
      box.dataset.basename = name;
      box.querySelector(".pane-caption strong").textContent = name;
      const img = box.querySelector("img");
      img.alt = name;
      img.style.visibility = "hidden"; // not the last photo's pixels under this one's name
      delete img.dataset.shown;
      if (zoomed) {
        originalUrl(photo, () => showImage(img, name, photo.previewUrl)).then(
          (url) => showImage(img, name, url),
          (error) => toast(`No 100 % view of ${name}: ${error.message}`, true),
        );
      } else {
        showImage(img, name, photo.previewUrl || photo.thumbnailUrl);
      }
    }

    async function info(photo) {
      const line = dialog.querySelector("#loupe-info");
      const image = await record(photo);
      if (photo.basename !== current) return;
      const m = (image && image.metadata) || {};
      const parts = [
        camera(m.cameraMake, m.cameraModel),
        m.lens,
        m.focalLengthMm && `${m.focalLengthMm} mm`,
        m.exposureTimeSeconds && shutter(m.exposureTimeSeconds),
        m.aperture && `f/${m.aperture}`,
        m.iso && `ISO ${m.iso}`,
        m.takenAt && enlarger.shotAt(m.takenAt),
      ].filter(Boolean);
      line.textContent = parts.length ? parts.join(" · ") : "No camera details in this file.";
    }

    function strip(photo) {
      const list = dialog.querySelector("#burst-strip");
      const frames = compared.length > 1 ? [] : burstOf(photo);
      list.hidden = frames.length < 2;
      if (list.hidden) return list.replaceChildren();
      list.replaceChildren(
        ...frames.map((p) => {
          const item = el(
            "li",
            { class: p.basename === current ? "current" : "", dataset: { basename: p.basename }, title: (p.assist?.reasons || []).join("; ") },
            el("img", { alt: p.basename, src: p.thumbnailUrl || "", width: 96, height: 96 }),
            el("span", {}, p.assist?.bestInBurst ? `★ ${p.basename}` : p.basename),
          );
          item.addEventListener("click", () => onActivate(p.basename, true));
          return item;
        }),
      );
    }

    function ahead() {
      const next = neighbours(current, AHEAD);
      for (const name of next) {
        const photo = photoOf(name);
        if (!photo) continue;
        prefetch(photo.previewUrl);
        record(photo);
      }
      const following = photoOf(next[0]);
      if (zoomed && following) originalUrl(following).then(prefetchOriginal, () => {});
    }

    // The next photo at 100 %, one at a time: a decoded original is large.
    let originalAhead = null;
    function prefetchOriginal(url) {
      if (!url || originalAhead?.getAttribute("src") === url) return;
      originalAhead = new Image();
      originalAhead.decoding = "async";
      originalAhead.src = url;
      originalAhead.decode().catch(() => {});
    }

    function camera(make, model) {
      if (!model) return make;
      return make && !model.toLowerCase().startsWith(make.toLowerCase()) ? `${make} ${model}` : model;
    }

    function shutter(seconds) {
      return seconds >= 1 ? `${seconds} s` : `1/${Math.round(1 / seconds)} s`;
    }

    dialog.addEventListener("close", () => {
      compared = [];
      zoomed = false;
      drawn = "";
      panes.replaceChildren();
    });

    return {
      get open() { return dialog.open; },
      get zoomed() { return zoomed; },
      get compared() { return compared; },
      show(names, active) {
        compared = names.slice(0, 4);
        current = active;
        draw();
        if (!dialog.open) {
          dialog.showModal();
          panes.focus();
        }
      },
      // Another photo in the single view, or another pane made active in compare.
      move(name) {
        if (compared.length <= 1) compared = [name];
        current = name;
        draw();
      },
      refresh() {
        if (dialog.open) draw();
      },
      toggleZoom() {
        setZoom(!zoomed);
      },
      state() {
        return `${zoomed ? "100 %" : "fit"}`;
      },
      forget(basename) {
        originals.delete(basename);
      },
      close() {
        if (dialog.open) dialog.close();
      },
    };
  }

  enlarger.createLoupe = createLoupe;
})();
