// Jobs: counts per type and lane, throughput, running jobs with progress, failures
// with their reasons; retry, cancel, pause/resume per type, backfill. All live.
"use strict";
(() => {
  const { el, badge, api, act, confirm, live, throttle, when } = enlarger;
  const STATUSES = ["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"];

  async function loadStats() {
    const stats = await api("/api/admin/jobs/stats");
    document.getElementById("throughput").textContent = `${stats.completedLastMinute} jobs`;
    document.getElementById("failed-minute").textContent = `${stats.failedLastMinute} jobs`;
    document.getElementById("lag").textContent = stats.queueLagSeconds === null ? "none" : `${stats.queueLagSeconds.toFixed(1)} s`;
    for (const lane of ["normal", "priority"]) {
      const counts = stats.lanes[lane];
      document.getElementById(`lane-${lane}`).textContent = `${counts.PENDING} / ${counts.RUNNING}`;
    }
    document.getElementById("type-rows").replaceChildren(
      ...Object.entries(stats.byType).map(([type, counts]) => {
        const paused = stats.paused.includes(type);
        const button = el("button", { type: "button", "aria-label": `${paused ? "Resume" : "Pause"} ${type}` }, paused ? "Resume" : "Pause");
        button.addEventListener("click", () =>
          act(button, () => api(`/api/admin/job-types/${encodeURIComponent(type)}/${paused ? "resume" : "pause"}`, { method: "POST" }), `${type} ${paused ? "resumed" : "paused"}`).then(loadStats),
        );
        return el(
          "tr",
          { dataset: { type } },
          el("th", { scope: "row" }, type),
          ...STATUSES.map((s) => el("td", { dataset: { status: s } }, counts[s] ?? 0)),
          el("td", {}, paused ? badge("paused") : "yes", " ", button),
        );
      }),
    );
  }

  function steer(job, what) {
    const button = el("button", { type: "button", class: what === "cancel" ? "danger" : "", "aria-label": `${what === "retry" ? "Retry" : "Cancel"} job ${job.id}` }, what === "retry" ? "Retry" : "Cancel");
    button.addEventListener("click", () =>
      act(button, () => api(`/api/admin/jobs/${job.id}/${what}`, { method: "POST" }), `Job ${job.id}: ${what === "retry" ? "queued again" : "cancelled"}`).then(refresh),
    );
    return button;
  }

  // One list of jobs in a status: `<status>` holds the rows, `<status>-empty` the note.
  async function loadList(status, limit, describe, action) {
    const { jobs } = await api(`/api/admin/jobs?status=${status}&limit=${limit}`);
    const id = status.toLowerCase();
    document.getElementById(`${id}-empty`).hidden = jobs.length > 0;
    document.getElementById(id).replaceChildren(
      ...jobs.map((job) => el("li", { dataset: { jobId: job.id } }, el("span", { class: "grow" }, ...describe(job)), ...action(job))),
    );
  }

  const loadRunning = () =>
    loadList(
      "RUNNING",
      100,
      (job) => [el("strong", {}, `#${job.id} ${job.type}`), ` on ${job.lockedBy || "?"} since ${when(job.lockedAt)}`],
      (job) => [el("progress", { class: "meter", max: 1, value: job.progress ?? 0, "aria-label": `Progress of job ${job.id}` }), steer(job, "cancel")],
    );

  const loadPending = () =>
    loadList(
      "PENDING",
      20,
      (job) => [el("strong", {}, `#${job.id} ${job.type}`), ` priority ${job.priority}, runs from ${when(job.runAt)}`, job.attempts ? `, attempt ${job.attempts + 1} of ${job.maxAttempts}` : ""],
      (job) => [steer(job, "cancel")],
    );

  const loadFailed = () =>
    loadList(
      "FAILED",
      100,
      (job) => [
        el("strong", {}, `#${job.id} ${job.type} `),
        badge(job.status),
        ` attempt ${job.attempts} of ${job.maxAttempts}, ${when(job.finishedAt)}`,
        el("br"),
        el("span", { class: "error reason" }, `${job.errorCode || "ERROR"}: ${job.lastError || "no message"}`),
      ],
      (job) => [job.archived ? el("span", { class: "muted" }, "archived") : steer(job, "retry")],
    );

  function backfill(mode) {
    return async (e) => {
      const button = e.currentTarget; // gone once the handler awaits
      if (mode === "all" && !(await confirm("Backfill all?", el("p", {}, "Every image's derivatives will be made again, even current ones. This can take long on a large library."), "Backfill all"))) return;
      act(button, () => api(`/api/admin/backfill?mode=${mode}`, { method: "POST" }), (r) => `${r.images} image(s) queued`);
    };
  }
  document.getElementById("backfill-missing").addEventListener("click", backfill("missing"));
  document.getElementById("backfill-all").addEventListener("click", backfill("all"));

  function refresh() {
    return Promise.all([loadStats(), loadRunning(), loadPending(), loadFailed()]);
  }
  const soon = throttle(refresh, 500);
  live({}, (event) => { if (event.type !== "image" && event.type !== "product") soon(); }, soon);
  setInterval(loadStats, 5000); // throughput and lag move with time, not only with events
  refresh();
})();
