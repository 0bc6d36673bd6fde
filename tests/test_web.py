"""The web page in a real headless Chromium against the real service (``feedback-themes serve``: API + worker):
enter a key, upload a CSV, watch the bar reach 100%, explore the theme tree, themes and charts, open a theme, rename
and merge; and the tree alone against a stubbed API.
Screenshots go to test-artifacts/ (gitignored)."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import httpx
import pytest

from tests.service_harness import ROOT, embedded_service

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
XSS_ID = "R9999"
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture
def browser(tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("needs Chromium at /usr/bin/chromium (apt-get install chromium; .ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the Python package playwright (test extras)")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1280, "height": 900}, accept_downloads=True,
        )  # fmt: skip
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def service(tmp_path):
    try:
        with embedded_service(tmp_path, "webtester") as running:
            yield running
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        for log in (tmp_path / "logs").glob("*.log"):
            shutil.copy(log, ARTIFACTS / f"web-{log.name}")


def upload_file(sample_csv: Path, tmp_path: Path) -> Path:
    """The sample reviews plus one comment that is an HTML/script injection attempt."""
    rows = list(csv.reader(sample_csv.open(encoding="utf-8")))
    rows.append([XSS_ID, "2026-03-01", "1", f"{XSS} The colour faded badly after the first wash.", "fabric", "negative"])
    path = tmp_path / "reviews.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return path


@pytest.mark.slow
def test_upload_progress_explore_edit_in_chromium(browser, service, sample_csv, tmp_path):
    base, key = service
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"{m.text} {m.location}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(base + "/")
    page.fill("#api-key", key)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#upload-section:not([hidden])")

    page.set_input_files("#file", str(upload_file(sample_csv, tmp_path)))
    page.wait_for_selector("#preview-table tbody tr")
    assert page.locator("#preview-table thead th").all_text_contents()[:4] == ["id", "date", "rating", "text"]
    assert [page.input_value(f"#map-{c}") for c in ("text", "rating", "date", "id")] == ["text", "rating", "date", "id"]
    page.screenshot(path=str(ARTIFACTS / "web-1-preview.png"), full_page=True)

    page.evaluate("""() => { window.__seen = [];
        new MutationObserver(() => window.__seen.push(Number(document.getElementById('job-progress').value)))
          .observe(document.getElementById('job-progress'), {attributes: true, childList: true}); }""")
    page.click("#upload-button")
    page.wait_for_function("() => document.getElementById('job-progress').value === 100", timeout=420_000, polling=200)
    seen = page.evaluate("() => window.__seen")
    assert seen == sorted(seen) and seen[-1] == 100 and len(set(seen)) >= 3, seen
    assert page.text_content("#job-percent") == "100%"

    page.wait_for_selector("#explorer:not([hidden]) #themes-table tbody tr")
    rows = page.locator("#themes-table tbody tr")
    assert rows.count() >= 5
    page.wait_for_function("() => window.feedbackThemes.charts['chart-bubble'] && "
                           "window.feedbackThemes.charts['chart-bubble'].data.datasets[0].data.length > 0")  # fmt: skip
    for chart in ("chart-bubble", "chart-shares", "chart-sentiment"):
        drawn = page.evaluate(f"""() => {{ const c = document.getElementById('{chart}');
            const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++; return n; }}""")
        assert drawn > 500, (chart, drawn)
    page.click("#themes-table th[data-key=share] button")  # sorting: descending share, then ascending
    page.click("#themes-table th[data-key=share] button")
    assert page.get_attribute("#themes-table th[data-key=share]", "aria-sort") == "ascending"
    shares = [float(s.rstrip("%")) for s in page.locator("#themes-table tbody tr td:nth-child(3)").all_text_contents()]
    assert shares == sorted(shares)
    first_label = page.locator("#themes-table tbody tr .theme-link").first.text_content()
    page.fill("#search", first_label)
    assert 1 <= rows.count() < len(shares)
    page.fill("#search", "")
    page.screenshot(path=str(ARTIFACTS / "web-2-themes.png"), full_page=True)

    # the tree: the API's categories in order, collapsed; one opened from the keyboard lists its themes by name, as the
    # themes table names them; a theme opens with its category above it
    client = httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30)
    project = client.get("/v1/projects").json()["projects"][0]["id"]
    tree = client.get(f"/v1/projects/{project}/tree").json()["categories"]
    categories = page.locator("#theme-tree > li")
    assert 1 <= categories.count() == len(tree) <= 15
    names = [categories.nth(i).locator(":scope > .node-row .theme-link").text_content() for i in range(len(tree))]
    assert names == [c["name"] for c in tree] and all(names)
    assert page.locator("#theme-tree .toggle[aria-expanded=true]").count() == 0
    assert not page.locator("#theme-tree > li > ul").first.is_visible()
    at = next(i for i, c in enumerate(tree) if any(t["children"] for t in c["children"]))  # one with sub-themes
    category = categories.nth(at)
    toggle = category.locator(":scope > .node-row .toggle")
    toggle.focus()
    page.keyboard.press("Enter")
    assert toggle.get_attribute("aria-expanded") == "true"
    links = category.locator(":scope > ul > li > .node-row .theme-link")
    assert links.all_text_contents() == [t["name"] for t in tree[at]["children"]]
    parent = next(t for t in tree[at]["children"] if t["children"])
    row = category.locator(f"li[data-node='{parent['id']}']")
    row.locator(":scope > .node-row .toggle").focus()
    page.keyboard.press("Enter")
    assert row.locator(":scope > ul .theme-link").all_text_contents() == [s["name"] for s in parent["children"]]
    row.locator(":scope > ul").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "web-2-tree.png"))
    link = links.first
    in_table = page.locator(f"#themes-table tbody tr[data-theme='{link.get_attribute('data-theme')}'] .theme-link")
    assert link.text_content() == in_table.text_content()
    link.click()
    page.wait_for_selector("#theme-view:not([hidden]) #theme-comments li")
    assert page.text_content("#theme-title") == in_table.text_content()
    assert page.text_content("#node-path") == f"In category {tree[at]['name']}"
    page.click("#back")
    page.wait_for_selector("#explorer:not([hidden])")

    # the theme holding the injected comment: its text shows as text, nothing runs
    links = list(csv.DictReader(io.StringIO(client.get(f"/v1/projects/{project}/reports/document_themes.csv").text)))
    theme_id = next(r["theme_id"] for r in links if r["doc_id"] == XSS_ID)
    page.click(f"#themes-table tbody tr[data-theme='{theme_id}'] .theme-link")
    page.wait_for_selector("#theme-view:not([hidden]) #theme-comments li")
    for _ in range(50):  # bounded: the comment is on one of the first pages
        if page.locator(f"#theme-comments li[data-doc='{XSS_ID}']").count():
            break
        page.click("#more-comments")
        page.wait_for_timeout(300)
    comment = page.locator(f"#theme-comments li[data-doc='{XSS_ID}']")
    assert XSS in comment.text_content()
    assert page.locator("#theme-comments img, #theme-comments script").count() == 0
    assert page.evaluate("() => window.__xss") is None
    assert page.locator("#theme-keywords li").count() >= 5 and page.locator("#theme-comments mark").count() >= 1
    # the spans that carry the theme are marked, at the API's offsets, in the comments and in the examples
    detail = client.get(f"/v1/projects/{project}/themes/{theme_id}", params={"limit": 20}).json()
    for member in detail["members"][:5]:
        marked = page.locator(f"#theme-comments li[data-doc='{member['doc_id']}'] mark.span").all_text_contents()
        assert member["spans"] and marked == [member["text"][s["start"] : s["end"]] for s in member["spans"]]
    examples = page.locator("#theme-examples li")
    assert examples.count() == len(detail["theme"]["examples"]) >= 1
    for i, example in enumerate(detail["theme"]["examples"]):
        assert examples.nth(i).locator("mark.span").all_text_contents() == [example["span"]["text"]]
    assert page.locator("#theme-examples img, #theme-examples script").count() == 0
    page.wait_for_function("() => window.feedbackThemes.charts['chart-theme-trend'].data.datasets[0].data.length > 0")

    # rename and merge through the page; the API (and so the reports) follow
    page.fill("#rename", "Colour fades <b>fast</b>")
    page.click("#rename-form button[type=submit]")
    page.wait_for_function("() => document.getElementById('edit-status').textContent !== ''", timeout=60_000)
    assert page.text_content("#edit-status") == "Renamed.", page.text_content("#edit-status")
    assert page.text_content("#theme-title") == "Colour fades <b>fast</b>"
    other = page.locator("#merge-select option").first.get_attribute("value")
    page.select_option("#merge-select", other)
    page.click("#merge-form button[type=submit]")
    page.wait_for_selector("#merged-list li")
    page.screenshot(path=str(ARTIFACTS / "web-3-theme.png"), full_page=True)
    theme = client.get(f"/v1/projects/{project}/themes/{theme_id}").json()["theme"]
    assert theme["label"] == "Colour fades <b>fast</b>" and theme["merged"] == [int(other)]
    themes_csv = client.get(f"/v1/projects/{project}/reports/themes.csv", params={"bom": 1})
    assert themes_csv.content.startswith("\ufeff".encode())
    rows_csv = {r["theme_id"]: r for r in csv.DictReader(io.StringIO(themes_csv.content.decode("utf-8-sig")))}
    assert rows_csv[theme_id]["label"] == "Colour fades <b>fast</b>" and other not in rows_csv

    page.click("#back")
    page.wait_for_selector("#explorer:not([hidden])")

    # a category renamed through the page: the tree and the API say its new name
    renamed_row = page.locator(f"#theme-tree > li[data-node='{tree[at]['id']}'] > .node-row .theme-link")
    renamed_row.click()
    page.wait_for_selector("#theme-view:not([hidden])")
    assert page.text_content("#node-children-heading") == "Themes in this category"
    page.fill("#rename", "Delivery <img src=x onerror=window.__xss=4>")
    page.click("#rename-form button[type=submit]")
    page.wait_for_function("() => document.getElementById('edit-status').textContent === 'Renamed.'", timeout=60_000)
    page.click("#back")
    page.wait_for_selector("#explorer:not([hidden])")
    after = {c["id"]: c["name"] for c in client.get(f"/v1/projects/{project}/tree").json()["categories"]}
    assert renamed_row.text_content() == "Delivery <img src=x onerror=window.__xss=4>" == after[tree[at]["id"]]
    assert page.locator("#explorer img").count() == 0 and page.evaluate("() => window.__xss") is None
    page.screenshot(path=str(ARTIFACTS / "web-4-renamed.png"))
    assert page.locator("#downloads button[data-report='span_themes.csv']").count() == 1
    assert page.locator("#downloads button[data-report='theme_tree.csv']").count() == 1
    assert page.locator("#downloads button[data-report^='theme_groups']").count() == 0
    with page.expect_download() as download:
        page.click("#downloads button[data-report='themes.csv']")
    saved = ARTIFACTS / "web-themes.csv"
    download.value.save_as(saved)
    assert saved.read_bytes().startswith("\ufeff".encode()) and b"Colour fades <b>fast</b>" in saved.read_bytes()
    assert not errors, errors


def test_spans_are_marked_at_code_point_offsets(browser):
    """The page's marking of spans alone (no service): offsets count code points, as Python's str does; an example's
    span whose offsets miss its text is found by its text; bad or overlapping spans are skipped; the comment stays
    text; a comment without spans (results stored before spans were kept) gets its keywords marked as before."""
    app_js = (ROOT / "service" / "web" / "app.js").read_text(encoding="utf-8")
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route("http://page.test/**", lambda route: route.fulfill(body="<!doctype html><p>", content_type="text/html"))
    page.goto("http://page.test/")
    page.add_script_tag(content=app_js)  # after the page loaded: its functions alone, nothing wired to the page
    text = "\U0001f6d2 Late again. <b>Slow</b> shipping, never again. \U0001f600 Fine."
    second, third = text.index("<b>"), text.index("\U0001f600")
    spans = [{"index": 1, "start": second, "end": third - 1, "activation": 0.8},
             {"index": 2, "start": third, "end": len(text), "activation": 0.5},
             {"index": 9, "start": second + 2, "end": third + 1, "activation": 0.1},  # overlaps one: skipped
             {"index": 7, "start": 40, "end": 20}]  # fmt: skip
    marked = page.evaluate("""([text, spans, example]) => {
        const render = (s, k) => { const p = document.createElement("p"); p.append(withSpans(text, s, k)); return p; };
        const a = render(spans, ["shipping"]), b = render([example], []), c = render(undefined, ["shipping"]);
        const texts = (p, css) => [...p.querySelectorAll(css)].map((m) => m.textContent);
        return {spans: texts(a, "mark.span"), keywords: texts(a, "mark.span mark.keyword"), whole: a.textContent,
                titles: [...a.querySelectorAll("mark.span")].map((m) => m.title), bold: a.querySelectorAll("b").length,
                example: texts(b, "mark.span"), old: texts(c, "mark"), oldSpans: c.querySelectorAll(".with-spans").length};
    }""", [text, spans, {"index": 0, "start": 0, "end": 5, "text": "Late again."}])  # fmt: skip
    assert marked["spans"] == [text[second : third - 1], text[third:]] and marked["whole"] == text
    assert marked["keywords"] == ["shipping"] and marked["bold"] == 0
    assert marked["titles"] == ["sentence 2, activation 0.80", "sentence 3, activation 0.50"]
    assert marked["example"] == ["Late again."]
    assert marked["old"] == ["shipping"] and marked["oldSpans"] == 0
    assert not errors, errors


HOSTILE = '<img src=x onerror="window.__xss=3">[b]Delivery[/b] & <i>co</i>'


def _record(node_id: int, level: int, name: str, size: int, mood: float, children: tuple = ()) -> dict:
    """A node's full record as the API gives it (``/themes/{id}``, ``/nodes/{id}``); its label is keywords-like, so
    that a page showing labels instead of names fails."""
    return {"id": node_id, "level": level, "name": name, "label": f"kw{node_id}, other",
            "keywords": [f"kw{node_id}", "x"], "size": size, "share": size / 200, "span_count": size, "cohesion": 0.6,
            "children": list(children), "sentiment": {"mean": mood, "negative": 0.2, "neutral": 0.3, "positive": 0.5},
            "rating": {"mean": 3.5, "count": size}, "examples": [], "features": [], "impact": None, "emerging": False,
            "hidden": False, "merged": []}  # fmt: skip


def _compact(record: dict, children: list[dict]) -> dict:
    """The ``/tree`` form of a node."""
    return {"id": record["id"], "level": record["level"], "name": record["name"], "keywords": record["keywords"][:5],
            "size": record["size"], "share": record["share"], "sentiment_mean": record["sentiment"]["mean"],
            "rating_mean": record["rating"]["mean"], "emerging": record["id"] == 3, "children": children}  # fmt: skip


PROJECT = {"id": "p1", "name": "Shop", "n_documents": 200, "n_themes": 3}
CHANNEL = {"name": "Channel", "type": "category", "distinct_values": 2, "filled": 200, "segment": True,
           "values": [{"value": "web", "count": 160}, {"value": "app", "count": 40}]}  # fmt: skip
SEGMENT_QUERY = "segment=Channel%3Dapp"
ALERT = {"id": 7, "kind": "spike", "window": "batch", "theme": {"id": 3, "level": 2, "name": HOSTILE},
         "title": f"Spike: “{HOSTILE}” is 20.0 % of this upload vs 5.0 % before (×4.0)",
         "figures": {"count": 20, "n": 100, "share": 0.2, "baseline_share": 0.05, "lift": 4.0, "q_value": 1e-05},
         "examples": [{"doc_id": "D1", "text": HOSTILE + " again"}, {"doc_id": "D2", "text": "late"},
                      {"doc_id": "D3", "text": "third, not shown"}],
         "created_at": "2026-11-30T12:00:00Z", "project_id": "p1", "job_id": "j2"}  # fmt: skip


class StubApi:
    """The page's static files (with the service's security headers) and a small project's /v1 answers: categories
    1000001 (hostile name; themes 3 and 5, theme 3 with sub-themes 2000001 and 2000002) and 1000002 (theme 4)."""

    def __init__(self) -> None:
        from service.api.routes_web import SECURITY, TYPES, WEB

        self.security, self.types, self.web = SECURITY, TYPES, WEB
        records = [_record(1_000_001, 1, HOSTILE, 120, -0.42, (3, 5)),
                   _record(1_000_002, 1, "Fit and sizing", 80, 0.3, (4,)),
                   _record(3, 2, "Late parcels", 70, -0.6, (2_000_001, 2_000_002)),
                   _record(5, 2, "Rude couriers", 50, -0.2), _record(4, 2, "Runs small", 80, 0.3),
                   _record(2_000_001, 3, "Stuck at customs", 30, -0.7),
                   _record(2_000_002, 3, "No tracking updates", 20, -0.5)]  # fmt: skip
        self.records = {r["id"]: r for r in records}
        self.patches: list[tuple[int, dict]] = []
        self.queries: list[tuple[str, str]] = []  # (path, query) of every /v1 request

    def tree(self, include_hidden: bool) -> dict:
        def compact(node_id: int) -> dict:
            record = self.records[node_id]
            return _compact(record, [compact(c) for c in record["children"]])

        hidden = {**_compact(_record(1_000_003, 1, "Hidden one", 5, 0.0), []), "hidden": True}
        shown = [compact(1_000_001), compact(1_000_002)]
        if include_hidden:
            shown = [{**node, "hidden": False} for node in shown] + [hidden]
        return {"metadata": {}, "categories": shown}

    def answer(self, method: str, path: str, query: str, body: str | None) -> tuple[int, object]:
        import re

        themes = [r for r in self.records.values() if r["level"] == 2]
        if path == "/v1/projects":
            return 200, {"projects": [PROJECT], "next_cursor": None}
        if path == "/v1/projects/p1":
            return 200, PROJECT
        segment = SEGMENT_QUERY in query
        if path == "/v1/projects/p1/columns":
            return 200, {"columns": [CHANNEL, {"name": "Note", "type": "text", "distinct_values": 5000, "filled": 9,
                                               "segment": False}]}  # fmt: skip
        if path == "/v1/projects/p1/themes":
            if segment:  # the app channel: a third of each theme, the largest one absent
                themes = [{**t, "size": t["size"] // 3} for t in themes if t["id"] != 4]
            metadata = {"segment": {"conditions": ["Channel=app"], "n_documents": 40}} if segment else {}
            return 200, {"metadata": metadata, "themes": sorted(themes, key=lambda r: -r["size"]), "next_cursor": None}
        if path == "/v1/projects/p1/tree":
            return 200, self.tree("include_hidden=true" in query)
        if path == "/v1/projects/p1/alerts":
            return 200, {"alerts": [ALERT], "next_cursor": None}
        if path == "/v1/projects/p1/trends":
            return 200, {"period": None, "periods": [], "totals": [], "themes": []}
        if path == "/v1/projects/p1/stats":
            return 200, {"documents": 200, "sentiment": {"negative": 80, "neutral": 40, "positive": 80},
                         "sentiment_histogram": {"counts": [5] * 10, "edges": [i / 5 - 1 for i in range(11)]},
                         "ratings": []}  # fmt: skip
        match = re.fullmatch(r"/v1/projects/p1/(themes|nodes)/(\d+)", path)
        if match and int(match[2]) in self.records:
            record = self.records[int(match[2])]
            if method == "PATCH":
                change = json.loads(body or "{}")
                self.patches.append((record["id"], change))
                record.setdefault("original_name", record["name"])
                record["name"] = record["label"] = change["label"] or record["original_name"]
                return 200, record
            return 200, record if match[1] == "nodes" else {"theme": record, "members": [], "next_cursor": None}
        return 404, {"title": "Not Found", "detail": f"no stub for {method} {path}"}

    def handle(self, route) -> None:  # type: ignore[no-untyped-def]
        from urllib.parse import urlsplit

        request = route.request
        path, query = urlsplit(request.url).path, urlsplit(request.url).query
        if path.startswith("/v1/"):
            self.queries.append((path, query))
        if path == "/" or path.startswith("/static/"):
            file = self.web / ("index.html" if path == "/" else path.removeprefix("/static/"))
            headers = {**self.security, "Content-Type": self.types[file.suffix]}
            return route.fulfill(body=file.read_bytes(), headers=headers)
        status, data = self.answer(request.method, path, query, request.post_data)
        route.fulfill(status=status, body=json.dumps(data), headers={"Content-Type": "application/json"})


def open_stub_project(browser, stub: StubApi) -> tuple:  # type: ignore[no-untyped-def]
    """A page over the stubbed API with the key given and project p1 opened; the page and its errors (console errors
    and uncaught exceptions)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"{m.text} {m.location}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route("http://page.test/**", stub.handle)
    page.goto("http://page.test/")
    page.fill("#api-key", "ft_stub")
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#upload-section:not([hidden])")
    page.select_option("#project", "p1")
    page.click("#open-project")
    page.wait_for_selector("#explorer:not([hidden]) #theme-tree > li")
    return page, errors


