// A node's page (a category, theme or sub-theme): its name (editable), figures, keywords, what is under it, its
// share per segment, trend, examples and comments with the carrying sentence marked; hiding and merging.
"use strict";

// Below this cohesion a theme is marked loose (docs/benchmarks.md: such themes recur in another run far less often).
const LOOSE_COHESION = 0.4;
const SEGMENT_VALUES = 12;

function openNode(nodeId) {
  location.hash = `#/theme/${nodeId}`;
}

async function showNode(nodeId) {
  const detail = await api(projectPath(`/themes/${nodeId}?limit=20${segmentQuery()}`));
  state.theme = detail.theme;
  state.memberCursor = detail.next_cursor;
  renderTheme(detail.theme);
  $("theme-comments").replaceChildren();
  appendMembers(detail.members);
  loadThemeSegments();
}

function appendMembers(members) {
  const keywords = state.theme.keywords;
  for (const m of members) {
    const meta = [];
    if (m.sentiment_label) meta.push(m.sentiment_label);
    if (present(m.rating)) meta.push(`rating ${m.rating}`);
    meta.push(`strength ${m.activation.toFixed(2)}`);
    $("theme-comments").append(commentItem(m.doc_id, m.text, m.spans, keywords, meta.join(" · ")));
  }
  $("more-comments").hidden = !state.memberCursor;
}

async function moreMembers() {
  const page = await api(projectPath(`/themes/${state.theme.id}?limit=20&cursor=${encodeURIComponent(state.memberCursor)}${segmentQuery()}`));
  state.memberCursor = page.next_cursor;
  appendMembers(page.members);
}

function renderPath(t) {
  // Where the node sits: the overview, its category (and theme), each a link.
  const ancestors = [];
  for (let at = state.nodes.get(t.id); at && at.parent; at = state.nodes.get(at.parent.id)) ancestors.unshift(at.parent);
  const crumbs = [el("li", {}, el("a", { href: "#/overview", text: "Overview" })), el("li", {}, el("a", { href: "#/themes", text: "Themes" })),
    ...ancestors.map((node) => el("li", {}, el("span", { class: "sr-only", text: `${levelNoun(node)}: ` }), nodeLink(node)))];
  $("node-path").replaceChildren(el("ol", {}, ...crumbs));
}

function renderChildren(t) {
  // A category's themes or a theme's sub-themes, from the tree (a sub-theme has none).
  const entry = state.nodes.get(t.id);
  const children = entry ? [...(entry.node.children || [])].sort((a, b) => b.size - a.size) : [];
  $("node-children-heading").textContent = t.level === 1 ? "Themes in this category" : "Sub-themes";
  $("children-panel").hidden = !children.length; // a sub-theme, or a node with nothing under it: left out
  const items = topWithOthers(nodeBarItems(children, t.level + 1), 15, t.level === 1 ? "other themes" : "other sub-themes");
  $("node-children").replaceChildren(barList(items, { label: $("node-children-heading").textContent, open: (item) => openNode(item.id), cells: barCells }));
}

function themeFacts(t) {
  const facts = [fact("Comments", el("strong", { text: count(t.size) }), ` · ${pct1(t.share)} of ${state.segment ? "the filtered" : "all"} comments`)];
  facts.push(fact("Sentiment", sentimentSplit(t.sentiment)));
  if (t.rating) facts.push(fact("Mean rating", el("strong", { text: t.rating.mean.toFixed(2) }), ` · ${count(t.rating.count)} rated`));
  if (t.impact) {
    facts.push(fact("Impact on rating", el("strong", { text: signed(t.impact.coef) }),
      el("span", { class: "note", text: ` (95% interval ${signed(t.impact.low)} to ${signed(t.impact.high)})` })));
  }
  const change = changeMeta(t.id, t.level);
  if (t.emerging || change) {
    facts.push(fact("Trend", t.emerging ? el("span", { class: "badge emerging", text: `▲ emerging${t.emerging_reason ? ` (${t.emerging_reason})` : ""}` }) : "", change));
  }
  if (present(t.span_count)) facts.push(fact("Sentences carrying it", count(t.span_count)));
  if (present(t.cohesion) && t.cohesion < LOOSE_COHESION) {
    facts.push(fact("Cohesion", `${t.cohesion.toFixed(2)}: loose, less likely to recur`));
  }
  const generated = t.original_name || t.original_label;
  if (generated) facts.push(fact("Generated name", userText("span", generated)));
  if (t.hidden) facts.push(fact("Hidden", "yes"));
  return facts;
}

