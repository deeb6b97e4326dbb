// Projects: the list, and a form to create one.
"use strict";
(() => {
  const { el, api, act, when } = enlarger;
  const rows = document.getElementById("project-rows");

  async function load() {
    const { projects } = await api("/api/projects");
    rows.replaceChildren(
      ...projects.map((p) =>
        el(
          "tr",
          {},
          el("td", {}, el("a", { href: `/projects/${encodeURIComponent(p.folder)}` }, p.title || p.collection)),
          el("td", {}, p.folder),
          el("td", {}, p.photoCount),
          el("td", {}, when(p.createdAt)),
        ),
      ),
    );
    if (!projects.length) rows.append(el("tr", {}, el("td", { colspan: 4, class: "muted" }, "No project yet.")));
  }

  const form = document.getElementById("new-project");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const folder = form.folder.value.trim();
    const title = form.title.value.trim() || null;
    const made = await act(form.querySelector("button"), () => api("/api/projects", { method: "POST", json: { folder, title } }), `Project ${folder} created`);
    if (made) {
      form.reset();
      load();
    }
  });
  enlarger.live({}, () => {}, load);
  load();
})();
