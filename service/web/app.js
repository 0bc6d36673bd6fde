// feedback-themes web page: plain JavaScript over the /v1 API.
// Every piece of data (comments above all: they are untrusted HTML) goes into the page as text (textContent,
// createTextNode, attribute values); nothing is ever parsed as HTML.
"use strict";

const REPORTS = ["themes", "theme_tree", "document_themes", "document_nodes", "span_themes", "documents", "theme_trends",
  "theme_impact", "document_attributes", "alerts"];
const COLOURS = ["#0b57d0", "#c5221f", "#137333", "#b06000", "#8430ce", "#007b83", "#d01884", "#5f6368"];
const state = {
  key: sessionStorage.getItem("ft-key") || "",
  project: null,
  themes: [],
  tree: [], // the categories, each with its themes (children), each with its sub-themes (children)
  nodes: new Map(), // node id → {node, parent} over the whole tree
  expanded: new Set(), // ids of the tree nodes shown open
  trends: null,
  sort: { key: "size", dir: -1 },
  theme: null,
  memberCursor: null,
  charts: {},
  file: null,
  columns: [], // the project's metadata columns offered as segments, each with its frequent values
  segment: null, // {column, value}: every figure is then the segment's
};
window.feedbackThemes = state; // for the browser test and the curious

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  return node;
}

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.title)) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(path, options = {}) {
  const headers = { "X-API-Key": state.key, ...(options.headers || {}) };
  let body = options.body;
  if (body && !(body instanceof FormData)) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(body);
  }
  const response = await fetch(path, { ...options, headers, body });
  if (options.raw && response.ok) return response;
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = { detail: text.slice(0, 200) }; }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function say(id, message, isError = false) {
  const node = $(id);
  node.textContent = message;
  node.classList.toggle("error", isError);
}

// ---------------------------------------------------------------- key and projects

async function useKey(key) {
  state.key = key.trim();
  try {
    const page = await api("/v1/projects?limit=500");
    sessionStorage.setItem("ft-key", state.key);
    say("key-status", `Key accepted: ${page.projects.length} project(s).`);
    fillProjects(page.projects);
    $("upload-section").hidden = false;
  } catch (error) {
    say("key-status", `That key did not work: ${error.message}`, true);
    $("upload-section").hidden = true;
  }
}

function fillProjects(projects) {
  const select = $("project");
  select.replaceChildren(el("option", { value: "", text: "Start a new project" }));
  for (const p of projects) {
    const name = p.name || p.id.slice(0, 8);
    select.append(el("option", { value: p.id, text: `${name} — ${p.n_documents} comments, ${p.n_themes} themes` }));
  }
  if (state.project) select.value = state.project;
}

// ---------------------------------------------------------------- CSV preview and column mapping

function detectDelimiter(line) {
  let best = ",", count = -1;
  for (const d of [",", ";", "\t", "|"]) {
    const n = line.split(d).length;
    if (n > count) { best = d; count = n; }
  }
  return best;
}

function parseCsv(text, delimiter, maxRows) {
  const rows = [];
  let row = [], field = "", quoted = false;
  for (let i = 0; i < text.length && rows.length < maxRows; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === delimiter) { row.push(field); field = ""; }
    else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(field); field = "";
      if (row.some((f) => f !== "")) rows.push(row);
      row = [];
    } else field += c;
  }
  if ((field || row.length) && rows.length < maxRows) { row.push(field); rows.push(row); }
  return rows;
}

function guess(headers, pattern) {
  return headers.find((h) => pattern.test(h.trim())) || "";
}

async function previewFile(file) {
  state.file = file;
  const buffer = await file.slice(0, 256 * 1024).arrayBuffer();
  const bytes = new Uint8Array(buffer);
  let text;
  if (bytes[0] === 0xff && bytes[1] === 0xfe) text = new TextDecoder("utf-16le").decode(bytes);
  else if (bytes[0] === 0xfe && bytes[1] === 0xff) text = new TextDecoder("utf-16be").decode(bytes);
  else {
    try { text = new TextDecoder("utf-8", { fatal: true }).decode(bytes); }
    catch (e) { text = new TextDecoder("windows-1252").decode(bytes); }
  }
  text = text.replace(/^\uFEFF/, "");
  const rows = parseCsv(text, detectDelimiter(text.split(/\r?\n/, 1)[0]), 9);
  if (!rows.length) { say("upload-status", "The file looks empty.", true); return; }
  const headers = rows[0];
  const table = $("preview-table");
  table.tHead.replaceChildren(el("tr", {}, ...headers.map((h) => el("th", { scope: "col", text: h }))));
  table.tBodies[0].replaceChildren(...rows.slice(1).map((r) => el("tr", {}, ...headers.map((_, i) => el("td", { text: r[i] ?? "" })))));
  $("preview").hidden = false;
  const picks = {
    "map-text": guess(headers, /^(text|comment|comments|review|review text|feedback|body|message|answer|verbatim)$/i) ||
      guess(headers, /text|comment|review|feedback/i) || headers[0],
    "map-rating": guess(headers, /^(rating|score|stars|nps|grade)$/i) || guess(headers, /rating|stars|nps/i),
    "map-date": guess(headers, /^(date|created|created_at|timestamp|time|submitted)$/i) || guess(headers, /date/i),
    "map-id": guess(headers, /^(id|review_id|comment_id|ticket_id|uuid)$/i),
  };
  for (const [id, pick] of Object.entries(picks)) {
    const select = $(id);
    const options = id === "map-text" ? [] : [el("option", { value: "", text: "(none)" })];
    select.replaceChildren(...options, ...headers.map((h) => el("option", { value: h, text: h })));
    select.value = pick;
  }
  $("mapping").disabled = false;
  $("upload-button").disabled = false;
  say("upload-status", `${file.name}: ${headers.length} columns. Check the mapping, then upload.`);
}

