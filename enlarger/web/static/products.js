// Product jobs: each job's stage, its composites and costs, and the totals. Live.
"use strict";
(() => {
  const { el, badge, api, live, debounce, throttle, when } = enlarger;
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
    document.getElementById("avg-duration").textContent = stats.avgDurationS === null ? "–" : `${stats.avgDurationS.toFixed(1)} s`;
    document.getElementById("cost").textContent = `$${stats.totalCostUsd.toFixed(4)}`;
    if (byStatus.options.length === 1) {
      byStatus.append(...Object.keys(stats.byStatus).map((s) => el("option", { value: s }, s)));
    }
  }

  function stages(job) {
    const at = STAGES.indexOf(job.status);
    const failedAt = job.status === "FAILED";
    return el(
      "ol",
      { class: "stages", "aria-label": `Stages of ${job.sku}` },
      ...STAGES.map((stage, i) => {
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

  async function load() {
    const params = new URLSearchParams({ limit: 100 });
    if (byStatus.value) params.set("status", byStatus.value);
    if (bySku.value.trim()) params.set("sku", bySku.value.trim());
    const { jobs } = await api(`/api/product-jobs?${params}`);
    list.replaceChildren(...(jobs.length ? jobs.map(row) : [el("li", { class: "muted" }, "No product job yet.")]));
  }

  byStatus.addEventListener("change", load);
  bySku.addEventListener("input", debounce(load, 300));
  const refresh = throttle(() => { load(); loadStats(); }, 500);
  live({ type: "product" }, refresh, refresh);
  loadStats().then(load);
})();
