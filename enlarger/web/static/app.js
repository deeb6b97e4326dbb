// enlarger dashboard: helpers every page uses. Plain JS, no build step, no framework.
"use strict";

const enlarger = (() => {
  // ---- DOM ----------------------------------------------------------------------------
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function badge(status) {
    return el("span", { class: `badge s-${status}` }, status);
  }

  function toast(message, bad = false) {
    const note = el("div", { class: bad ? "toast bad" : "toast" }, message);
    document.getElementById("toasts").append(note);
    setTimeout(() => note.remove(), bad ? 8000 : 4000);
  }

  function debounce(fn, ms) {
    let timer = null;
    return (...args) => {
      clearTimeout(timer);
      timer = setTimeout(() => fn(...args), ms);
    };
  }

  // At most one run per `ms`, and always one after the last call: a busy event stream
  // (thousands of events a second) refreshes a page steadily instead of never.
  function throttle(fn, ms) {
    let timer = null;
    let again = false;
    return () => {
      if (timer) {
        again = true;
        return;
      }
      fn();
      timer = setTimeout(function tick() {
        if (again) {
          again = false;
          fn();
          timer = setTimeout(tick, ms);
        } else {
          timer = null;
        }
      }, ms);
    };
  }

  function when(iso) {
    return iso ? new Date(iso).toLocaleString() : "–";
  }

  // A capture time as a photographer reads it: "2026-06-13 14:00:00.10 (+02:00)", to the
  // hundredth of a second when the camera recorded fractions.
  function shotAt(iso) {
    const found = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.(\d+))?([+-]\d\d:\d\d|Z)?$/.exec(iso || "");
    if (!found) return iso || "";
    const [, date, time, fraction, zone] = found;
    return `${date} ${time}${fraction ? `.${fraction.slice(0, 2)}` : ""}${zone && zone !== "Z" ? ` (${zone})` : ""}`;
  }

  function bytes(n) {
    if (n === null || n === undefined) return "–";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
  }

  // ---- the API ------------------------------------------------------------------------
  async function api(path, options = {}) {
    const init = { credentials: "same-origin", headers: { Accept: "application/json" }, ...options };
    if (options.json !== undefined) {
      init.body = JSON.stringify(options.json);
      init.headers["Content-Type"] = "application/json";
    }
    const response = await fetch(path, init);
    if (response.status === 401) {
      location.href = `/login?next=${encodeURIComponent(location.pathname)}`;
      throw new Error("sign in first");
    }
    const body = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
    if (!response.ok) {
      const detail = body && body.detail;
      throw new Error(typeof detail === "string" ? detail : `${response.status} ${response.statusText}`);
    }
    return body;
  }

  // Run an action from a button: disabled while it runs, errors shown, never lost.
  async function act(button, action, done) {
    button.disabled = true;
    try {
      const result = await action();
      if (done) toast(typeof done === "function" ? done(result) : done);
      return result;
    } catch (error) {
      toast(error.message, true);
      return null;
    } finally {
      button.disabled = false;
    }
  }

  // ---- confirmation -------------------------------------------------------------------
  function confirm(title, body, okLabel = "OK", danger = false) {
    const dialog = document.getElementById("confirm");
    document.getElementById("confirm-title").textContent = title;
    document.getElementById("confirm-body").replaceChildren(...[body].flat());
    const ok = document.getElementById("confirm-ok");
    ok.textContent = okLabel;
    ok.className = danger ? "danger" : "primary";
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
      dialog.returnValue = "";
      dialog.showModal();
      ok.focus();
    });
  }

  // ---- live events --------------------------------------------------------------------
  // One EventSource per page; `onEvent` gets each event, `onResync` runs when the
  // server says the history we would resume from is gone (read everything afresh).
  function live(params, onEvent, onResync) {
    const indicator = document.getElementById("live");
    const query = new URLSearchParams(params).toString();
    const source = new EventSource(`/api/jobs/stream${query ? `?${query}` : ""}`);
    const show = (on, text) => {
      if (!indicator) return;
      indicator.textContent = text;
      indicator.className = `live ${on ? "on" : "off"}`;
    };
    source.addEventListener("open", () => show(true, "live"));
    source.addEventListener("error", () => show(false, "reconnecting…"));
    source.addEventListener("message", (message) => onEvent(JSON.parse(message.data)));
    source.addEventListener("resync", () => (onResync || (() => {}))());
    return source;
  }

  // ---- uploads ------------------------------------------------------------------------
  // Drag-and-drop and a file input feed one queue; each file gets a row with its own
  // progress bar (XMLHttpRequest reports upload progress; fetch does not).
  function uploader({ zone, input, list, url, field, fields = () => ({}), onDone }) {
    const waiting = [];
    let active = 0;
    const PARALLEL = 3;

    function add(files) {
      for (const file of files) {
        const bar = el("progress", { max: 100, value: 0, "aria-label": `Upload of ${file.name}` });
        const state = el("span", { class: "state" }, "waiting");
        const row = el("li", { dataset: { name: file.name } }, el("span", { class: "name", title: file.name }, file.name), bar, state);
        list.prepend(row);
        waiting.push({ file, bar, state, row });
      }
      pump();
    }

    function pump() {
      while (active < PARALLEL && waiting.length) {
        active++;
        send(waiting.shift()).finally(() => { active--; pump(); });
      }
    }

    function send(entry) {
      return new Promise((resolve) => {
        const form = new FormData();
        form.append(field, entry.file, entry.file.name);
        for (const [key, value] of Object.entries(fields())) if (value) form.append(key, value);
        const xhr = new XMLHttpRequest();
        xhr.open("POST", url);
        xhr.setRequestHeader("Accept", "application/json");
        xhr.upload.addEventListener("progress", (e) => {
          if (!e.lengthComputable) return;
          entry.bar.value = Math.round((100 * e.loaded) / e.total);
          entry.state.textContent = `${entry.bar.value}%`;
        });
        xhr.addEventListener("load", () => {
          let body = null;
          try { body = JSON.parse(xhr.responseText); } catch { body = null; }
          entry.bar.value = 100;
          if (xhr.status >= 200 && xhr.status < 300) {
            entry.row.dataset.uploaded = "true";
            onDone(entry, body);
          } else {
            const reason = body && (body.errorCode || body.detail);
            entry.state.replaceChildren(badge("FAILED"), ` ${reason || xhr.status}`);
            entry.row.dataset.failed = "true";
          }
          resolve();
        });
        xhr.addEventListener("error", () => {
          entry.state.replaceChildren(badge("FAILED"), " network error");
          resolve();
        });
        xhr.send(form);
      });
    }

    input.addEventListener("change", () => { add(input.files); input.value = ""; });
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      zone.classList.remove("over");
      add(e.dataTransfer.files);
    });
    return { add };
  }

  // ---- thumbhash ----------------------------------------------------------------------
  // Decodes a ThumbHash (https://evanw.github.io/thumbhash/) to RGBA pixels: the blurred
  // placeholder a card shows until its thumbnail has loaded.
  function thumbhashToRGBA(hash) {
    const { PI, min, max, cos, round } = Math;
    const header24 = hash[0] | (hash[1] << 8) | (hash[2] << 16);
    const header16 = hash[3] | (hash[4] << 8);
    const lDc = (header24 & 63) / 63;
    const pDc = ((header24 >> 6) & 63) / 31.5 - 1;
    const qDc = ((header24 >> 12) & 63) / 31.5 - 1;
    const lScale = ((header24 >> 18) & 31) / 31;
    const hasAlpha = header24 >> 23;
    const pScale = ((header16 >> 3) & 63) / 63;
    const qScale = ((header16 >> 9) & 63) / 63;
    const isLandscape = header16 >> 15;
    const lx = max(3, isLandscape ? (hasAlpha ? 5 : 7) : header16 & 7);
    const ly = max(3, isLandscape ? header16 & 7 : hasAlpha ? 5 : 7);
    const aDc = hasAlpha ? (hash[5] & 15) / 15 : 1;
    const aScale = (hash[5] >> 4) / 15;
    const acStart = hasAlpha ? 6 : 5;
    let acIndex = 0;
    const channel = (nx, ny, scale) => {
      const ac = [];
      for (let cy = 0; cy < ny; cy++) {
        for (let cx = cy ? 0 : 1; cx * ny < nx * (ny - cy); cx++, acIndex++) {
          const nibble = (hash[acStart + (acIndex >> 1)] >> ((acIndex & 1) << 2)) & 15;
          ac.push((nibble / 7.5 - 1) * scale);
        }
      }
      return ac;
    };
    const lAc = channel(lx, ly, lScale);
    const pAc = channel(3, 3, pScale * 1.25);
    const qAc = channel(3, 3, qScale * 1.25);
    const aAc = hasAlpha ? channel(5, 5, aScale) : null;
    const ratio = thumbhashAspect(hash);
    const w = round(ratio > 1 ? 32 : 32 * ratio);
    const h = round(ratio > 1 ? 32 / ratio : 32);
    const rgba = new Uint8ClampedArray(w * h * 4);
    const fx = [];
    const fy = [];
    for (let y = 0, i = 0; y < h; y++) {
      for (let x = 0; x < w; x++, i += 4) {
        let l = lDc, p = pDc, q = qDc, a = aDc;
        for (let cx = 0, n = max(lx, hasAlpha ? 5 : 3); cx < n; cx++) fx[cx] = cos((PI / w) * (x + 0.5) * cx);
        for (let cy = 0, n = max(ly, hasAlpha ? 5 : 3); cy < n; cy++) fy[cy] = cos((PI / h) * (y + 0.5) * cy);
        for (let cy = 0, j = 0; cy < ly; cy++) {
          for (let cx = cy ? 0 : 1, fy2 = fy[cy] * 2; cx * ly < lx * (ly - cy); cx++, j++) l += lAc[j] * fx[cx] * fy2;
        }
        for (let cy = 0, j = 0; cy < 3; cy++) {
          for (let cx = cy ? 0 : 1, fy2 = fy[cy] * 2; cx < 3 - cy; cx++, j++) {
            const f = fx[cx] * fy2;
            p += pAc[j] * f;
            q += qAc[j] * f;
          }
        }
        if (aAc) {
          for (let cy = 0, j = 0; cy < 5; cy++) {
            for (let cx = cy ? 0 : 1, fy2 = fy[cy] * 2; cx < 5 - cy; cx++, j++) a += aAc[j] * fx[cx] * fy2;
          }
        }
        const b = l - (2 / 3) * p;
        const r = (3 * l - b + q) / 2;
        const g = r - q;
        rgba[i] = max(0, 255 * min(1, r));
        rgba[i + 1] = max(0, 255 * min(1, g));
        rgba[i + 2] = max(0, 255 * min(1, b));
        rgba[i + 3] = max(0, 255 * min(1, a));
      }
    }
    return { w, h, rgba };
  }

  function thumbhashAspect(hash) {
    const header = hash[3];
    const hasAlpha = hash[2] & 0x80;
    const isLandscape = hash[4] & 0x80;
    const lx = isLandscape ? (hasAlpha ? 5 : 7) : header & 7;
    const ly = isLandscape ? header & 7 : hasAlpha ? 5 : 7;
    return lx / ly;
  }

  const placeholders = new Map();
  function placeholder(base64) {
    if (!base64) return null;
    if (!placeholders.has(base64)) {
      const hash = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
      const { w, h, rgba } = thumbhashToRGBA(hash);
      const canvas = document.createElement("canvas");
      canvas.width = w;
      canvas.height = h;
      canvas.getContext("2d").putImageData(new ImageData(rgba, w, h), 0, 0);
      placeholders.set(base64, canvas.toDataURL());
    }
    return placeholders.get(base64);
  }

  // ---- signed URLs ------------------------------------------------------------------------
  // Blob URLs are signed and expire (url_expiry_seconds), so a page left open asks for fresh
  // ones shortly before the first of them does. Ours carry `expires` (Unix seconds); S3's
  // carry X-Amz-Date and X-Amz-Expires.
  function urlExpiry(url) {
    const query = new URL(url, location.href).searchParams;
    if (query.has("expires")) return Number(query.get("expires")) * 1000;
    const signedAt = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(query.get("X-Amz-Date") || "");
    if (!signedAt || !query.has("X-Amz-Expires")) return Infinity;
    const [, y, mo, d, h, mi, s] = signedAt.map(Number);
    return Date.UTC(y, mo - 1, d, h, mi, s) + Number(query.get("X-Amz-Expires")) * 1000;
  }

  const renewals = new Map(); // a page's renew function → its timer
  function renewBeforeExpiry(urls, renew) {
    clearTimeout(renewals.get(renew));
    const first = Math.min(...urls.filter(Boolean).map(urlExpiry));
    if (!Number.isFinite(first)) return;
    const left = first - Date.now();
    renewals.set(renew, setTimeout(renew, Math.max(1000, left - Math.min(60_000, left / 4))));
  }

  return { el, badge, toast, debounce, throttle, when, shotAt, bytes, api, act, confirm, live, uploader, thumbhashToRGBA, placeholder, urlExpiry, renewBeforeExpiry };
})();
