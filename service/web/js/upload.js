// The upload view: a preview of the file that fits the screen (the comment column first, the others cut short), the
// column mapping guessed from the headers, and the job's progress in view, step by step, until "Done".
"use strict";

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

const GUESSES = {
  "map-text": [/^(text|comment|comments|review|review text|feedback|body|message|answer|verbatim|tweet|content)$/i,
    /text|comment|review|feedback|message|verbatim/i],
  "map-rating": [/^(rating|score|stars|nps|grade)$/i, /rating|stars|nps|score/i],
  "map-date": [/^(date|created|created_at|timestamp|time|submitted|tweet_created)$/i, /date|created|time/i],
  "map-id": [/^(id|review_id|comment_id|ticket_id|tweet_id|uuid)$/i, /(^|_)id$/i],
};
const PREVIEW_OTHER_COLUMNS = 4; // besides the comment column: the rest are named under the table

function guessMapping(headers, rows) {
  // The header each role most likely is; the comment text falls back to the column with the longest cells.
  const picks = {};
  for (const [id, patterns] of Object.entries(GUESSES)) {
    picks[id] = patterns.map((p) => guess(headers, p)).find(Boolean) || "";
  }
  if (!picks["map-text"]) {
    const length = (i) => rows.reduce((total, r) => total + (r[i] || "").length, 0);
    picks["map-text"] = headers[headers.map((_, i) => i).sort((a, b) => length(b) - length(a))[0]];
  }
  for (const id of ["map-rating", "map-date", "map-id"]) if (picks[id] === picks["map-text"]) picks[id] = "";
  return picks;
}

function renderPreview() {
  // The comment column first and wide, a few other columns narrow and cut short, the rest named below.
  const { headers, rows } = state.preview;
  const text = headers.indexOf($("map-text").value);
  const others = headers.map((_, i) => i).filter((i) => i !== text);
  const shown = [text, ...others.slice(0, PREVIEW_OTHER_COLUMNS)].filter((i) => i >= 0);
  const hiddenNames = others.slice(PREVIEW_OTHER_COLUMNS).map((i) => headers[i]);
  const table = $("preview-table");
  table.classList.toggle("has-others", shown.length > 1);
  table.tHead.replaceChildren(el("tr", {}, ...shown.map((i) => el("th", { scope: "col", dir: "auto", title: headers[i], text: headers[i] }))));
  table.tBodies[0].replaceChildren(...rows.map((r) => el("tr", {}, ...shown.map((i) =>
    el("td", { dir: "auto", title: (r[i] ?? "").slice(0, 500), text: r[i] ?? "" })))));
  $("preview-caption").textContent = `The first ${plural(rows.length, "row")} of the file` +
    (hiddenNames.length ? `; not shown: ${hiddenNames.join(", ")}` : "");
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
  const rows = parseCsv(text, detectDelimiter(text.split(/\r?\n/, 1)[0]), 7);
  if (!rows.length) { say("upload-status", "The file looks empty.", true); return; }
  const headers = rows[0];
  state.preview = { headers, rows: rows.slice(1) };
  const picks = guessMapping(headers, rows.slice(1));
  for (const [id, pick] of Object.entries(picks)) {
    const select = $(id);
    const none = id === "map-text" ? [] : [el("option", { value: "", text: "(none)" })];
    select.replaceChildren(...none, ...headers.map((h) => el("option", { value: h, text: h })));
    select.value = pick;
  }
  renderPreview();
  $("preview").hidden = false;
  $("mapping").disabled = false;
  $("upload-button").disabled = false;
  say("upload-status", `${file.name}: ${plural(headers.length, "column")}. Check the mapping, then upload.`);
}

// ---------------------------------------------------------------- the job

const STEPS = [
  ["queued", "Waiting for a worker"], ["ingest", "Reading the file"], ["embed", "Reading the sentences"],
  ["sentiment", "Scoring sentiment"], ["train", "Learning the features"], ["themes", "Naming themes and categories"],
  ["store", "Saving the results"], ["done", "Done"],
];

