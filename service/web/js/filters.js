// The filter bar: a value of any kept column and a date range; every view then shows the filtered comments' figures.
"use strict";

const FILTERED_VIEWS = new Set(["overview", "themes", "theme"]);

async function fetchColumns() {
  // The project's columns that can filter: with their frequent values.
  const answer = await api(projectPath("/columns?values=50"));
  return answer.columns.filter((c) => c.segment && (c.values || []).length);
}

function fillFilterColumns() {
  const options = state.columns.map((c) => el("option", { value: c.name, text: `${c.name} (${count(c.distinct_values)})` }));
  $("segment-column").replaceChildren(el("option", { value: "", text: "any" }), ...options);
  choose($("segment-column"), state.segment && state.segment.column);
  fillValues($("segment-column"), $("segment-value"), state.segment && state.segment.value);
  $("segment-fields").hidden = state.columns.length === 0;
}

function fillValues(columnSelect, valueSelect, chosen) {
  // A column's frequent values (with their counts) into `valueSelect`.
  const column = state.columns.find((c) => c.name === columnSelect.value);
  valueSelect.replaceChildren(...(column ? column.values : []).map((v) =>
    el("option", { value: v.value, dir: "auto", text: `${v.value} (${count(v.count)})` })));
  valueSelect.disabled = !column;
  choose(valueSelect, chosen);
}

function showFilterBar() {
  // The bar shows what the project can be filtered by: its columns, and dates when its comments have them.
  const period = state.stats && !state.segment ? state.stats.period : state.period;
  if (period) {
    state.period = period;
    for (const id of ["date-from", "date-to"]) {
      $(id).min = period.first.slice(0, 10);
      $(id).max = period.last.slice(0, 10);
    }
  }
  $("date-fields").hidden = !state.period;
  $("date-from").value = (state.segment && state.segment.from) || "";
  $("date-to").value = (state.segment && state.segment.to) || "";
  $("segment-form").hidden = !filterBarShown(state.view);
  $("segment-clear").hidden = !state.segment;
}

function filterBarShown(view) {
  // On the views it applies to, when the project has something to filter by.
  return FILTERED_VIEWS.has(view) && (state.columns.length > 0 || Boolean(state.period));
}

function describeSegment(segment) {
  // "airline=United, from 17 Feb 2015: 3,822 comments" as the API echoes a filter.
  if (!segment) return "";
  const parts = [...(segment.conditions || [])];
  if (segment.from) parts.push(`from ${day(segment.from)}`);
  if (segment.to) parts.push(`to ${day(segment.to)}`);
  return `${parts.join(", ")}: ${plural(segment.n_documents, "comment")}`;
}

function chooseSegment(event) {
  event.preventDefault();
  const column = $("segment-column").value;
  const segment = { column: column || null, value: column ? $("segment-value").value : null,
    from: $("date-from").value || null, to: $("date-to").value || null };
  state.segment = segment.column || segment.from || segment.to ? segment : null;
  reloadProject();
}

function clearSegment() {
  state.segment = null;
  reloadProject();
}
