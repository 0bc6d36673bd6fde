// The page's frame: the API key, the projects, loading a project's data once for every view, the views behind the
// address's #fragment (so the browser's back button walks them), the reports, and wiring the controls.
"use strict";

const VIEWS = { overview: "overview", themes: "themes-view", theme: "theme-view", compare: "compare-view",
  upload: "upload-view", reports: "reports-view" };
const REPORTS = ["themes", "theme_tree", "document_themes", "document_nodes", "span_themes", "documents", "theme_trends",
  "theme_impact", "document_attributes", "alerts"];
let loads = 0; // numbers project loads: a slower, older load never overwrites a newer one

// ---------------------------------------------------------------- key and projects

async function useKey(key) {
  state.key = key.trim();
  try {
    await loadProjects();
    sessionStorage.setItem("ft-key", state.key);
    say("key-status", "");
    $("key-section").hidden = true;
    $("views").hidden = $("project-form").hidden = false;
    const remembered = sessionStorage.getItem("ft-project");
    const first = state.projects.find((p) => p.id === remembered) || state.projects[0];
    if (first) await openProject(first.id, "", false); // the view the address names (reloaded: where it was)
    else location.hash = "#/upload";
    route();
  } catch (error) {
    say("key-status", `That key did not work: ${error.message}`, true);
  }
}

async function loadProjects() {
  const page = await api("/v1/projects?limit=500");
  state.projects = page.projects;
  const label = (p) => `${p.name || p.id.slice(0, 8)} (${count(p.n_documents)} comments)`;
  $("project").replaceChildren(...state.projects.map((p) => el("option", { value: p.id, dir: "auto", text: label(p) })));
  $("upload-target").replaceChildren(el("option", { value: "", text: "a new project" }),
    ...state.projects.map((p) => el("option", { value: p.id, dir: "auto", text: `add to ${label(p)}` })));
  if (state.project) $("project").value = state.project.id;
  $("project-form").hidden = state.projects.length === 0;
}

async function openProject(projectId, notice = "", toOverview = true) {
  if (!state.project || state.project.id !== projectId) {
    state.segment = null;
    state.period = null;
    state.expanded = new Set();
    state.theme = null; // another project's node: not to be reloaded in this one
    for (const id of ["a-from", "a-to", "b-from", "b-to", "search"]) $(id).value = "";
  }
  state.project = { id: projectId };
  sessionStorage.setItem("ft-project", projectId);
  $("project").value = projectId;
  $("done-notice").textContent = notice;
  $("done-notice").hidden = !notice;
  await reloadProject();
  if (!toOverview) return;
  if (location.hash !== "#/overview") location.hash = "#/overview";
  else route();
}

async function loadProjectData() {
  // Everything the views show, for the chosen filter, in parallel.
  const load = ++loads;
  const trend = async (level) => {
    const trends = await api(projectPath(`/trends?level=${level}${segmentQuery()}`));
    return { ...trends, byId: new Map(trends.themes.map((s) => [s.theme_id, s])) };
  };
  const [project, page, stats, alerts, t1, t2, t3, tree, columns] = await Promise.all([
    api(projectPath()),
    api(projectPath(`/themes?limit=500&include_hidden=true${segmentQuery()}`)),
    api(projectPath(`/stats${segmentQuery("?")}`)),
    api(projectPath("/alerts?limit=20")),
    trend(1), trend(2), trend(3),
    fetchTree(),
    fetchColumns(),
  ]);
  if (load !== loads) return false;
  Object.assign(state, { project, themes: page.themes, stats, alerts: alerts.alerts, trends: { 1: t1, 2: t2, 3: t3 }, columns });
  useTree(tree);
  state.filtered = page.metadata.segment || null;
  return true;
}

function renderProject() {
  // Every view of the project from the data loaded.
  fillFilterColumns();
  showFilterBar();
  $("segment-summary").textContent = state.filtered ? `Showing ${describeSegment({ ...state.filtered, ...state.segment })}.` : "";
  renderOverview();
  renderTree();
  fillCompareForm();
  renderDownloads();
}

async function reloadProject() {
  try {
    if (!(await loadProjectData())) return;
    renderProject();
    if (state.view === "theme" && state.theme) await showNode(state.theme.id);
  } catch (error) {
    say("page-status", `Could not open the project: ${error.message}`, true);
  }
}

// ---------------------------------------------------------------- views

