// Product jobs: the cut-outs waiting for review (accept, reject, or cut out again), each
// job's stage, its composites and costs, and the totals. Live.
"use strict";
(() => {
  const { el, badge, api, act, live, debounce, throttle, when } = enlarger;
  const STAGES = ["NEW", "QUEUED", "SEGMENTING", "BG_GENERATING", "COMPOSITING", "PUBLISHING", "DONE"];
  const list = document.getElementById("product-jobs");
  const byStatus = document.getElementById("filter-status");
  const bySku = document.getElementById("filter-sku");
  const open = new Set(); // jobs whose details are shown

  async function loadStats() {
    const stats = await api("/api/product-jobs/stats");
    document.getElementById("total").textContent = stats.total;
    document.getElementById("done").textContent = stats.byStatus.DONE;
    document.getElementById("failure-rate").textContent = `${(100 * stats.failureRate).toFixed(1)} %`;
    document.getElementById("cutout-failure-rate").textContent = `${(100 * stats.cutoutFailureRate).toFixed(1)} %`;
    document.getElementById("avg-duration").textContent = stats.avgDurationS === null ? "–" : `${stats.avgDurationS.toFixed(1)} s`;
    document.getElementById("cost").textContent = `$${stats.totalCostUsd.toFixed(4)}`;
    if (byStatus.options.length === 1) {
      byStatus.append(...Object.keys(stats.byStatus).map((s) => el("option", { value: s }, s)));
    }
  }

  function stages(job) {
    const held = job.status === "NEEDS_REVIEW";
    const at = STAGES.indexOf(held ? "PUBLISHING" : job.status);
    const failedAt = job.status === "FAILED";
    return el(
      "ol",
      { class: "stages", "aria-label": `Stages of ${job.sku}` },
      ...STAGES.map((stage, i) => {
        if (held && stage === "PUBLISHING") return el("li", { class: "current", "aria-current": "step" }, "NEEDS_REVIEW");
        const state = failedAt ? "" : i < at || job.status === "DONE" ? "done" : i === at ? "current" : "";
        return el("li", { class: state, "aria-current": i === at && !failedAt ? "step" : null }, stage);
      }),
      failedAt ? el("li", { class: "failed" }, `FAILED: ${job.errorCode}`) : null,
    );
  }

  function details(job) {
    return el(
      "div",
      { class: "composites", id: `details-${job.id}` },
      ...job.composites.map((c) => el("figure", {}, el("a", { href: c.url, target: "_blank", rel: "noopener" }, el("img", { src: c.thumbUrl || c.url, alt: `${job.sku} ${c.name}`, loading: "lazy" })), el("figcaption", {}, `${c.name} ${c.width}×${c.height}`))),
      job.errorMessage ? el("p", { class: "error" }, job.errorMessage) : null,
      el("p", { class: "muted" }, job.costs.length ? job.costs.map((c) => `${c.stage} ${c.provider}: $${c.amountUsd}`).join(", ") : "no provider costs"),
    );
  }

  function row(job) {
    const shown = open.has(job.id);
    const toggle = el("button", { type: "button", "aria-expanded": String(shown), "aria-controls": `details-${job.id}` }, shown ? "Hide" : "Details");
    toggle.addEventListener("click", () => {
      if (open.has(job.id)) open.delete(job.id);
      else open.add(job.id);
      load();
    });
    return el(
      "li",
      { dataset: { jobId: job.id, status: job.status } },
      el("span", { class: "grow" }, el("strong", {}, job.sku), ` ${job.theme} · `, badge(job.status), ` · ${job.statusDescription}`, el("br"), el("span", { class: "muted" }, `$${job.costUsd} · created ${when(job.createdAt)}${job.durationS ? ` · ${job.durationS} s` : ""}`)),
      toggle,
      stages(job),
      shown ? details(job) : null,
    );
  }

  // ---- review: a person decides on a doubtful cut-out ---------------------------------
  const reviewSection = document.getElementById("review");
  const reviewList = document.getElementById("review-jobs");

  function concernList(job) {
    return el("ul", { class: "concerns" }, ...job.concerns.map((c) => el("li", { dataset: { code: c.code } }, el("strong", {}, c.code), ` ${c.message}`)));
  }

  function reviewItem(job) {
    const decide = (button, body, said) => act(button, () => api(`/api/product-jobs/${job.id}/review`, { method: "POST", json: body }), said).then(refresh);
    const accept = el("button", { type: "button", class: "primary" }, "Accept and publish");
    accept.addEventListener("click", () => decide(accept, { action: "accept" }, `${job.sku}: accepted`));
    const note = el("input", { type: "text", placeholder: "why (optional)", "aria-label": `Why reject ${job.sku}`, maxlength: 500 });
    const reject = el("button", { type: "button", class: "danger" }, "Reject");
    reject.addEventListener("click", () => decide(reject, { action: "reject", note: note.value.trim() || null }, `${job.sku}: rejected`));
    // offered first: the method that did not make this cut-out
    const methods = job.cutoutMethod === "backdrop" ? [["model", "the model"], ["backdrop", "backdrop removal"]] : [["backdrop", "backdrop removal"], ["model", "the model"]];
    const method = el("select", { "aria-label": `Method to cut ${job.sku} out again` }, ...[...methods, ["auto", "automatic"]].map(([value, label]) => el("option", { value }, label)));
    const rerun = el("button", { type: "button" }, "Cut out again");
    rerun.addEventListener("click", () => decide(rerun, { action: "rerun", method: method.value }, `${job.sku}: cutting out again`));
    const confidence = job.confidence === null ? "–" : `${Math.round(100 * job.confidence)} %`;
    return el(
      "li",
      { dataset: { jobId: job.id } },
      el("div", { class: "grow" },
        el("strong", {}, job.sku), ` · ${job.theme} · confidence ${confidence} · ${job.cutoutMethod || "?"}`,
        concernList(job),
        el("div", { class: "composites" },
          el("figure", {}, el("img", { src: job.urls.original, alt: `${job.sku}: the photo`, loading: "lazy" }), el("figcaption", {}, "photo")),
          el("figure", {}, el("img", { class: "checker", src: job.urls.cutout, alt: `${job.sku}: the cut-out`, loading: "lazy" }), el("figcaption", {}, "cut-out")),
          ...job.composites.slice(0, 2).map((c) => el("figure", {}, el("img", { src: c.thumbUrl || c.url, alt: `${job.sku} ${c.name}`, loading: "lazy" }), el("figcaption", {}, c.name))),
        ),
      ),
      el("div", { class: "actions" }, accept, el("span", { class: "row" }, note, reject), el("span", { class: "row" }, method, rerun)),
    );
  }

  async function loadReview() {
    const { jobs, pagination } = await api("/api/product-jobs?status=NEEDS_REVIEW&limit=50");
    reviewSection.hidden = jobs.length === 0;
    document.getElementById("review-count").textContent = String(pagination.total);
    reviewList.replaceChildren(...jobs.map(reviewItem));
  }

  async function load() {
    const params = new URLSearchParams({ limit: 100 });
    if (byStatus.value) params.set("status", byStatus.value);
    if (bySku.value.trim()) params.set("sku", bySku.value.trim());
    const { jobs } = await api(`/api/product-jobs?${params}`);
    list.replaceChildren(...(jobs.length ? jobs.map(row) : [el("li", { class: "muted" }, "No product job yet.")]));
  }

  byStatus.addEventListener("change", load);
  bySku.addEventListener("input", debounce(load, 300));
  const refresh = throttle(() => { load(); loadStats(); loadReview(); }, 500);
  live({ type: "product" }, refresh, refresh);
  loadStats().then(load).then(loadReview);
})();
