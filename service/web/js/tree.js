// The theme tree to walk: category → theme → sub-theme, one aligned row per node, searchable and sortable by size,
// sentiment, change or impact on rating. The change column shows only when the comments have dates, rating and
// impact only when they have ratings.
"use strict";

async function fetchTree() {
  // The tree: categories → themes → sub-themes, each node compact (id, level, name, keywords, size, share,
  // sentiment_mean, rating_mean, impact, emerging, children). Hidden nodes (flagged `hidden`) only while asked for.
  const hidden = $("show-hidden").checked ? "?include_hidden=true" : "";
  const tree = await api(projectPath(`/tree${hidden}${segmentQuery(hidden ? "&" : "?")}`));
  return tree.categories || [];
}

function useTree(categories) {
  state.tree = categories;
  state.nodes = new Map();
  const index = (node, parent) => {
    state.nodes.set(node.id, { node, parent });
    for (const child of node.children || []) index(child, node);
  };
  for (const category of state.tree) index(category, null);
}

const NUMERIC = new Set(["Comments", "Rating", "Impact on rating"]);

function treeColumns() {
  // The columns after the name: [heading, cell builder, grid width, shown on a phone].
  const columns = [
    ["Share", (n) => shareCell(n), "minmax(7rem, 1.2fr)", true],
    ["Comments", (n) => el("span", { class: "num", text: count(n.size) }), "5.5rem", false],
    ["Sentiment", (n) => moodChip(n.sentiment_mean) || el("span"), "9.5rem", true],
  ];
  if (hasDates()) columns.push([`Change (last ${state.trends[1].period})`, (n) => changeMeta(n.id, n.level) || el("span"), "6.5rem", false]);
  if (hasRatings()) {
    columns.push(["Rating", (n) => el("span", { class: "num", text: present(n.rating_mean) ? n.rating_mean.toFixed(2) : "" }), "4rem", false]);
    columns.push(["Impact on rating", (n) => el("span", { class: "num", text: present(n.impact) ? signed(n.impact) : "" }), "5.5rem", false]);
  }
  return columns;
}

function shareCell(node) {
  const fill = el("span", { class: "bar-fill" });
  fill.style.width = `${Math.min(100, Math.max(1, node.share * 100 / state.maxShare))}%`;
  fill.style.background = moodColour(node.sentiment_mean);
  return el("span", { class: "share" }, el("span", { class: "bar-track", "aria-hidden": "true" }, fill),
    el("span", { class: "num", text: pct1(node.share) }));
}

const SORTS = {
  size: (a, b) => b.size - a.size,
  sentiment: (a, b) => (a.sentiment_mean ?? 0) - (b.sentiment_mean ?? 0),
  change: (a, b) => (changeOf(b.level, b.id) ?? -Infinity) - (changeOf(a.level, a.id) ?? -Infinity),
  impact: (a, b) => (a.impact ?? Infinity) - (b.impact ?? Infinity),
};

function matches(node, query) {
  return nameOf(node).toLowerCase().includes(query) || (node.keywords || []).some((k) => k.toLowerCase().includes(query));
}

function visibleTree(nodes, query, sort) {
  // The nodes sorted at every level; with a query, only those matching or holding a match (those shown open).
  const out = [];
  for (const node of [...nodes].sort((a, b) => sort(a, b) || a.id - b.id)) {
    const children = visibleTree(node.children || [], query, sort);
    if (!query || matches(node, query) || children.length) out.push({ ...node, children, open: Boolean(query && children.length) });
  }
  return out;
}

let treeItems = 0; // numbers the rendered child lists: ids stay unique even where a node is shown twice

function treeItem(node, columns) {
  const children = node.children || [];
  const open = node.open || state.expanded.has(node.id);
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
  name.append(el("button", { type: "button", class: "theme-link", dir: "auto", "data-theme": node.id, text: nameOf(node), onclick: () => openNode(node.id) }));
  if (node.emerging) name.append(el("span", { class: "badge emerging", title: "emerging: new, or its share is rising", text: "▲ emerging" }));
  if (node.hidden) name.append(el("span", { class: "badge hidden", text: "hidden" }));
  const row = el("div", { class: "node-row", "data-level": node.level }, name,
    ...columns.map(([title, cell, , phone]) => el("span", { class: phone ? "cell" : "cell wide-only" },
      el("span", { class: "sr-only", text: `${title}: ` }), cell(node))));
  const item = el("li", { "data-node": node.id, "data-level": node.level }, row);
  if (children.length) {
    const list = el("ul", { id: listId, class: "children" }, ...children.map((c) => treeItem(c, columns)));
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

function expandAll() {
  const open = state.expanded.size === 0;
  state.expanded = new Set(open ? [...state.nodes.keys()] : []);
  $("expand-all").textContent = open ? "Close all" : "Open all";
  renderTree();
}

function renderTree() {
  const columns = treeColumns();
  const wide = ["minmax(12rem, 2.4fr)", ...columns.map((c) => c[2])].join(" ");
  const narrow = ["minmax(8rem, 1fr)", ...columns.filter((c) => c[3]).map((c) => c[2])].join(" ");
  for (const box of [$("tree-head"), $("theme-tree")]) {
    box.style.setProperty("--cols", wide);
    box.style.setProperty("--cols-narrow", narrow);
  }
  $("tree-head").replaceChildren(el("span", { text: "Category / theme / sub-theme" }),
    ...columns.map(([title, , , phone]) => el("span", { class: `${phone ? "" : "wide-only"} ${NUMERIC.has(title) ? "num" : ""}`, text: title })));
  $("sort").querySelector("option[value=change]").hidden = !hasDates();
  $("sort").querySelector("option[value=impact]").hidden = !hasRatings();
  state.maxShare = Math.max(1e-9, ...[...state.nodes.values()].map((e) => e.node.share));
  const query = $("search").value.trim().toLowerCase();
  const shown = visibleTree(state.tree, query, SORTS[$("sort").value] || SORTS.size);
  $("theme-tree").replaceChildren(...shown.map((node) => treeItem(node, columns)));
  $("tree-empty").hidden = shown.length > 0;
}