async function route() {
  if (!state.key || $("views").hidden) return;
  const [name, arg] = location.hash.replace(/^#\/?/, "").split("/");
  let view = VIEWS[name] ? name : "overview";
  if (!state.project && view !== "upload") view = "upload";
  say("page-status", "");
  if (view === "theme") {
    try { await showNode(Number(arg)); } catch (error) {
      say("page-status", `Could not open that theme: ${error.message}`, true);
      view = "themes";
    }
  }
  const moved = state.view !== view || view === "theme";
  state.view = view;
  for (const [key, id] of Object.entries(VIEWS)) $(id).hidden = key !== view;
  $("segment-form").hidden = !filterBarShown(view);
  for (const link of document.querySelectorAll("#views a")) {
    if (link.dataset.view === (view === "theme" ? "themes" : view)) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const heading = view === "theme" ? $("theme-title") : $(VIEWS[view]).querySelector("h2");
  if (document.activeElement && document.activeElement !== document.body && !$(VIEWS[view]).contains(document.activeElement)) {
    heading.focus({ preventScroll: true });
  }
  if (moved) window.scrollTo(0, 0);
}

// ---------------------------------------------------------------- reports

function renderDownloads() {
  $("downloads").replaceChildren(...REPORTS.flatMap((name) => ["csv", "parquet"].map((ext) =>
    el("li", {}, el("button", { type: "button", "data-report": `${name}.${ext}`, text: `${name}.${ext}`, onclick: () => download(name, ext) })))));
}

async function download(name, ext) {
  const bom = ext === "csv" && $("excel-bom").checked ? "?bom=1" : "";
  try {
    const response = await api(projectPath(`/reports/${name}.${ext}${bom}`), { raw: true });
    const url = URL.createObjectURL(await response.blob());
    const link = el("a", { href: url, download: `${name}.${ext}` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (error) {
    say("page-status", `Download failed: ${error.message}`, true);
  }
}

async function makeToken() {
  try {
    const made = await api(projectPath("/report-token"), { method: "POST" });
    $("token-urls").replaceChildren(...Object.entries(made.urls).filter(([n]) => n.endsWith(".csv"))
      .map(([n, url]) => el("li", {}, el("strong", { text: `${n}: ` }), el("code", { text: url }))));
    $("token-out").hidden = false;
  } catch (error) {
    say("page-status", `Could not create a report URL: ${error.message}`, true);
  }
}

// ---------------------------------------------------------------- wiring

document.addEventListener("DOMContentLoaded", () => {
  $("key-form").addEventListener("submit", (e) => { e.preventDefault(); useKey($("api-key").value); });
  $("project-form").addEventListener("submit", (e) => { e.preventDefault(); if ($("project").value) openProject($("project").value); });
  window.addEventListener("hashchange", route);
  // upload
  $("file").addEventListener("change", (e) => { if (e.target.files[0]) previewFile(e.target.files[0]); });
  $("map-text").addEventListener("change", renderPreview);
  $("upload-form").addEventListener("submit", upload);
  $("job-open").addEventListener("click", () => { location.hash = "#/overview"; });
  // filters
  $("segment-column").addEventListener("change", () => fillValues($("segment-column"), $("segment-value"), null));
  $("segment-form").addEventListener("submit", chooseSegment);
  $("segment-clear").addEventListener("click", clearSegment);
  // the tree
  $("search").addEventListener("input", renderTree);
  $("sort").addEventListener("change", renderTree);
  $("expand-all").addEventListener("click", expandAll);
  $("show-hidden").addEventListener("change", async () => {
    try { useTree(await fetchTree()); renderTree(); } catch (error) { say("page-status", `Could not load the tree: ${error.message}`, true); }
  });
  // a node's page
  $("more-comments").addEventListener("click", moreMembers);
  $("theme-segment-column").addEventListener("change", loadThemeSegments);
  $("rename-form").addEventListener("submit", (e) => {
    e.preventDefault();
    edit(`/themes/${state.theme.id}`, "PATCH", { label: $("rename").value }, "Renamed.");
  });
  $("reset-name").addEventListener("click", () => edit(`/themes/${state.theme.id}`, "PATCH", { label: "" }, "Generated name restored."));
  $("toggle-hidden").addEventListener("click", () =>
    edit(`/themes/${state.theme.id}`, "PATCH", { hidden: !state.theme.hidden }, state.theme.hidden ? "Shown again." : "Hidden."));
  $("merge-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const other = Number($("merge-select").value);
    edit(`/themes/${state.theme.id}/merge`, "POST", { themes: [other] }, `Merged into this one.`);
  });
  // compare
  for (const radio of document.querySelectorAll("input[name=compare-kind]")) radio.addEventListener("change", showCompareKind);
  $("a-column").addEventListener("change", fillCompareValues);
  $("b-column").addEventListener("change", fillCompareValues);
  $("compare-form").addEventListener("submit", runCompare);
  // reports
  $("make-token").addEventListener("click", makeToken);
  if (state.key) { $("api-key").value = state.key; useKey(state.key); }
});
