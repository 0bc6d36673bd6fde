// The overview, the first screen: how many comments over which period and how they feel; the categories as one
// chart of share and sentiment; what changed (alerts, new and rising themes); the trend of the largest categories;
// the largest themes. Figures whose data is absent (dates, ratings) are left out, not shown as dashes.
"use strict";

const CATEGORY_BARS = 12; // then an "others" bar
const THEME_BARS = 12;
const TREND_LINES = 5;
const CHANGES_SHOWN = 6;
const ALERT_KINDS = { new_theme: "New theme", spike: "Spike", sentiment_drop: "Sentiment drop" };

function fact(term, ...value) {
  return el("div", { class: "fact" }, el("dt", { text: term }), el("dd", {}, ...value));
}

function meanRating(ratings) {
  const rated = ratings.reduce((n, r) => n + r.count, 0);
  return rated ? { mean: ratings.reduce((s, r) => s + r.rating * r.count, 0) / rated, count: rated } : null;
}

function renderHeadline() {
  const stats = state.stats, s = stats.sentiment, total = Math.max(1, s.negative + s.neutral + s.positive);
  const split = { negative: s.negative / total, neutral: s.neutral / total, positive: s.positive / total };
  const facts = [fact("Comments", el("strong", { text: count(stats.documents) }),
    state.segment ? ` of ${count(state.project.n_documents)}` : "")];
  if (stats.period) {
    const first = day(stats.period.first), last = day(stats.period.last);
    facts.push(fact("Period", first === last ? first : `${first} – ${last}`));
  }
  facts.push(fact("Sentiment", sentimentSplit(split)));
  const rating = meanRating(stats.ratings || []);
  if (rating) facts.push(fact("Mean rating", el("strong", { text: rating.mean.toFixed(2) }), ` · ${count(rating.count)} rated`));
  const categories = state.tree.length, themes = state.themes.filter((t) => !t.hidden).length;
  facts.push(fact("Themes", `${plural(categories, "category", "categories")} · ${plural(themes, "theme")}`));
  $("headline").replaceChildren(...facts);
}

function changeMeta(id, level) {
  // The node's share change over the last period, as an arrow and points (nothing without dates).
  const change = changeOf(level, id);
  if (!present(change) || Math.abs(change) < 0.0005) return null;
  return el("span", { class: change > 0 ? "change up" : "change down", title: `share ${change > 0 ? "up" : "down"} ${pct1(Math.abs(change))} points in the last ${state.trends[level].period}` },
    `${change > 0 ? "▲" : "▼"} ${(Math.abs(change) * 100).toFixed(1)} pt`);
}

function nodeBarItems(nodes, level) {
  return nodes.map((n) => ({ id: n.id, name: nameOf(n), value: n.share, count: n.size, mean: n.sentiment_mean, level }));
}

function barCells(item) {
  // The mood and, with dates, the change of a node's bar.
  return hasDates() ? [moodChip(item.mean), changeMeta(item.id, item.level)] : [moodChip(item.mean)];
}

function renderCategoryChart() {
  const categories = state.tree.filter((c) => !c.hidden).sort((a, b) => b.share - a.share);
  const items = topWithOthers(nodeBarItems(categories, 1), CATEGORY_BARS, "other categories");
  $("category-chart").replaceChildren(categories.length ?
    barList(items, { label: "Categories by share of comments", open: (item) => openNode(item.id), cells: barCells }) :
    el("p", { class: "note", text: "No categories yet." }));
}

function alertLine(alert) {
  const f = alert.figures || {};
  const parts = [];
  if (present(f.share)) parts.push(`${pct1(f.share)} of ${alert.window === "batch" ? "the upload" : `the last ${alert.window}`}`);
  if (present(f.baseline_share)) parts.push(`vs ${pct1(f.baseline_share)} before`);
  if (alert.kind === "sentiment_drop" && present(f.sentiment_mean) && present(f.baseline_sentiment)) {
    parts.push(`sentiment ${signed(f.sentiment_mean)} vs ${signed(f.baseline_sentiment)}`);
  }
  if (present(f.count)) parts.push(plural(f.count, "comment"));
  return parts.join(" · ");
}

function nodeLink(node, text = nameOf(node)) {
  return el("button", { type: "button", class: "link", dir: "auto", "data-node": node.id, text, onclick: () => openNode(node.id) });
}