function duration(seconds) {
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
  const minutes = Math.round(seconds / 60);
  return minutes < 90 ? `${minutes} min` : `${(seconds / 3600).toFixed(1)} h`;
}

function showJob(job) {
  // The steps (the current one marked), the bar, and what is known: comments read, time spent and left.
  const stage = job.status === "succeeded" ? "done" : job.status === "queued" ? "queued" : job.stage || "queued";
  const at = Math.max(0, STEPS.findIndex(([key]) => key === stage));
  $("job-steps").replaceChildren(...STEPS.map(([key, title], i) => el("li", {
    "data-stage": key, class: i < at || stage === "done" ? "done" : i === at ? "current" : "todo",
    "aria-current": i === at ? "step" : null, text: title,
  })));
  const percent = Math.round((job.status === "succeeded" ? 1 : job.progress || 0) * 100);
  $("job-progress").value = percent;
  $("job-progress").textContent = `${percent}%`;
  $("job-percent").textContent = `${percent}%`;
  $("job-stage").textContent = job.status === "failed" ? "Failed" : STEPS[at][1];
  const detail = [];
  const counts = job.counts || {};
  if (present(counts.documents)) detail.push(`${count(counts.documents)} comments`);
  if (present(counts.project_documents) && counts.project_documents !== counts.documents) {
    detail.push(`${count(counts.project_documents)} in the project`);
  }
  if (job.started_at) {
    const end = job.finished_at ? new Date(job.finished_at) : new Date();
    detail.push(`${duration((end - new Date(job.started_at)) / 1000)} ${job.finished_at ? "in all" : "so far"}`);
  }
  if (present(job.eta_seconds) && job.status === "running") detail.push(`about ${duration(job.eta_seconds)} left`);
  $("job-detail").textContent = detail.join(" · ");
  $("job").dataset.status = job.status;
}

async function upload(event) {
  event.preventDefault();
  if (!state.file) return;
  const form = new FormData();
  form.append("file", state.file, state.file.name);
  form.append("text_column", $("map-text").value);
  for (const [field, id] of [["rating_column", "map-rating"], ["date_column", "map-date"], ["id_column", "map-id"]]) {
    if ($(id).value) form.append(field, $(id).value);
  }
  if (!$("keep-columns").checked) form.append("keep_columns", "none");
  if ($("upload-target").value) form.append("project", $("upload-target").value);
  $("upload-button").disabled = true;
  say("upload-status", "Uploading…");
  try {
    const job = await api("/v1/jobs", { method: "POST", body: form });
    $("job").hidden = false;
    $("job-open").hidden = true;
    showJob({ status: "queued", progress: 0, counts: {} });
    $("job").scrollIntoView({ block: "start" });
    $("job").focus({ preventScroll: true });
    say("upload-status", "Uploaded: the analysis is running. You can leave this page open or come back later.");
    await watch(job.id);
  } catch (error) {
    say("upload-status", `Upload refused: ${error.message}`, true);
  } finally {
    $("upload-button").disabled = false;
  }
}

async function watch(jobId) {
  for (;;) {
    const job = await api(`/v1/jobs/${encodeURIComponent(jobId)}`);
    showJob(job);
    if (job.status === "succeeded") {
      const counts = job.counts || {};
      const message = `Done: ${present(counts.documents) ? count(counts.documents) : "the"} comments analysed` +
        (job.started_at && job.finished_at ? ` in ${duration((new Date(job.finished_at) - new Date(job.started_at)) / 1000)}.` : ".");
      say("upload-status", message);
      $("job-open").hidden = false;
      await loadProjects();
      await openProject(job.project_id, message);
      return;
    }
    if (job.status === "failed") {
      say("upload-status", `The analysis failed: ${(job.error && (job.error.detail || job.error.title)) || "unknown error"}`, true);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 700));
  }
}
