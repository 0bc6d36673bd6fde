// Charts as HTML and SVG built from text nodes and attributes: bar lists (a label by name on every bar, the top N
// and an "others" bar), line charts with the legend beside the plot and the data as a table, sentiment splits. Each
// chart carries its text alternative: bar lists are text; line charts have an aria-label and a data table.
"use strict";

const LINE_COLOURS = ["#0b57d0", "#c5221f", "#137333", "#b06000", "#8430ce", "#007b83", "#d01884", "#5f6368"];

function topWithOthers(items, n, othersLabel = "others") {
  // The first `n` items (sorted largest first) and, when there are more, one "others" item: how many, and the share
  // of the largest of them (a comment can be in several themes, so the rest's shares do not add up).
  if (items.length <= n + 1) return items;
  const rest = items.slice(n);
  const largest = Math.max(...rest.map((item) => item.value));
  return [...items.slice(0, n), { others: true, name: `${rest.length} ${othersLabel}`, value: largest, text: `each ≤ ${pct1(largest)}` }];
}

function barList(items, { label, max, format = pct, open = null, cells = null }) {
  // One row per item: its name (a button when `open` is given), a bar of `value` (relative to `max`) coloured by its
  // mean sentiment, the value (and count) as text, then the cells `cells(item)` gives, each in a column of its own.
  const top = max || Math.max(...items.map((i) => i.value), 1e-9);
  const list = el("ol", { class: "bars", "aria-label": label });
  for (const item of items) {
    const name = item.others || !open ?
      userText("span", item.name, { class: item.others ? "bar-name others" : "bar-name" }) :
      el("button", { type: "button", class: "bar-name link", dir: "auto", title: item.name, "data-node": item.id, text: item.name, onclick: () => open(item) });
    const fill = el("span", { class: "bar-fill" });
    fill.style.width = `${Math.max(0.5, (100 * item.value) / top)}%`;
    fill.style.background = item.others ? "#c4c7cc" : moodColour(item.mean);
    const figures = item.text ? item.text : [format(item.value), ...(present(item.count) ? [count(item.count)] : [])].join(" · ");
    const extra = cells && !item.others ? cells(item) : [];
    list.append(el("li", { "data-node": item.id, class: item.others ? "others" : null },
      name, el("span", { class: "bar-track", "aria-hidden": "true" }, fill), el("span", { class: "bar-value", text: figures }),
      ...extra.map((c) => el("span", { class: "bar-cell" }, c))));
  }
  return list;
}

function moodChip(mean) {
  // The mean sentiment as a word and number, coloured (the word says what the colour does).
  if (!present(mean)) return null;
  const chip = el("span", { class: "mood", title: `mean sentiment ${signed(mean)} (−1 to +1)` },
    el("span", { class: "mood-dot", "aria-hidden": "true" }), `${moodWord(mean)} ${signed(mean)}`);
  chip.firstChild.style.background = moodColour(mean);
  return chip;
}

function sentimentSplit(sentiment, width = 160) {
  // Negative / neutral / positive fractions as one stacked bar with its text.
  const box = svg("svg", { class: "split", width, height: 12, viewBox: `0 0 ${width} 12`, preserveAspectRatio: "none", "aria-hidden": "true" });
  let x = 0;
  for (const part of ["negative", "neutral", "positive"]) {
    const w = (sentiment[part] || 0) * width;
    box.append(svg("rect", { class: part, x, y: 0, width: w, height: 12 }));
    x += w;
  }
  return el("span", { class: "split-box" }, box,
    el("span", { text: `${pct(sentiment.negative)} negative · ${pct(sentiment.neutral)} neutral · ${pct(sentiment.positive)} positive` }));
}

function periodLabel(period, value) {
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  const options = period === "month" ? { month: "short", year: "numeric" } : { day: "numeric", month: "short" };
  return d.toLocaleDateString("en-GB", { ...options, timeZone: "UTC" });
}