function renderTheme(t) {
  const noun = levelNoun(t);
  $("theme-title").textContent = nameOf(t);
  renderPath(t);
  $("theme-facts").replaceChildren(...themeFacts(t));
  $("theme-keywords").replaceChildren(...t.keywords.map((k) => userText("li", k)));
  renderChildren(t);
  $("theme-examples").replaceChildren(...(t.examples || []).map((x) => exampleItem(x, t.keywords)));
  const trends = state.trends[t.level];
  const series = seriesOf(t.level, t.id);
  $("theme-trend-panel").hidden = !series || trends.periods.length < 2;
  $("theme-trend").replaceChildren(...(series ? [lineChart([{ name: nameOf(t), values: series.shares }], trends.periods,
    { label: `Share of comments per ${trends.period}`, period: trends.period })] : []));
  $("rename").value = nameOf(t);
  $("toggle-hidden").textContent = t.hidden ? `Show this ${noun} again` : `Hide this ${noun}`;
  // merging joins nodes of one level: themes from the themes list, categories and sub-themes from the tree
  const sameLevel = t.level === 2 || t.level === undefined ? state.themes :
    [...state.nodes.values()].map((entry) => entry.node).filter((n) => n.level === t.level);
  $("merge-label").textContent = `Merge another ${noun} into this one`;
  $("merge-select").replaceChildren(...sameLevel.filter((o) => o.id !== t.id)
    .map((o) => el("option", { value: o.id, dir: "auto", text: `${nameOf(o)} (${o.size})` })));
  const known = (id) => state.nodes.get(id) ? `“${nameOf(state.nodes.get(id).node)}” (${id})` : `${noun} ${id}`;
  $("merged-list").replaceChildren(...(t.merged || []).map((id) =>
    el("li", {}, `${known(id)} is merged into this one. `, el("button", { type: "button", text: `Separate ${noun} ${id} again`, onclick: () => edit(`/themes/${id}/unmerge`, "POST", null, `${noun} ${id} separated again.`) }))));
}

// ---------------------------------------------------------------- share per segment

function fillThemeSegmentColumns() {
  const select = $("theme-segment-column");
  const chosen = select.value;
  const columns = state.columns.filter((c) => c.type === "category" || c.type === "number");
  select.replaceChildren(...columns.map((c) => el("option", { value: c.name, text: c.name })));
  choose(select, chosen);
  $("theme-segments-panel").hidden = columns.length === 0;
}

async function loadThemeSegments() {
  fillThemeSegmentColumns();
  const column = $("theme-segment-column").value;
  if (!column || !state.theme) { $("theme-segments").replaceChildren(); return; }
  try {
    const answer = await api(projectPath(`/themes/${state.theme.id}/segments?column=${encodeURIComponent(column)}&values=${SEGMENT_VALUES}${segmentQuery()}`));
    const items = answer.values.map((v) => ({ id: v.value, name: v.value, value: v.share, n: v.n_documents, count: v.count, mean: v.sentiment_mean }));
    if (answer.others) items.push({ others: true, name: "other values", value: answer.others.share, text: pct1(answer.others.share) });
    const overall = answer.overall;
    $("theme-segments").replaceChildren(
      el("p", { class: "note", text: `Share of each value's comments in this ${levelNoun(state.theme)}; over all of them: ${pct1(overall.share)}.` }),
      barList(items, { label: `Share per ${column}`, cells: (item) => [moodChip(item.mean), el("span", { class: "note", text: `of ${count(item.n)}` })] }));
  } catch (error) {
    $("theme-segments").replaceChildren(el("p", { class: "error", text: `Could not load the segments: ${error.message}` }));
  }
}

// ---------------------------------------------------------------- edits

async function edit(path, method, body, message) {
  try {
    const answer = await api(projectPath(path), { method, body });
    if (await loadProjectData()) renderProject();
    let current = answer;
    try { current = await api(projectPath(`/nodes/${state.theme.id}${segmentQuery("?")}`)); } catch (error) { /* merged away */ }
    state.theme = current;
    renderTheme(current);
    say("edit-status", message);
  } catch (error) {
    say("edit-status", `Not saved: ${error.message}`, true);
  }
}
