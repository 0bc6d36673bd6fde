// feedback-themes web page, shared by every view: the page's state, building elements, calling the /v1 API, and
// formatting figures. Plain scripts (no modules), loaded in order by index.html; their top-level names are shared.
// Every piece of data (comments above all: they are untrusted HTML) goes into the page as text (textContent,
// createTextNode, attribute values); nothing is ever parsed as HTML.
"use strict";

const state = {
  key: sessionStorage.getItem("ft-key") || "",
  projects: [],
  project: null, // the open project's record (GET /v1/projects/{id})
  themes: [], // the themes (level 2), full records
  tree: [], // the categories, each with its themes (children), each with its sub-themes (children)
  nodes: new Map(), // node id → {node, parent} over the whole tree
  trends: {}, // level → GET /trends?level=
  stats: null,
  alerts: [],
  columns: [], // the project's metadata columns offered as segments, each with its frequent values
  segment: null, // {column, value, from, to}: every view then shows that segment's figures
  expanded: new Set(), // ids of the tree nodes shown open
  theme: null, // the node open on its page
  memberCursor: null,
  file: null,
  view: "overview",
};
window.feedbackThemes = state; // for the browser tests and the curious

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  return node;
}

// ---------------------------------------------------------------- the API

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

const projectPath = (path = "") => `/v1/projects/${encodeURIComponent(state.project.id)}${path}`;

// The query string of the chosen filter ("" for every comment), each part starting with `sep` then "&".
function segmentQuery(sep = "&") {
  const s = state.segment;
  if (!s) return "";
  const parts = [];
  if (s.column) parts.push(`segment=${encodeURIComponent(`${s.column}=${s.value}`)}`);
  if (s.from) parts.push(`from=${encodeURIComponent(s.from)}`);
  if (s.to) parts.push(`to=${encodeURIComponent(s.to)}`);
  return parts.length ? sep + parts.join("&") : "";
}

function say(id, message, isError = false) {
  const node = $(id);
  node.textContent = message;
  node.classList.toggle("error", isError);
}

// ---------------------------------------------------------------- figures and names

const NUMBER = new Intl.NumberFormat("en");
const count = (n) => NUMBER.format(n);
const pct = (v) => `${(v * 100).toFixed(v > 0 && v < 0.1 ? 1 : 0)}%`;
const pct1 = (v) => `${(v * 100).toFixed(1)}%`;
const signed = (v, digits = 2) => (v >= 0 ? "+" : "−") + Math.abs(v).toFixed(digits);
const plural = (n, one, many = `${one}s`) => `${count(n)} ${n === 1 ? one : many}`;
const present = (v) => v !== null && v !== undefined && !(typeof v === "number" && Number.isNaN(v));

function day(value) {
  // An ISO date or datetime as "16 Feb 2015" (in UTC, as the API counts days).
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? String(value) :
    d.toLocaleDateString("en-GB", { day: "numeric", month: "short", year: "numeric", timeZone: "UTC" });
}

function moodWord(mean) {
  if (!present(mean)) return "";
  if (mean <= -0.35) return "very negative";
  if (mean <= -0.05) return "negative";
  if (mean < 0.05) return "neutral";
  if (mean < 0.35) return "positive";
  return "very positive";
}

function moodColour(mean) {
  // A diverging scale: red below zero, grey near it, green above (the number is always shown beside it).
  if (!present(mean)) return "#8a8f98";
  const t = Math.max(-1, Math.min(1, mean / 0.6));
  const grey = [138, 143, 152], red = [197, 34, 31], green = [19, 115, 51];
  const to = t < 0 ? red : green, w = Math.abs(t);
  return `rgb(${grey.map((g, i) => Math.round(g + (to[i] - g) * w)).join(",")})`;
}

// A node's name: the short phrase the analysis gave it, or the one a user renamed it to (older records: the label).
const nameOf = (node) => node.name || node.label || `theme ${node.id}`;
const LEVEL_NOUNS = { 1: "category", 2: "theme", 3: "sub-theme" };
const levelNoun = (node) => LEVEL_NOUNS[node.level] || "theme";

const hasDates = () => Boolean(state.trends[1] && state.trends[1].period);
const hasRatings = () => Boolean(state.stats && state.stats.ratings && state.stats.ratings.length);

function choose(select, value) {
  // Selects `value` when the select offers it (else leaves its first option chosen).
  if (present(value) && [...select.options].some((o) => o.value === String(value))) select.value = String(value);
}

function userText(tag, text, attrs = {}) {
  // An element holding text a user or a customer wrote: as text, its direction taken from the text itself.
  return el(tag, { dir: "auto", ...attrs, text });
}