function lineChart(lines, periods, { label, period, yLabel = "share of comments", format = pct }) {
  // Lines over the periods in an SVG that scales with its box; the legend (name and last value) beside the plot,
  // the figures as a table under a disclosure.
  const W = 640, H = 220, left = 44, right = 10, top = 10, bottom = 28;
  const max = Math.max(1e-9, ...lines.flatMap((l) => l.values));
  const x = (i) => left + (periods.length > 1 ? (i / (periods.length - 1)) * (W - left - right) : (W - left - right) / 2);
  const y = (v) => top + (1 - v / max) * (H - top - bottom);
  const plot = svg("svg", { class: "line-chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label, preserveAspectRatio: "xMidYMid meet" });
  for (const t of [0, 0.5, 1]) {
    plot.append(svg("line", { class: "grid", x1: left, x2: W - right, y1: y(max * t), y2: y(max * t) }));
    const tick = svg("text", { class: "tick", x: left - 6, y: y(max * t) + 4, "text-anchor": "end" });
    tick.textContent = format(max * t);
    plot.append(tick);
  }
  const every = Math.max(1, Math.ceil(periods.length / 8)), last = periods.length - 1;
  periods.forEach((p, i) => {
    const shown = i % every === 0 ? i + every <= last || i === last : i === last && last % every >= every / 2;
    if (!shown) return;
    const tick = svg("text", { class: "tick", x: x(i), y: H - 8, "text-anchor": "middle" });
    tick.textContent = periodLabel(period, p);
    plot.append(tick);
  });
  lines.forEach((line, n) => {
    const colour = LINE_COLOURS[n % LINE_COLOURS.length];
    plot.append(svg("polyline", { class: "series", stroke: colour, points: line.values.map((v, i) => `${x(i)},${y(v)}`).join(" ") }));
    line.values.forEach((v, i) => plot.append(svg("circle", { cx: x(i), cy: y(v), r: 2.5, fill: colour })));
  });
  const legend = lines.length < 2 ? null : el("ul", { class: "legend", "aria-label": "Legend" }, ...lines.map((line, n) => {
    const swatch = el("span", { class: "swatch", "aria-hidden": "true" });
    swatch.style.background = LINE_COLOURS[n % LINE_COLOURS.length];
    return el("li", {}, swatch, userText("span", line.name), line.note ? el("span", { class: "note", text: line.note }) : null);
  }));
  const table = el("table", { class: "data-table" },
    el("caption", { text: `${label} (${yLabel})` }),
    el("thead", {}, el("tr", {}, el("th", { scope: "col", text: period || "period" }),
      ...lines.map((l) => el("th", { scope: "col", dir: "auto", text: l.name })))),
    el("tbody", {}, ...periods.map((p, i) => el("tr", {}, el("th", { scope: "row", text: periodLabel(period, p) }),
      ...lines.map((l) => el("td", { class: "num", text: format(l.values[i] || 0) }))))));
  return el("figure", { class: "line-figure" },
    el("div", { class: legend ? "line-layout" : "" }, el("div", { class: "plot" }, el("p", { class: "axis-title", text: yLabel }), plot), legend),
    el("details", {}, el("summary", { text: "The figures as a table" }), table));
}

// A change between two periods counts only when both have at least this many comments (else it is noise).
const MIN_PERIOD_COMMENTS = 50;

function seriesOf(level, id) {
  // A node's trend ({theme_id, counts, shares} per period) among its level's; null without dates.
  const trends = state.trends[level];
  return (trends && trends.period && trends.byId.get(id)) || null;
}

function changeOf(level, id) {
  // A node's share change from the period before the last to the last one; null without two periods of enough
  // comments.
  const series = seriesOf(level, id);
  if (!series || series.shares.length < 2) return null;
  const n = series.shares.length, totals = state.trends[level].totals || [];
  if (!(totals[n - 1] >= MIN_PERIOD_COMMENTS && totals[n - 2] >= MIN_PERIOD_COMMENTS)) return null;
  return series.shares[n - 1] - series.shares[n - 2];
}