function alertItem(alert, withExamples) {
  const theme = alert.theme || {};
  const item = el("li", { "data-alert": String(alert.id), "data-kind": alert.kind },
    el("span", { class: `kind ${alert.kind}`, text: ALERT_KINDS[alert.kind] || alert.kind }), " ",
    theme.id !== undefined && state.nodes.has(theme.id) ? nodeLink(theme) : userText("span", theme.name || ""),
    el("span", { class: "meta", text: `${alertLine(alert)} · ${day(alert.created_at)}` }));
  if (withExamples) {
    item.append(userText("p", alert.title, { class: "alert-title" }),
      el("ul", { class: "comments" }, ...(alert.examples || []).slice(0, 2).map((e) => commentItem(e.doc_id, e.text, [], []))));
  }
  return item;
}

function risingThemes() {
  // Themes new in the newest upload, and themes whose share rose most in the last period.
  const out = [];
  for (const t of state.themes) {
    if (t.hidden) continue;
    const change = changeOf(2, t.id);
    if (t.is_new && state.project.jobs > 1) out.push({ theme: t, kind: "new", score: 1 + t.share });
    else if (t.emerging || (present(change) && change > 0.005)) out.push({ theme: t, kind: "rising", change, score: change || 0 });
  }
  return out.sort((a, b) => b.score - a.score);
}

function renderChanges() {
  const alerts = state.alerts, rising = risingThemes();
  const alertItems = alerts.slice(0, 3).map((a) => alertItem(a, false));
  const alerted = new Set(alerts.slice(0, 3).map((a) => a.theme && a.theme.id));
  const risingItems = rising.filter((r) => !alerted.has(r.theme.id)).slice(0, CHANGES_SHOWN - alertItems.length).map(({ theme, kind, change }) =>
    el("li", { "data-node": theme.id, "data-kind": kind },
      el("span", { class: `kind ${kind}`, text: kind === "new" ? "New" : "Rising" }), " ", nodeLink(theme),
      el("span", { class: "meta", text: kind === "new" ? `${pct1(theme.share)} of comments, first seen in the newest upload` :
        present(change) ? `${pct1(theme.share)} of comments, ${signed(change * 100, 1)} pt in the last ${state.trends[2].period}` :
        `${pct1(theme.share)} of comments, share rising` })));
  const items = [...alertItems, ...risingItems];
  if (!items.length) {
    items.push(el("li", { class: "note", text: state.project.jobs > 1 ? "Nothing stands out in the newest upload." :
      "Changes show from the project's second upload on, or as soon as the comments have dates." }));
  }
  $("changes").replaceChildren(...items);
  $("alerts").replaceChildren(...alerts.map((a) => alertItem(a, true)));
  $("more-alerts").hidden = alerts.length === 0;
  $("more-alerts").querySelector("summary").textContent =
    alerts.length === 1 ? "The alert, with examples" : `All ${count(alerts.length)} alerts, with examples`;
}

function trendLines(level, nodes, n) {
  const trends = state.trends[level];
  return nodes.slice(0, n).map((node) => {
    const series = seriesOf(level, node.id);
    return { name: nameOf(node), values: series ? series.shares : trends.periods.map(() => 0), note: pct(node.share) };
  });
}

function renderCategoryTrend() {
  const trends = state.trends[1];
  const dated = Boolean(trends && trends.period && trends.periods.length > 1);
  $("category-trend-panel").hidden = !dated;
  if (!dated) { $("category-trend").replaceChildren(); return; }
  const categories = state.tree.filter((c) => !c.hidden).sort((a, b) => b.share - a.share);
  $("category-trend").replaceChildren(lineChart(trendLines(1, categories, TREND_LINES), trends.periods,
    { label: `Share of comments per ${trends.period} of the ${TREND_LINES} largest categories`, period: trends.period }));
}

function renderTopThemes() {
  const themes = state.themes.filter((t) => !t.hidden).sort((a, b) => b.size - a.size);
  const items = topWithOthers(themes.map((t) => ({ id: t.id, name: nameOf(t), value: t.share, count: t.size,
    mean: t.sentiment.mean, level: 2 })), THEME_BARS, "other themes");
  $("top-themes").replaceChildren(themes.length ?
    barList(items, { label: "The largest themes by share of comments", open: (item) => openNode(item.id), cells: barCells }) :
    el("p", { class: "note", text: "No themes yet." }));
}

function renderOverview() {
  $("overview-heading").textContent = `Overview: ${state.project.name || "project"}`;
  renderHeadline();
  renderCategoryChart();
  renderChanges();
  renderCategoryTrend();
  renderTopThemes();
}
