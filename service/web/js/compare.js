// The compare view: two segments (a value of a column against another value or against every other comment) or
// two periods, and the themes whose shares differ significantly (two-proportion test, false discovery rate 5%).
"use strict";

const COMPARE_ROWS = 15;
const REST = "\u0000rest"; // the B value meaning "every other comment"

function fillCompareForm() {
  // The columns into both sides (B also offers "every other comment"); the periods default to the two halves.
  const options = () => state.columns.map((c) => el("option", { value: c.name, text: c.name }));
  for (const side of ["a", "b"]) {
    const select = $(`${side}-column`), chosen = select.value;
    select.replaceChildren(...options());
    choose(select, chosen);
  }
  fillCompareValues();
  const period = state.period;
  const periods = document.querySelector("input[name=compare-kind][value=periods]");
  periods.disabled = !period;
  document.querySelector("input[name=compare-kind][value=segments]").disabled = state.columns.length === 0;
  if (state.columns.length === 0 && period) periods.checked = true;
  if (period && !$("a-from").value) {
    const first = new Date(period.first), last = new Date(period.last);
    const middle = new Date((first.getTime() + last.getTime()) / 2);
    const iso = (d) => d.toISOString().slice(0, 10);
    $("b-from").value = iso(first);
    $("b-to").value = iso(new Date(middle.getTime() - 86400000));
    $("a-from").value = iso(middle);
    $("a-to").value = iso(last);
  }
  showCompareKind();
}

function fillCompareValues() {
  fillValues($("a-column"), $("a-value"), $("a-value").value);
  const chosen = $("b-value").value;
  fillValues($("b-column"), $("b-value"), null);
  $("b-value").prepend(el("option", { value: REST, text: "every other comment" }));
  $("b-value").value = REST;
  choose($("b-value"), chosen);
  $("b-value").disabled = false;
}

function showCompareKind() {
  const periods = document.querySelector("input[name=compare-kind]:checked").value === "periods";
  $("compare-segments").hidden = periods;
  $("compare-periods").hidden = !periods;
}

function compareQuery() {
  const q = new URLSearchParams({ level: $("compare-level").value });
  if (document.querySelector("input[name=compare-kind]:checked").value === "periods") {
    for (const id of ["a-from", "a-to", "b-from", "b-to"]) if ($(id).value) q.append(id.replace("-", "_"), $(id).value);
  } else {
    q.append("a", `${$("a-column").value}=${$("a-value").value}`);
    if ($("b-value").value !== REST) q.append("b", `${$("b-column").value}=${$("b-value").value}`);
  }
  return q.toString();
}

function sideName(side) {
  if (side.rest) return "every other comment";
  const parts = [...(side.conditions || [])];
  if (side.from) parts.push(`from ${day(side.from)}`);
  if (side.to) parts.push(`to ${day(side.to)}`);
  return parts.join(", ") || "all comments";
}

function differenceBar(difference, scale) {
  // A bar from the middle: right (A more) or left (B more), with the points as text.
  const track = el("span", { class: "diff-track", "aria-hidden": "true" });
  const fill = el("span", { class: difference >= 0 ? "diff-fill a" : "diff-fill b" });
  const half = Math.min(50, (50 * Math.abs(difference)) / scale);
  fill.style.width = `${half}%`;
  fill.style.left = difference >= 0 ? "50%" : `${50 - half}%`;
  track.append(fill);
  return el("span", { class: "diff" }, track, el("span", { class: "num", text: `${signed(difference * 100, 1)} pt` }));
}

function compareTable(rows, caption) {
  const scale = Math.max(1e-9, ...rows.map((r) => Math.abs(r.difference)));
  return el("table", { class: "compare-table" },
    el("caption", { text: caption }),
    el("thead", {}, el("tr", {}, ...["Theme", "A", "B", "Difference (A − B)", "Ratio"].map((h, i) =>
      el("th", { scope: "col", class: i === 0 || i === 3 ? null : "num", text: h })))),
    el("tbody", {}, ...rows.map((r) => el("tr", { "data-node": r.id },
      el("th", { scope: "row" }, state.nodes.has(r.id) ? nodeLink({ id: r.id, name: r.name }) : userText("span", r.name)),
      el("td", { class: "num", text: pct1(r.a.share) }), el("td", { class: "num", text: pct1(r.b.share) }),
      el("td", {}, differenceBar(r.difference, scale)),
      el("td", { class: "num", title: `q = ${r.q_value.toPrecision(2)}`, text: present(r.lift) ? `×${r.lift.toFixed(1)}` : "new" })))));
}

async function runCompare(event) {
  if (event) event.preventDefault();
  const periods = document.querySelector("input[name=compare-kind]:checked").value === "periods";
  if (!periods && !$("a-column").value) { say("compare-summary", "Choose a column and a value for A.", true); return; }
  say("compare-summary", "Comparing…");
  try {
    const answer = await api(projectPath(`/compare?${compareQuery()}`));
    const significant = answer.themes.filter((r) => r.significant);
    const noun = { 1: "categories", 2: "themes", 3: "sub-themes" }[answer.level];
    say("compare-summary", `A: ${sideName(answer.a)} (${plural(answer.a.n_documents, "comment")}) against B: ` +
      `${sideName(answer.b)} (${plural(answer.b.n_documents, "comment")}). ${significant.length} of ${answer.themes.length} ` +
      `${noun} differ significantly (false discovery rate ${pct(answer.alpha)}).`);
    const shown = significant.slice(0, COMPARE_ROWS);
    $("compare-result").replaceChildren(
      shown.length ? compareTable(shown, `The ${noun} whose shares differ most, significant ones only`) :
        el("p", { class: "note", text: `No ${noun} differ significantly.` }),
      significant.length > COMPARE_ROWS ? el("p", { class: "note", text: `${significant.length - COMPARE_ROWS} more differ significantly, by less.` }) : "");
  } catch (error) {
    say("compare-summary", `Could not compare: ${error.message}`, true);
  }
}