def test_tree_renders_expands_and_renames_in_chromium(browser):
    """The page's tree against a stubbed API (no service): categories collapsed, opened and closed from the keyboard,
    names (never labels) everywhere, a hostile name shown as text, a category renamed through the page."""
    stub = StubApi()
    page, errors = open_stub_project(browser, stub)

    categories = page.locator("#theme-tree > li")
    assert categories.count() == 2
    assert [categories.nth(i).get_attribute("data-node") for i in range(2)] == ["1000001", "1000002"]
    first = categories.first
    assert first.locator(":scope > .node-row .theme-link").text_content() == HOSTILE  # literally, as text
    assert page.locator("#explorer img, #explorer i, #explorer script").count() == 0
    assert page.evaluate("() => window.__xss") is None
    alert = page.locator("#alerts > li")  # the alerts panel: the same hostile name, as text
    assert alert.count() == 1 and alert.locator(".alert-theme").text_content() == HOSTILE
    assert alert.locator(".alert-title").text_content() == ALERT["title"]
    assert alert.locator(".comments > li").count() == 2 and HOSTILE in alert.locator(".comments").text_content()
    assert "×4.0" in alert.locator(".alert-figures").text_content()
    assert "120" in first.locator(":scope > .node-row").text_content()
    assert "60.0%" in first.locator(":scope > .node-row").text_content()
    assert first.locator(":scope > .node-row .mood").text_content() == "mean sentiment: -0.42"  # the label: unseen
    # collapsed: the themes are in the page but not shown, and the toggle says so
    toggle = first.locator(":scope > .node-row .toggle")
    assert toggle.get_attribute("aria-expanded") == "false" and not page.is_visible("#theme-tree li[data-node='3']")
    assert HOSTILE in toggle.get_attribute("aria-label")
    page.evaluate("() => document.getElementById('tree-heading').scrollIntoView()")
    page.screenshot(path=str(ARTIFACTS / "web-tree-collapsed.png"))

    # from the keyboard: Enter opens the category, Space a theme's sub-themes, Enter again closes the category
    toggle.focus()
    page.keyboard.press("Enter")
    assert toggle.get_attribute("aria-expanded") == "true"
    themes = first.locator(":scope > ul > li > .node-row .theme-link")
    assert themes.all_text_contents() == ["Late parcels", "Rude couriers"]
    assert page.is_visible("#theme-tree li[data-node='3']")
    assert not page.is_visible("#theme-tree li[data-node='2000001']")
    assert page.locator("#theme-tree li[data-node='3'] .badge.emerging").count() == 1
    page.locator("#theme-tree li[data-node='3'] > .node-row .toggle").focus()
    page.keyboard.press("Space")
    assert page.locator("#theme-tree li[data-node='3'] > ul .theme-link").all_text_contents() == [
        "Stuck at customs", "No tracking updates"]  # fmt: skip
    assert page.is_visible("#theme-tree li[data-node='2000001']")
    assert page.locator("#theme-tree li[data-node='5'] .toggle").count() == 0  # no sub-themes: nothing to open
    page.screenshot(path=str(ARTIFACTS / "web-tree-expanded.png"))
    toggle.focus()
    page.keyboard.press("Enter")
    assert toggle.get_attribute("aria-expanded") == "false" and not page.is_visible("#theme-tree li[data-node='3']")
    # hidden nodes: asked for and shown, flagged, only while "show hidden" is ticked
    page.check("#show-hidden")
    page.wait_for_selector("#theme-tree > li[data-node='1000003'] .badge.hidden")
    assert categories.count() == 3
    page.uncheck("#show-hidden")
    page.wait_for_function("() => document.querySelectorAll('#theme-tree > li').length === 2")
    # the themes table shows names too, never the keyword labels
    assert page.locator("#themes-table tbody .theme-link").all_text_contents() == ["Runs small", "Late parcels",
                                                                                   "Rude couriers"]  # fmt: skip
    assert "kw3" not in page.locator("#themes-table").text_content()

    # a category opens like a theme; its themes are listed; renaming it PATCHes its label, and the tree follows
    first.locator(":scope > .node-row .theme-link").click()
    page.wait_for_selector("#theme-view:not([hidden])")
    assert page.text_content("#theme-title") == HOSTILE
    assert page.locator("#node-children .theme-link").all_text_contents() == ["Late parcels", "Rude couriers"]
    assert page.text_content("#node-children-heading") == "Themes in this category"
    assert page.locator("#theme-view img, #theme-view i").count() == 0
    assert page.locator("#merge-select option").all_text_contents() == ["Fit and sizing (80)"]  # same level only
    page.fill("#rename", "Delivery <b>woes</b>")
    page.click("#rename-form button[type=submit]")
    page.wait_for_function("() => document.getElementById('edit-status').textContent === 'Renamed.'")
    assert stub.patches == [(1_000_001, {"label": "Delivery <b>woes</b>"})]
    assert page.text_content("#theme-title") == "Delivery <b>woes</b>"
    page.screenshot(path=str(ARTIFACTS / "web-tree-category.png"))
    page.locator("#node-children .theme-link").first.click()  # a theme of it: its path names the category
    page.wait_for_function("() => document.getElementById('theme-title').textContent === 'Late parcels'")
    assert page.text_content("#node-path") == "In category Delivery <b>woes</b>"
    assert page.locator("#node-children .theme-link").all_text_contents() == ["Stuck at customs", "No tracking updates"]
    page.click("#back")
    assert categories.first.locator(":scope > .node-row .theme-link").text_content() == "Delivery <b>woes</b>"
    assert page.locator("#explorer b").count() == 0
    assert not errors, errors