// ---------------------------------------------------------------- upload and progress

async function upload(event) {
  event.preventDefault();
  if (!state.file) return;
  const form = new FormData();
  form.append("file", state.file, state.file.name);
  form.append("text_column", $("map-text").value);
  for (const [field, id] of [["rating_column", "map-rating"], ["date_column", "map-date"], ["id_column", "map-id"]]) {
    if ($(id).value) form.append(field, $(id).value);
  }
  if ($("project").value) form.append("project", $("project").value);
  $("upload-button").disabled = true;
  say("upload-status", "Uploading…");
  try {
    const job = await api("/v1/jobs", { method: "POST", body: form });
    state.project = job.project_id;
    $("job").hidden = false;
    setProgress(0, "queued");
    say("upload-status", "Uploaded; the analysis is running.");
    await watch(job.id);
  } catch (error) {
    say("upload-status", `Upload refused: ${error.message}`, true);
  } finally {
    $("upload-button").disabled = false;
  }
}

function setProgress(fraction, stage) {
  const percent = Math.round(fraction * 100);
  $("job-progress").value = percent;
  $("job-progress").textContent = `${percent}%`;
  $("job-percent").textContent = `${percent}%`;
  $("job-stage").textContent = stage ? `(${stage})` : "";
}

async function watch(jobId) {
  for (;;) {
    const job = await api(`/v1/jobs/${encodeURIComponent(jobId)}`);
    setProgress(job.progress, job.status === "succeeded" ? "done" : job.stage || job.status);
    if (job.status === "succeeded") {
      say("upload-status", `Done: ${job.counts.documents ?? "?"} comments analysed.`);
      const projects = await api("/v1/projects?limit=500");
      fillProjects(projects.projects);
      await openProject(job.project_id);
      return;
    }
    if (job.status === "failed") {
      say("upload-status", `The job failed: ${(job.error && (job.error.detail || job.error.title)) || "unknown error"}`, true);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

// ---------------------------------------------------------------- the theme explorer

// ---------------------------------------------------------------- segments

// The query string of the chosen segment ("" for every comment), starting with `sep`.
function segmentQuery(sep = "&") {
  const s = state.segment;
  return s ? `${sep}segment=${encodeURIComponent(`${s.column}=${s.value}`)}` : "";
}

async function loadColumns(projectId) {
  const answer = await api(`/v1/projects/${projectId}/columns?values=50`);
  state.columns = answer.columns.filter((c) => c.segment && (c.values || []).length);
  $("segment-column").replaceChildren(el("option", { value: "", text: "All comments" }),
    ...state.columns.map((c) => el("option", { value: c.name, text: `${c.name} (${c.distinct_values})` })));
  $("segment-column").value = state.segment ? state.segment.column : "";
  fillSegmentValues();
  $("segment-form").hidden = state.columns.length === 0;
}

function fillSegmentValues() {
  const column = state.columns.find((c) => c.name === $("segment-column").value);
  $("segment-value").replaceChildren(...(column ? column.values : []).map((v) =>
    el("option", { value: v.value, text: `${v.value} (${v.count})` })));
  $("segment-value").disabled = !column;
  if (column && state.segment && state.segment.column === column.name) $("segment-value").value = state.segment.value;
}

function chooseSegment(event) {
  event.preventDefault();
  const column = $("segment-column").value;
  state.segment = column ? { column, value: $("segment-value").value } : null;
  openProject(state.project);
}

async function openProject(projectId) {
  if (state.project !== projectId) state.segment = null;
  state.project = projectId;
  $("project").value = projectId;
  try {
    if (state.expandedFor !== projectId) { state.expanded = new Set(); state.expandedFor = projectId; }
    const [project, page, trends, stats] = await Promise.all([
      api(`/v1/projects/${projectId}`),
      api(`/v1/projects/${projectId}/themes?limit=500&include_hidden=true${segmentQuery()}`),
      api(`/v1/projects/${projectId}/trends${segmentQuery("?")}`),
      api(`/v1/projects/${projectId}/stats${segmentQuery("?")}`),
      loadTree(),
      loadAlerts(projectId),
      loadColumns(projectId),
    ]);
    state.themes = page.themes;
    state.trends = trends;
    state.stats = stats;
    const segment = page.metadata.segment;
    $("segment-clear").hidden = !state.segment;
    $("project-summary").textContent =
      `${project.name || project.id}: ${project.n_documents} comments, ${state.tree.length} categories, ` +
      `${project.n_themes} themes` + (trends.period ? `, trends by ${trends.period}.` : ", no dates (no trends).") +
      (segment ? ` Showing the segment ${segment.conditions.join(", ")}: ${segment.n_documents} comments.` : "");
    $("explorer").hidden = false;
    $("theme-view").hidden = true;
    renderThemes();
    renderTree();
    renderCharts();
    renderDownloads();
  } catch (error) {
    say("upload-status", `Could not open the project: ${error.message}`, true);
  }
}

// ---------------------------------------------------------------- alerts

const ALERT_KINDS = { new_theme: "New theme", spike: "Spike", sentiment_drop: "Sentiment drop" };
const ALERTS_SHOWN = 20;

async function loadAlerts(projectId) {
  const page = await api(`/v1/projects/${projectId}/alerts?limit=${ALERTS_SHOWN}`);
  renderAlerts(page.alerts);
}

function alertFigures(alert) {
  const f = alert.figures;
  const pct = (share) => (share === null || share === undefined ? "–" : `${(100 * share).toFixed(1)} %`);
  const parts = [`${f.count} of ${f.n} comments (${pct(f.share)}) vs ${pct(f.baseline_share)} before`];
  if (f.lift) parts.push(`×${f.lift.toFixed(1)}`);
  if (alert.kind === "sentiment_drop") parts.push(`sentiment ${f.sentiment_mean.toFixed(2)} vs ${f.baseline_sentiment.toFixed(2)}`);
  parts.push(`q = ${f.q_value}`);
  return parts.join(", ");
}

function renderAlerts(alerts) {
  $("alerts-empty").hidden = alerts.length > 0;
  $("alerts").replaceChildren(...alerts.map((alert) => {
    const theme = alert.theme || {};
    const when = new Date(alert.created_at).toLocaleString();
    return el("li", { "data-alert": String(alert.id), "data-kind": alert.kind },
      el("strong", { class: "alert-kind", text: ALERT_KINDS[alert.kind] || alert.kind }), " ",
      el("span", { class: "alert-theme", text: theme.name || "" }),
      el("span", { class: "meta", text: `${alert.window === "batch" ? "this upload" : `last ${alert.window}`} · ${when}` }),
      el("div", { class: "alert-title", text: alert.title }),
      el("div", { class: "meta alert-figures", text: alertFigures(alert) }),
      el("ul", { class: "comments" }, ...alert.examples.slice(0, 2).map((example) =>
        el("li", { text: example.text }, el("span", { class: "meta", text: example.doc_id })))));
  }));
}

// A node's name: the short phrase the analysis gave it, or the one a user renamed it to (older records: the label).
const nameOf = (node) => node.name || node.label || `theme ${node.id}`;
const LEVEL_NOUNS = { 1: "category", 2: "theme", 3: "sub-theme" };
const levelNoun = (node) => LEVEL_NOUNS[node.level] || "theme";

// Below this cohesion a theme is marked loose (docs/benchmarks.md: such themes recur in another run far less often).
const LOOSE_COHESION = 0.4;

function sortValue(theme, key) {
  switch (key) {
    case "name": return nameOf(theme).toLowerCase();
    case "sentiment": return theme.sentiment.mean;
    case "rating": return theme.rating ? theme.rating.mean : -Infinity;
    case "impact": return theme.impact ? theme.impact.coef : -Infinity;
    default: return theme[key];
  }
}

function visibleThemes() {
  const query = $("search").value.trim().toLowerCase();
  const showHidden = $("show-hidden").checked;
  return state.themes
    .filter((t) => showHidden || !t.hidden)
    .filter((t) => !query || nameOf(t).toLowerCase().includes(query) || t.keywords.some((k) => k.toLowerCase().includes(query)))
    .sort((a, b) => {
      const x = sortValue(a, state.sort.key), y = sortValue(b, state.sort.key);
      return (x < y ? -1 : x > y ? 1 : a.id - b.id) * state.sort.dir;
    });
}

function series(themeId) {
  const t = state.trends && state.trends.themes.find((s) => s.theme_id === themeId);
  return t ? t.shares : [];
}

function sparkline(values, label) {
  const width = 90, height = 22;
  const box = svg("svg", { class: "spark", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label });
  if (values.length > 1) {
    const max = Math.max(...values) || 1;
    const points = values.map((v, i) => `${(i / (values.length - 1)) * (width - 2) + 1},${height - 1 - (v / max) * (height - 2)}`);
    box.append(svg("polyline", { points: points.join(" ") }));
  }
  return box;
}

function sentimentBar(sentiment, width = 120) {
  const box = svg("svg", {
    class: "bar", width, height: 14, viewBox: `0 0 ${width} 14`, role: "img",
    "aria-label": `negative ${pct(sentiment.negative)}, neutral ${pct(sentiment.neutral)}, positive ${pct(sentiment.positive)}`,
  });
  let x = 0;
  for (const part of ["negative", "neutral", "positive"]) {
    const w = sentiment[part] * width;
    box.append(svg("rect", { class: part, x, y: 0, width: w, height: 14 }));
    x += w;
  }
  return box;
}

const pct = (v) => `${(v * 100).toFixed(1)}%`;
const signed = (v) => (v >= 0 ? "+" : "") + v.toFixed(2);

function impactText(impact) {
  return impact ? `${signed(impact.coef)} [${signed(impact.low)}, ${signed(impact.high)}]` : "—";
}

function renderThemes() {
  for (const th of document.querySelectorAll("#themes-table th[data-key]")) {
    th.setAttribute("aria-sort", th.dataset.key === state.sort.key ? (state.sort.dir > 0 ? "ascending" : "descending") : "none");
  }
  const rows = visibleThemes().map((t) => {
    const name = el("td", {}, el("button", { type: "button", class: "theme-link", "data-theme": t.id, text: nameOf(t), onclick: () => openTheme(t.id) }));
    if (t.emerging) name.append(el("span", { class: "badge emerging", title: `emerging (${t.emerging_reason})`, text: "▲ emerging" }));
    if (t.hidden) name.append(el("span", { class: "badge hidden", text: "hidden" }));
    if (t.cohesion !== null && t.cohesion !== undefined && t.cohesion < LOOSE_COHESION) {
      name.append(el("span", { class: "badge loose", title: `cohesion ${t.cohesion.toFixed(2)}: a loose theme, less likely to recur`, text: "loose" }));
    }
    if (t.merged && t.merged.length) name.append(el("span", { class: "badge", text: `+${t.merged.length} merged` }));
    return el("tr", { "data-theme": t.id },
      name,
      el("td", { class: "num", text: t.size }),
      el("td", { class: "num", text: pct(t.share) }),
      el("td", { title: `mean ${signed(t.sentiment.mean)}` }, sentimentBar(t.sentiment)),
      el("td", { class: "num", text: t.rating ? t.rating.mean.toFixed(2) : "—" }),
      el("td", { class: "num", text: impactText(t.impact) }),
      el("td", {}, sparkline(series(t.id), `share per ${state.trends && state.trends.period}`)));
  });
  $("themes-table").tBodies[0].replaceChildren(...rows);
}

// ---------------------------------------------------------------- the theme tree

async function loadTree() {
  // The tree: categories → themes → sub-themes, nested, each node compact (id, level, name, keywords, size, share,
  // sentiment_mean, rating_mean, emerging, children). Hidden nodes (flagged `hidden`) only while "show hidden" is ticked.
  const hidden = $("show-hidden").checked ? "?include_hidden=true" : "";
  const tree = await api(`/v1/projects/${state.project}/tree${hidden}${segmentQuery(hidden ? "&" : "?")}`);
  state.tree = tree.categories || [];
  state.nodes = new Map();
  const index = (node, parent) => {
    state.nodes.set(node.id, { node, parent });
    for (const child of node.children || []) index(child, node);
  };
  for (const category of state.tree) index(category, null);
}

function moodCell(mean) {
  // The mean sentiment as a bar from the middle (red left, green right) and its value.
  if (mean === null || mean === undefined) return el("span", { class: "mood", text: "—" });
  const width = 60, half = width / 2, w = Math.min(1, Math.abs(mean)) * half;
  const bar = svg("svg", { class: "mood-bar", width, height: 10, viewBox: `0 0 ${width} 10`, "aria-hidden": "true" });
  bar.append(svg("rect", { class: "track", x: 0, y: 4, width, height: 2 }),
    svg("rect", { class: mean < 0 ? "negative" : "positive", x: mean < 0 ? half - w : half, y: 0, width: w, height: 10 }),
    svg("rect", { class: "zero", x: half - 0.5, y: 0, width: 1, height: 10 }));
  return el("span", { class: "mood", title: `mean sentiment ${signed(mean)}` },
    el("span", { class: "sr-only", text: "mean sentiment: " }), bar, el("span", { text: signed(mean) }));
}

function cell(className, text, label) {
  // One value of a tree row; `label` is read out before it (the column headings are for the eye only).
  return el("span", { class: className }, el("span", { class: "sr-only", text: `${label}: ` }), text);
}

let treeItems = 0; // numbers the rendered child lists: ids stay unique even where a node is shown twice

function treeItem(node) {
  const children = node.children || [];
  const open = state.expanded.has(node.id);
  const listId = `node-${node.id}-children-${++treeItems}`;
  const name = el("span", { class: "node-name" });
  if (children.length) {
    const what = node.level === 1 ? "themes" : "sub-themes";
    name.append(el("button", {
      type: "button", class: "toggle", "aria-expanded": String(open), "aria-controls": listId,
      "aria-label": `${children.length} ${what} of ${nameOf(node)}`, title: `Show or hide its ${children.length} ${what}`,
      text: open ? "▾" : "▸", onclick: (event) => toggleNode(node.id, event.currentTarget),
    }));
  } else name.append(el("span", { class: "toggle-space" }));
  name.append(el("button", { type: "button", class: "theme-link", "data-theme": node.id, text: nameOf(node), onclick: () => openTheme(node.id) }));
  if (node.emerging) name.append(el("span", { class: "badge emerging", title: "emerging: new, or its share is rising", text: "▲ emerging" }));
  if (node.hidden) name.append(el("span", { class: "badge hidden", text: "hidden" }));
  const rating = node.rating_mean;
  const row = el("div", { class: "node-row", "data-level": node.level },
    name,
    el("span", { class: "keywords", title: (node.keywords || []).join(", ") },
      el("span", { class: "sr-only", text: "keywords: " }), (node.keywords || []).slice(0, 5).join(", ")),
    cell("num", node.size, "comments"),
    cell("num", pct(node.share), "share"),
    moodCell(node.sentiment_mean),
    cell("num", rating === null || rating === undefined ? "—" : rating.toFixed(2), "mean rating"));
  const item = el("li", { "data-node": node.id, "data-level": node.level }, row);
  if (children.length) {
    const list = el("ul", { id: listId, class: "children" }, ...children.map(treeItem));
    list.hidden = !open;
    item.append(list);
  }
  return item;
}

function toggleNode(nodeId, button) {
  const open = button.getAttribute("aria-expanded") !== "true";
  if (open) state.expanded.add(nodeId); else state.expanded.delete(nodeId);
  button.setAttribute("aria-expanded", String(open));
  button.textContent = open ? "▾" : "▸";
  $(button.getAttribute("aria-controls")).hidden = !open;
}

function renderTree() {
  $("theme-tree").replaceChildren(...state.tree.map(treeItem));
  $("tree-empty").hidden = state.tree.length > 0;
}

function chart(id, config) {
  if (state.charts[id]) state.charts[id].destroy();
  if (!window.Chart) return null;
  state.charts[id] = new window.Chart($(id), config);
  return state.charts[id];
}

function renderCharts() {
  const shown = state.themes.filter((t) => !t.hidden);
  const maxSize = Math.max(1, ...shown.map((t) => t.size));
  chart("chart-bubble", {
    type: "bubble",
    data: { datasets: [{ label: "themes", backgroundColor: "rgba(11,87,208,.35)", borderColor: "#0b57d0",
      data: shown.map((t) => ({ x: t.sentiment.mean, y: t.size, r: 4 + 16 * Math.sqrt(t.size / maxSize), label: nameOf(t) })) }] },
    options: {
      animation: false,
      plugins: { legend: { display: false }, tooltip: { callbacks: { label: (c) => `${c.raw.label}: ${c.raw.y} comments, sentiment ${signed(c.raw.x)}` } } },
      scales: { x: { title: { display: true, text: "mean sentiment" }, min: -1, max: 1 }, y: { title: { display: true, text: "comments" }, beginAtZero: true } },
    },
  });
  const trends = state.trends;
  const top = [...shown].sort((a, b) => b.size - a.size).slice(0, 8);
  chart("chart-shares", {
    type: "line",
    data: { labels: trends.periods, datasets: top.map((t, i) => ({ label: nameOf(t), data: series(t.id).map((v) => v * 100),
      borderColor: COLOURS[i % COLOURS.length], backgroundColor: COLOURS[i % COLOURS.length], tension: 0.2, pointRadius: 1 })) },
    options: { animation: false, scales: { y: { title: { display: true, text: "% of comments" }, beginAtZero: true } },
      plugins: { legend: { position: "bottom", labels: { boxWidth: 10 } } } },
  });
  const h = state.stats.sentiment_histogram;
  chart("chart-sentiment", {
    type: "bar",
    data: { labels: h.counts.map((_, i) => `${h.edges[i].toFixed(1)}…${h.edges[i + 1].toFixed(1)}`),
      datasets: [{ label: "comments", data: h.counts, backgroundColor: h.counts.map((_, i) => (i < 5 ? "#c5221f" : "#137333")) }] },
    options: { animation: false, plugins: { legend: { display: false } },
      scales: { x: { title: { display: true, text: "sentiment score" } }, y: { beginAtZero: true } } },
  });
  const s = state.stats.sentiment;
  $("sentiment-caption").textContent =
    `Sentiment of ${state.segment ? "the segment's" : "all"} ${state.stats.documents} comments: ` +
    `${s.negative} negative, ${s.neutral} neutral, ${s.positive} positive`;
}

// ---------------------------------------------------------------- downloads and report tokens

function renderDownloads() {
  const list = $("downloads");
  list.replaceChildren(...REPORTS.flatMap((name) => ["csv", "parquet"].map((ext) =>
    el("li", {}, el("button", { type: "button", "data-report": `${name}.${ext}`, text: `${name}.${ext}`, onclick: () => download(name, ext) })))));
}

async function download(name, ext) {
  const bom = ext === "csv" && $("excel-bom").checked ? "?bom=1" : "";
  try {
    const response = await api(`/v1/projects/${state.project}/reports/${name}.${ext}${bom}`, { raw: true });
    const url = URL.createObjectURL(await response.blob());
    const link = el("a", { href: url, download: `${name}.${ext}` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (error) {
    say("upload-status", `Download failed: ${error.message}`, true);
  }
}

async function makeToken() {
  try {
    const made = await api(`/v1/projects/${state.project}/report-token`, { method: "POST" });
    $("token-urls").replaceChildren(...Object.entries(made.urls).filter(([n]) => n.endsWith(".csv"))
      .map(([n, url]) => el("li", {}, el("strong", { text: `${n}: ` }), el("code", { text: url }))));
    $("token-out").hidden = false;
  } catch (error) {
    say("upload-status", `Could not create a report URL: ${error.message}`, true);
  }
}

// ---------------------------------------------------------------- one theme

function highlighted(text, keywords) {
  // Marks the theme's keywords in the comment. Builds text nodes and <mark> elements: the comment is never HTML.
  const words = [...new Set(keywords.flatMap((k) => [k, ...k.split(/\s+/)]))].filter((w) => w.length > 2)
    .sort((a, b) => b.length - a.length).map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const fragment = document.createDocumentFragment();
  if (!words.length) { fragment.append(document.createTextNode(text)); return fragment; }
  const pattern = new RegExp(`\\b(${words.join("|")})\\b`, "giu");
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    fragment.append(document.createTextNode(text.slice(last, match.index)));
    fragment.append(el("mark", { class: "keyword", text: match[0] }));
    last = match.index + match[0].length;
  }
  fragment.append(document.createTextNode(text.slice(last)));
  return fragment;
}

function spanRanges(chars, spans) {
  // The spans' [start, end) as indices into `chars` (the comment's code points: the API's offsets count code points,
  // which is what Array.from splits a string into). An example's span also carries its text: when the offsets do
  // not give it (a comment edited since, say), the text is looked up instead. Invalid or overlapping spans are skipped.
  const ranges = [];
  for (const s of spans || []) {
    if (!s || !Number.isInteger(s.start) || !Number.isInteger(s.end)) continue;
    let start = s.start, end = s.end;
    if (typeof s.text === "string" && chars.slice(start, end).join("") !== s.text) {
      const at = chars.join("").indexOf(s.text);
      if (at < 0 || !s.text) continue;
      start = Array.from(chars.join("").slice(0, at)).length;
      end = start + Array.from(s.text).length;
    }
    start = Math.max(0, start);
    end = Math.min(chars.length, end);
    if (end > start) ranges.push({ start, end, span: s });
  }
  ranges.sort((a, b) => a.start - b.start || a.end - b.end);
  const kept = [];
  for (const r of ranges) if (!kept.length || r.start >= kept[kept.length - 1].end) kept.push(r);
  return kept;
}

function withSpans(text, spans, keywords = []) {
  // The comment with each span that carries the theme in a <mark class="span"> and the theme's keywords in bold
  // (`highlighted`). Text nodes and elements only: the comment is never HTML. No spans (results stored before spans
  // were kept): the keywords marked, as before.
  const chars = Array.from(text);
  const ranges = spanRanges(chars, spans);
  if (!ranges.length) return highlighted(text, keywords);
  const fragment = el("span", { class: "with-spans" });
  let last = 0;
  for (const { start, end, span } of ranges) {
    fragment.append(highlighted(chars.slice(last, start).join(""), keywords));
    const title = typeof span.activation === "number" ? `sentence ${span.index + 1}, activation ${span.activation.toFixed(2)}` : `sentence ${span.index + 1}`;
    fragment.append(el("mark", { class: "span", "data-span": span.index, title }, highlighted(chars.slice(start, end).join(""), keywords)));
    last = end;
  }
  fragment.append(highlighted(chars.slice(last).join(""), keywords));
  return fragment;
}

function exampleItem(example, keywords) {
  return el("li", { "data-doc": example.doc_id }, withSpans(example.text, example.span ? [example.span] : [], keywords),
    el("span", { class: "meta", text: `(activation ${example.activation.toFixed(2)})` }));
}

async function openTheme(themeId) {
  try {
    const detail = await api(`/v1/projects/${state.project}/themes/${themeId}?limit=20${segmentQuery()}`);
    state.theme = detail.theme;
    state.memberCursor = detail.next_cursor;
    renderTheme(detail.theme);
    $("theme-comments").replaceChildren();
    appendMembers(detail.members);
    $("explorer").hidden = true;
    $("theme-view").hidden = false;
    $("theme-title").focus();
  } catch (error) {
    say("upload-status", `Could not open theme ${themeId}: ${error.message}`, true);
  }
}

function appendMembers(members) {
  const keywords = state.theme.keywords;
  for (const m of members) {
    const meta = [`activation ${m.activation.toFixed(2)}`];
    if (m.sentiment_label) meta.push(m.sentiment_label);
    if (m.rating !== null && m.rating !== undefined) meta.push(`rating ${m.rating}`);
    $("theme-comments").append(el("li", { "data-doc": m.doc_id }, withSpans(m.text, m.spans, keywords), el("span", { class: "meta", text: `(${meta.join(", ")})` })));
  }
  $("more-comments").hidden = !state.memberCursor;
}

async function moreMembers() {
  const page = await api(`/v1/projects/${state.project}/themes/${state.theme.id}?limit=20&cursor=${encodeURIComponent(state.memberCursor)}${segmentQuery()}`);
  state.memberCursor = page.next_cursor;
  appendMembers(page.members);
}

function nodeButton(node) {
  return el("button", { type: "button", class: "theme-link", "data-theme": node.id, text: nameOf(node), onclick: () => openTheme(node.id) });
}

function renderPath(t) {
  // Where the node sits in the tree: its category (and theme), each a button that opens it.
  const ancestors = [];
  for (let at = state.nodes.get(t.id); at && at.parent; at = state.nodes.get(at.parent.id)) ancestors.unshift(at.parent);
  $("node-path").replaceChildren(...(ancestors.length ? [`In ${levelNoun(ancestors[0])} `] : []),
    ...ancestors.flatMap((node, i) => (i ? [` › ${levelNoun(node)} `, nodeButton(node)] : [nodeButton(node)])));
}

function renderChildren(t) {
  // A category's themes or a theme's sub-themes, from the tree (a sub-theme has none).
  const entry = state.nodes.get(t.id);
  const children = entry ? entry.node.children || [] : [];
  $("node-children-heading").textContent = t.level === 1 ? "Themes in this category" : "Sub-themes";
  $("node-children-heading").hidden = $("node-children").hidden = t.level === 3;
  $("node-children").replaceChildren(...(children.length ? children.map((c) => el("li", { "data-node": c.id }, nodeButton(c),
    ` — ${c.size} comments, sentiment ${signed(c.sentiment_mean ?? 0)}`)) :
    [el("li", { text: t.level === 1 ? "No themes shown." : "None found at a finer level." })]));
}

function renderTheme(t) {
  const noun = levelNoun(t);
  $("theme-title").textContent = nameOf(t);
  renderPath(t);
  const facts = [
    ["Level", noun], [`${noun[0].toUpperCase()}${noun.slice(1)} id`, t.id], ["Comments", `${t.size} (${pct(t.share)})`],
    ["Sentences carrying it", t.span_count === null || t.span_count === undefined ? "—" : t.span_count],
    ["Mean rating", t.rating ? `${t.rating.mean.toFixed(2)} over ${t.rating.count}` : "—"],
    ["Impact on rating", impactText(t.impact)],
    ["Emerging", t.emerging ? `yes (${t.emerging_reason})` : "no"],
    ["Cohesion", t.cohesion === null || t.cohesion === undefined ? "—" : `${t.cohesion.toFixed(2)}${t.cohesion < LOOSE_COHESION ? " (loose)" : ""}`],
  ];
  const generated = t.original_name || t.original_label;
  if (generated) facts.push(["Generated name", generated]);
  if (t.hidden) facts.push(["Hidden", "yes"]);
  $("theme-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
  $("theme-keywords").replaceChildren(...t.keywords.map((k) => el("li", { text: k })));
  renderChildren(t);
  $("theme-examples").replaceChildren(...(t.examples || []).map((x) => exampleItem(x, t.keywords)));
  $("theme-sentiment").replaceChildren(sentimentBar(t.sentiment, 300),
    el("p", { text: `mean ${signed(t.sentiment.mean)}: ${pct(t.sentiment.negative)} negative, ${pct(t.sentiment.neutral)} neutral, ${pct(t.sentiment.positive)} positive` }));
  const trend = state.trends.themes.find((s) => s.theme_id === t.id);
  chart("chart-theme-trend", {
    type: "line",
    data: { labels: state.trends.periods, datasets: [{ label: "comments", data: trend ? trend.counts : [], borderColor: "#0b57d0", tension: 0.2 }] },
    options: { animation: false, plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, title: { display: true, text: "comments" } } } },
  });
  $("theme-trend-caption").textContent = state.trends.period ? `Comments per ${state.trends.period}` : "No dates: no trend.";
  $("rename").value = nameOf(t);
  $("toggle-hidden").textContent = t.hidden ? `Show this ${noun} again` : `Hide this ${noun}`;
  // merging joins nodes of one level: themes from the themes list, categories and sub-themes from the tree
  const sameLevel = t.level === 2 || t.level === undefined ? state.themes :
    [...state.nodes.values()].map((entry) => entry.node).filter((n) => n.level === t.level);
  $("merge-label").textContent = `Merge another ${noun} into this one`;
  $("merge-select").replaceChildren(...sameLevel.filter((o) => o.id !== t.id)
    .map((o) => el("option", { value: o.id, text: `${nameOf(o)} (${o.size})` })));
  const known = (id) => state.nodes.get(id) ? `“${nameOf(state.nodes.get(id).node)}” (${id})` : `${noun} ${id}`;
  $("merged-list").replaceChildren(...(t.merged || []).map((id) =>
    el("li", {}, `${known(id)} is merged into this one. `, el("button", { type: "button", text: `Separate ${noun} ${id} again`, onclick: () => edit(`/themes/${id}/unmerge`, "POST", null, `${noun} ${id} separated again.`) }))));
}

async function edit(path, method, body, message) {
  try {
    const answer = await api(`/v1/projects/${state.project}${path}`, { method, body });
    const [page, trends] = await Promise.all([
      api(`/v1/projects/${state.project}/themes?limit=500&include_hidden=true${segmentQuery()}`),
      api(`/v1/projects/${state.project}/trends${segmentQuery("?")}`),
      loadTree(),
    ]);
    state.themes = page.themes;
    state.trends = trends;
    let current = answer;
    try { current = await api(`/v1/projects/${state.project}/nodes/${state.theme.id}${segmentQuery("?")}`); } catch (error) { /* merged away */ }
    state.theme = current;
    renderTheme(current);
    renderThemes();
    renderTree();
    renderCharts();
    say("edit-status", message);
  } catch (error) {
    say("edit-status", `Not saved: ${error.message}`, true);
  }
}

// ---------------------------------------------------------------- wiring

document.addEventListener("DOMContentLoaded", () => {
  $("key-form").addEventListener("submit", (e) => { e.preventDefault(); useKey($("api-key").value); });
  $("file").addEventListener("change", (e) => { if (e.target.files[0]) previewFile(e.target.files[0]); });
  $("upload-form").addEventListener("submit", upload);
  $("open-project").addEventListener("click", () => { if ($("project").value) openProject($("project").value); });
  $("search").addEventListener("input", renderThemes);
  $("segment-column").addEventListener("change", fillSegmentValues);
  $("segment-form").addEventListener("submit", chooseSegment);
  $("segment-clear").addEventListener("click", () => { state.segment = null; openProject(state.project); });
  $("show-hidden").addEventListener("change", async () => {
    renderThemes();
    try { await loadTree(); renderTree(); } catch (error) { say("upload-status", `Could not load the tree: ${error.message}`, true); }
  });
  for (const th of document.querySelectorAll("#themes-table th[data-key]")) {
    th.querySelector("button").addEventListener("click", () => {
      const key = th.dataset.key;
      state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : key === "name" ? 1 : -1 };
      renderThemes();
    });
  }
  $("back").addEventListener("click", () => { $("theme-view").hidden = true; $("explorer").hidden = false; });
  $("more-comments").addEventListener("click", moreMembers);
  $("make-token").addEventListener("click", makeToken);
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
    edit(`/themes/${state.theme.id}/merge`, "POST", { themes: [other] }, `Theme ${other} merged into this one.`);
  });
  if (state.key) { $("api-key").value = state.key; useKey(state.key); }
});
