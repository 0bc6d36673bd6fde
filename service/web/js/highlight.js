// A comment as the page shows it: the spans (sentences) that carry a theme marked, the theme's keywords in bold,
// a long comment folded behind a button. Text nodes and elements only: a comment is never HTML.
"use strict";

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

const LONG_COMMENT = 600; // characters: a longer comment is folded to a few lines until opened

function commentItem(docId, text, spans, keywords, meta) {
  // One comment of a list: its text (marked), what is known of it, and for a long one a button to show it all.
  const body = el("span", { class: "comment-text", dir: "auto" }, withSpans(text, spans, keywords));
  const item = el("li", { "data-doc": docId }, body);
  if (meta) item.append(el("span", { class: "meta", text: meta }));
  if (text.length > LONG_COMMENT) {
    body.classList.add("folded");
    item.append(el("button", { type: "button", class: "link unfold", "aria-expanded": "false", text: "Show the whole comment",
      onclick: (event) => {
        const open = body.classList.toggle("folded") === false;
        event.currentTarget.setAttribute("aria-expanded", String(open));
        event.currentTarget.textContent = open ? "Fold it again" : "Show the whole comment";
      } }));
  }
  return item;
}

function exampleItem(example, keywords) {
  return commentItem(example.doc_id, example.text, example.span ? [example.span] : [], keywords,
    example.activation !== undefined ? `activation ${example.activation.toFixed(2)}` : null);
}