def test_page_and_static_files_are_served_safely(tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from service.api.app import create_app
    from service.settings import get_settings

    monkeypatch.setenv("FEEDBACK_THEMES_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("FEEDBACK_THEMES_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    client = TestClient(create_app())
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe" not in csp
    for path, kind in (("/static/app.js", "text/javascript"), ("/static/styles.css", "text/css"),
                       ("/static/vendor/chart.umd.min.js", "text/javascript"), ("/static/favicon.svg", "image/svg")):
        response = client.get(path)
        assert response.status_code == 200 and response.headers["content-type"].startswith(kind), path
    for path in ("/static/../routes_web.py", "/static/%2e%2e/api/app.py", "/static/vendor/build.sh", "/static/nope.js"):
        assert client.get(path).status_code == 404, path
    script = client.get("/static/app.js").text
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script and "eval(" not in script
    assert "Chart.js v4" in client.get("/static/vendor/chart.umd.min.js").text[:100]
    get_settings.cache_clear()


def test_segment_filter_in_chromium(browser):
    """The page's segment bar against a stubbed API: a project's segment columns offered (free text is not), a
    value chosen, every view asked for that segment, the summary and table showing its figures; then all again."""
    stub = StubApi()
    page, errors = open_stub_project(browser, stub)
    page.wait_for_selector("#segment-form:not([hidden])")
    assert page.locator("#segment-column option").all_text_contents() == ["All comments", "Channel (2)"]
    page.select_option("#segment-column", "Channel")
    assert page.locator("#segment-value option").all_text_contents() == ["web (160)", "app (40)"]
    page.select_option("#segment-value", "app")
    stub.queries.clear()
    page.click("#segment-apply")
    page.wait_for_function("() => document.getElementById('project-summary').textContent.includes('Channel=app')")
    assert "40 comments" in page.text_content("#project-summary")
    asked = {path.rsplit("/", 1)[-1] for path, query in stub.queries if SEGMENT_QUERY in query}
    assert {"themes", "tree", "trends", "stats"} <= asked, stub.queries
    assert page.locator("#themes-table tbody .theme-link").all_text_contents() == ["Late parcels", "Rude couriers"]
    assert page.is_visible("#segment-clear")
    page.screenshot(path=str(ARTIFACTS / "web-segment.png"))
    page.locator("#themes-table tbody .theme-link").first.click()  # a theme's comments: of the segment too
    page.wait_for_selector("#theme-view:not([hidden])")
    assert any(path.endswith("/themes/3") and SEGMENT_QUERY in query for path, query in stub.queries)
    page.click("#back")
    page.click("#segment-clear")
    page.wait_for_function("() => document.querySelectorAll('#themes-table tbody .theme-link').length === 3")
    assert "segment" not in page.text_content("#project-summary") and page.is_hidden("#segment-clear")
    assert not errors, errors
