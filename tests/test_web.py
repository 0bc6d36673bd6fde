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
from tests.web_stub import (
    HOSTILE,
    HOSTILE_BATTERY,
    HOSTILE_CARRIERS,
    HOSTILE_DOCS,
    HOSTILE_KEYWORDS,
    HOSTILE_KEYWORDS_NODE,
    HOSTILE_NAMED,
    LONG_COMMENT,
    SEGMENT_QUERY,
    StubApi,
    open_stub_project,
)

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


def shot(page, name: str, full_page: bool = False) -> None:  # type: ignore[no-untyped-def]
    """A screenshot into test-artifacts/ (not committed), to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


def in_view(page, selector: str) -> bool:  # type: ignore[no-untyped-def]
    """Whether the element's top is on the screen as it is now (no scrolling needed to see it)."""
    box = page.locator(selector).bounding_box()
    return box is not None and 0 <= box["y"] < page.viewport_size["height"] - 40


@pytest.mark.slow
def test_walk_upload_progress_overview_category_theme_compare_rename(browser, service, sample_csv, tmp_path):
    """An analyst's walk through the real service (API and worker): upload a file, watch the progress in view to
    "Done", read the overview, open a category, a theme (the carrying sentences marked at the API's offsets, an
    injected comment shown as text), compare two segments, rename and merge; the API and reports follow. Each step's
    screenshot is saved in test-artifacts/walk-*.png."""
    base, key = service
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"{m.text} {m.location}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(base + "/")
    page.fill("#api-key", key)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#upload-view:not([hidden])")  # no project yet: the upload comes first

    page.set_input_files("#file", str(upload_file(sample_csv, tmp_path)))
    page.wait_for_selector("#preview-table tbody tr")
    assert page.locator("#preview-table thead th").all_text_contents() == ["text", "id", "date", "rating", "theme"]
    assert [page.input_value(f"#map-{c}") for c in ("text", "rating", "date", "id")] == ["text", "rating", "date", "id"]
    assert "not shown: mood" in page.text_content("#preview-caption")
    shot(page, "walk-1-preview")

    page.evaluate("""() => { window.__seen = []; window.__stages = [];
        new MutationObserver(() => window.__seen.push(Number(document.getElementById('job-progress').value)))
          .observe(document.getElementById('job-progress'), {attributes: true, childList: true});
        new MutationObserver(() => window.__stages.push(document.getElementById('job-stage').textContent))
          .observe(document.getElementById('job-stage'), {childList: true, characterData: true, subtree: true}); }""")
    page.click("#upload-button")
    page.wait_for_selector("#job:not([hidden])")
    assert in_view(page, "#job") and page.evaluate("() => document.activeElement.id") == "job"
    shot(page, "walk-2-progress")
    page.wait_for_selector("#overview:not([hidden]) #category-chart li", timeout=420_000)
    seen, stages = page.evaluate("() => window.__seen"), page.evaluate("() => window.__stages")
    assert seen == sorted(seen) and seen[-1] == 100 and len(set(seen)) >= 3, seen
    assert stages[-1] == "Done" and page.text_content("#job-stage") == "Done", stages
    assert page.locator("#job-steps li.done").count() == page.locator("#job-steps li").count()
    assert page.text_content("#done-notice").startswith("Done: 167 comments analysed")

    # the overview: comments, period and sentiment; the categories by name, as the API's tree names them
    client = httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30)
    project = client.get("/v1/projects").json()["projects"][0]["id"]
    tree = client.get(f"/v1/projects/{project}/tree").json()["categories"]
    headline = page.text_content("#headline")
    assert "Comments167" in headline and "Period1 Jan 2026 – " in headline and "negative" in headline, headline
    names = page.locator("#category-chart li .bar-name").all_text_contents()
    assert sorted(names) == sorted(c["name"] for c in tree) and all(names)
    for panel in ("#headline", "#category-chart", "#changes"):
        assert in_view(page, panel), panel
    assert page.locator("#category-trend svg.line-chart").count() == 1  # the comments have dates
    shot(page, "walk-3-overview")
    shot(page, "walk-3-overview-full", full_page=True)

    # a category: its themes listed by name; then one of its themes
    category = next(c for c in sorted(tree, key=lambda c: -c["share"]) if c["children"])
    page.click(f"#category-chart li[data-node='{category['id']}'] .bar-name")
    page.wait_for_function(f"() => document.getElementById('theme-title').textContent === {json.dumps(category['name'])}")
    children = page.locator("#node-children li .bar-name").all_text_contents()
    assert set(children) <= {t["name"] for t in category["children"]} and children
    shot(page, "walk-4-category")
    theme = max(category["children"], key=lambda t: t["size"])
    page.click(f"#node-children li[data-node='{theme['id']}'] .bar-name")
    page.wait_for_function(f"() => document.getElementById('theme-title').textContent === {json.dumps(theme['name'])}")
    page.wait_for_selector("#theme-comments li")
    assert category["name"] in page.text_content("#node-path")
    detail = client.get(f"/v1/projects/{project}/themes/{theme['id']}", params={"limit": 20}).json()
    for member in detail["members"][:5]:  # the carrying sentences, marked at the API's offsets
        marked = page.locator(f"#theme-comments li[data-doc='{member['doc_id']}'] mark.span").all_text_contents()
        assert member["spans"] and marked == [member["text"][s["start"] : s["end"]] for s in member["spans"]]
    examples = page.locator("#theme-examples li")
    assert examples.count() == len(detail["theme"]["examples"]) >= 1
    for i, example in enumerate(detail["theme"]["examples"]):
        assert examples.nth(i).locator("mark.span").all_text_contents() == [example["span"]["text"]]
    page.wait_for_selector("#theme-segments li")  # its share per value of a kept column
    assert page.input_value("#theme-segment-column") == "theme"
    shot(page, "walk-5-theme", full_page=True)

    # the injected comment: shown as text wherever its theme lists it, nothing runs
    links = list(csv.DictReader(io.StringIO(client.get(f"/v1/projects/{project}/reports/document_themes.csv").text)))
    xss_theme = next(r["theme_id"] for r in links if r["doc_id"] == XSS_ID)
    page.evaluate(f"() => {{ location.hash = '#/theme/{xss_theme}'; }}")
    page.wait_for_function(f"() => window.feedbackThemes.theme && window.feedbackThemes.theme.id === {xss_theme}")
    page.wait_for_selector("#theme-comments li")
    for _ in range(50):  # bounded: the comment is on one of the first pages
        if page.locator(f"#theme-comments li[data-doc='{XSS_ID}']").count():
            break
        page.click("#more-comments")
        page.wait_for_timeout(300)
    assert XSS in page.locator(f"#theme-comments li[data-doc='{XSS_ID}']").text_content()
    assert page.locator("main img, main script").count() == 0 and page.evaluate("() => window.__xss") is None

    # compare two segments: the significant differences, each theme by name
    page.click("#views a[data-view=compare]")
    page.wait_for_selector("#compare-view:not([hidden])")
    page.select_option("#a-column", "mood")
    page.select_option("#a-value", "negative")
    page.click("#compare-run")
    page.wait_for_function("() => document.getElementById('compare-summary').textContent.startsWith('A: mood=negative')")
    compared = client.get(f"/v1/projects/{project}/compare", params={"a": "mood=negative"}).json()
    significant = [r["name"] for r in compared["themes"] if r["significant"]][:15]
    assert page.locator("#compare-result tbody th").all_text_contents() == significant
    assert f"{len([r for r in compared['themes'] if r['significant']])} of {len(compared['themes'])}" in page.text_content(
        "#compare-summary")
    shot(page, "walk-6-compare", full_page=True)

    # rename and merge through the page; the API and the reports follow
    page.evaluate(f"() => {{ location.hash = '#/theme/{theme['id']}'; }}")
    page.wait_for_function(f"() => document.getElementById('theme-title').textContent === {json.dumps(theme['name'])}")
    page.fill("#rename", "Colour fades <b>fast</b>")
    page.click("#rename-form button[type=submit]")
    page.wait_for_function("() => document.getElementById('edit-status').textContent !== ''", timeout=60_000)
    assert page.text_content("#edit-status") == "Renamed.", page.text_content("#edit-status")
    assert page.text_content("#theme-title") == "Colour fades <b>fast</b>"
    page.click("#edit-panel summary")
    other = page.locator("#merge-select option").first.get_attribute("value")
    page.select_option("#merge-select", other)
    page.click("#merge-form button[type=submit]")
    page.wait_for_selector("#merged-list li")
    shot(page, "walk-7-renamed", full_page=True)
    record = client.get(f"/v1/projects/{project}/themes/{theme['id']}").json()["theme"]
    assert record["label"] == "Colour fades <b>fast</b>" and record["merged"] == [int(other)]
    rows = {r["theme_id"]: r for r in csv.DictReader(io.StringIO(client.get(
        f"/v1/projects/{project}/reports/themes.csv").text))}  # fmt: skip
    assert rows[str(theme["id"])]["label"] == "Colour fades <b>fast</b>" and other not in rows
    page.click("#views a[data-view=themes]")  # the tree finds it by its new name
    page.fill("#search", "colour fades")
    assert page.locator("#theme-tree .theme-link").all_text_contents()[-1] == "Colour fades <b>fast</b>"
    assert page.locator("main b").count() == 0

    page.click("#views a[data-view=reports]")
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
    scripts = [(ROOT / "service" / "web" / "js" / f"{name}.js").read_text(encoding="utf-8") for name in ("core", "highlight")]
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route("http://page.test/**", lambda route: route.fulfill(body="<!doctype html><p>", content_type="text/html"))
    page.goto("http://page.test/")
    for script in scripts:  # after the page loaded: its functions alone, nothing wired to the page
        page.add_script_tag(content=script)
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



def open_view(page, view: str, comments: bool = True) -> None:  # type: ignore[no-untyped-def]
    """One of the page's views, by its address, shown (a node's: with its comments, unless it has none)."""
    page.evaluate(f"() => {{ location.hash = '#/{view}'; }}")
    target = {"overview": "overview", "themes": "themes-view", "compare": "compare-view", "upload": "upload-view",
              "reports": "reports-view"}.get(view, "theme-view")  # fmt: skip
    page.wait_for_selector(f"#{target}:not([hidden])")
    if view.startswith("theme/"):
        page.wait_for_function(f"() => window.feedbackThemes.theme && window.feedbackThemes.theme.id === {view[6:]}")
        if comments:
            page.wait_for_selector("#theme-comments li")


def fits_width(page) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """The page's scrolling width and the window's width (equal: no horizontal scrolling)."""
    return tuple(page.evaluate("() => [document.scrollingElement.scrollWidth, window.innerWidth]"))


def test_tree_walks_searches_sorts_and_renames_in_chromium(browser):
    """The tree against a stubbed API: categories collapsed, opened and closed from the keyboard, names (never
    labels) everywhere, a hostile name shown as text, search and sort, hidden nodes on request, a category renamed."""
    stub = StubApi()
    page, errors = open_stub_project(browser, stub)
    open_view(page, "themes")
    categories = page.locator("#theme-tree > li")
    assert [categories.nth(i).get_attribute("data-node") for i in range(categories.count())] == ["1000001", "1000002"]
    first = categories.first
    assert first.locator(":scope > .node-row .theme-link").text_content() == HOSTILE  # literally, as text
    row = first.locator(":scope > .node-row").text_content()
    assert "60.0%" in row and "120" in row and "very negative −0.42" in row and "kw1000001" not in row
    assert page.locator("#tree-head").text_content() == "Category / theme / subthemeShareCommentsSentiment".replace(
        "subtheme", "sub-theme")  # no dates, no ratings in p1's stats: no change, rating or impact columns
    toggle = first.locator(":scope > .node-row .toggle")
    assert toggle.get_attribute("aria-expanded") == "false" and not page.is_visible("#theme-tree li[data-node='3']")
    toggle.focus()
    page.keyboard.press("Enter")
    assert toggle.get_attribute("aria-expanded") == "true"
    assert first.locator(":scope > ul > li > .node-row .theme-link").all_text_contents() == ["Late parcels", "Rude couriers"]
    page.locator("#theme-tree li[data-node='3'] > .node-row .toggle").focus()
    page.keyboard.press("Space")
    assert page.locator("#theme-tree li[data-node='3'] > ul .theme-link").all_text_contents() == [
        "Stuck at customs", "No tracking updates"]  # fmt: skip
    assert page.locator("#theme-tree li[data-node='3'] .badge.emerging").count() == 1
    shot(page, "web-tree-expanded")
    toggle.focus()
    page.keyboard.press("Enter")
    assert not page.is_visible("#theme-tree li[data-node='3']")
    # search: the matches with their category, opened; sort by sentiment: the most negative first
    page.fill("#search", "customs")
    assert page.locator("#theme-tree .theme-link:visible").all_text_contents() == [HOSTILE, "Late parcels", "Stuck at customs"]
    page.fill("#search", "")
    page.select_option("#sort", "sentiment")
    assert page.locator("#theme-tree > li > .node-row .theme-link").all_text_contents() == [HOSTILE, "Fit and sizing"]
    page.locator("#theme-tree li[data-node='1000001'] > .node-row .toggle").click()
    assert first.locator(":scope > ul > li > .node-row .theme-link").all_text_contents() == ["Late parcels", "Rude couriers"]
    page.check("#show-hidden")  # hidden nodes: asked for and flagged, only while ticked
    page.wait_for_selector("#theme-tree > li[data-node='1000003'] .badge.hidden")
    page.uncheck("#show-hidden")
    page.wait_for_function("() => document.querySelectorAll('#theme-tree > li').length === 2")

    # a category opens like a theme, its themes listed; renaming it PATCHes its label and the tree follows
    first.locator(":scope > .node-row .theme-link").click()
    page.wait_for_selector("#theme-view:not([hidden])")
    assert page.text_content("#theme-title") == HOSTILE
    assert page.locator("#node-children .bar-name").all_text_contents() == ["Late parcels", "Rude couriers"]
    assert page.text_content("#node-children-heading") == "Themes in this category"
    page.click("#edit-panel summary")
    assert page.locator("#merge-select option").all_text_contents() == ["Fit and sizing (80)"]  # same level only
    page.fill("#rename", "Delivery <b>woes</b>")
    page.click("#rename-form button[type=submit]")
    page.wait_for_function("() => document.getElementById('edit-status').textContent === 'Renamed.'")
    assert stub.patches == [(1_000_001, {"label": "Delivery <b>woes</b>"})]
    assert page.text_content("#theme-title") == "Delivery <b>woes</b>"
    page.locator("#node-children .bar-name").first.click()  # a theme of it: its path names the category
    page.wait_for_function("() => document.getElementById('theme-title').textContent === 'Late parcels'")
    assert page.text_content("#node-path") == "OverviewThemescategory: Delivery <b>woes</b>"
    page.go_back()
    page.wait_for_function("() => document.getElementById('theme-title').textContent === 'Delivery <b>woes</b>'")
    open_view(page, "themes")
    assert categories.first.locator(":scope > .node-row .theme-link").text_content() == "Delivery <b>woes</b>"
    assert page.locator("main b, main img, main i").count() == 0 and page.evaluate("() => window.__xss") is None
    assert not errors, errors


def test_segment_and_dates_filter_every_view_in_chromium(browser):
    """The filter bar: a column's value and a date range, asked of every view's data; the figures follow; then all
    comments again."""
    stub = StubApi()
    page, errors = open_stub_project(browser, stub)
    assert page.locator("#segment-column option").all_text_contents() == ["any", "Channel (2)"]  # free text is not
    assert page.is_hidden("#date-fields")  # p1 has no dates
    page.select_option("#segment-column", "Channel")
    assert page.locator("#segment-value option").all_text_contents() == ["web (160)", "app (40)"]
    page.select_option("#segment-value", "app")
    stub.queries.clear()
    page.click("#segment-apply")
    page.wait_for_function("() => document.getElementById('segment-summary').textContent.includes('Channel=app')")
    assert page.text_content("#segment-summary") == "Showing Channel=app: 40 comments."
    asked = {path.rsplit("/", 1)[-1] for _, path, query in stub.queries if SEGMENT_QUERY in query}
    assert {"themes", "tree", "trends", "stats"} <= asked, stub.queries
    assert page.locator("#top-themes .bar-name").all_text_contents() == ["Late parcels", "Rude couriers"]
    shot(page, "web-segment")
    page.locator("#top-themes .bar-name").first.click()  # a theme's comments: of the segment too
    page.wait_for_selector("#theme-view:not([hidden])")
    assert any(path.endswith("/themes/3") and SEGMENT_QUERY in query for _, path, query in stub.queries)
    assert page.is_visible("#segment-form")  # the filter shows on a theme's page too
    page.click("#segment-clear")
    page.wait_for_function("() => !document.getElementById('segment-summary').textContent")
    assert page.is_hidden("#segment-clear")
    assert not errors, errors

    stub = StubApi("p2")  # dates: a range applies to every view too
    page, errors = open_stub_project(browser, stub, "p2")
    assert page.get_attribute("#date-from", "min") == "2015-02-02"
    page.fill("#date-from", "2015-03-02")
    page.fill("#date-to", "2015-03-15")
    stub.queries.clear()
    page.click("#segment-apply")
    page.wait_for_function("() => document.getElementById('segment-summary').textContent.includes('from 2 Mar 2015')")
    asked = {path.rsplit("/", 1)[-1] for _, path, query in stub.queries if "from=2015-03-02&to=2015-03-15" in query}
    assert {"themes", "tree", "trends", "stats"} <= asked, stub.queries
    assert not errors, errors


def test_overview_fits_the_first_screen_with_200_themes(browser):
    """At 1280×800 the headline figures, the category chart and what changed are on the first screen; the whole
    overview of 12 categories and 200 themes is at most 3 screens; charts show the top N and an "others" bar, by name."""
    page, errors = open_stub_project(browser, StubApi("p2"), "p2", viewport={"width": 1280, "height": 800})
    assert page.evaluate("() => window.scrollY") == 0
    for panel in ("#headline", "#category-chart", "#changes"):
        box = page.locator(panel).bounding_box()
        assert box and box["y"] + box["height"] <= 800, (panel, box)
    assert page.evaluate("() => document.scrollingElement.scrollHeight") <= 3 * 800
    headline = page.text_content("#headline")
    for part in ("Comments14,640", "Period2 Feb 2015 – ", "63% negative", "Mean rating", "12 categories · 199 themes"):
        assert part in headline, (part, headline)
    bars = page.locator("#category-chart li")
    assert bars.count() == 12 and bars.first.locator(".bar-name").text_content() == HOSTILE_NAMED[1_000_001]
    themes = page.locator("#top-themes li")
    assert themes.count() == 13 and themes.last.text_content().startswith("187 other themes")
    assert page.locator("#changes li[data-alert]").count() == 3  # the newest alerts, then new and rising themes
    assert page.locator("#category-trend .legend li").count() == 5  # the legend beside the plot, outside it
    plot, legend = page.locator("#category-trend svg").bounding_box(), page.locator("#category-trend .legend").bounding_box()
    assert plot["x"] + plot["width"] <= legend["x"]
    assert page.get_attribute("#category-trend svg", "aria-label").startswith("Share of comments per week")
    assert page.locator("#category-trend table tbody tr").count() == 8  # the figures as a table
    shot(page, "web-overview")
    shot(page, "web-overview-full", full_page=True)
    assert not errors, errors


WIDE_CSV = ["id", "created", "channel", "store", "region", "agent", "product", "text", "rating", "score", "nps",
            "tags", "lang", "device", "version"]  # fmt: skip


def wide_csv(tmp_path: Path) -> Path:
    """A 15-column export whose comment column sits in the middle, its cells the hostile battery."""
    path = tmp_path / "export.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(WIDE_CSV)
        for i, text in enumerate(HOSTILE_BATTERY[:6]):
            writer.writerow([f"T{i}", f"2015-02-0{i + 1}", "web", "Store " * 20, "EU", "agent", "bag", text, "3", "x",
                             "7", "a,b", "en", "ios", "1.0"])  # fmt: skip
    return path


@pytest.mark.parametrize("width", [1280, 390])
def test_no_view_scrolls_sideways(browser, tmp_path, width):
    """At 1280 px and on a phone (390 px) no view scrolls sideways: tables, charts and the 10,000-character comment
    fit; a 15-column file's preview too."""
    page, errors = open_stub_project(browser, StubApi("p2"), "p2", viewport={"width": width, "height": 800})
    assert fits_width(page) == (width, width), "overview"
    open_view(page, "themes")
    page.click("#expand-all")
    assert fits_width(page) == (width, width), "tree, all open"
    open_view(page, "theme/1000001")
    page.locator("#theme-comments .unfold").first.click()  # the long comment, unfolded
    page.wait_for_selector("#theme-segments li")
    assert fits_width(page) == (width, width), "a category's page"
    shot(page, f"web-theme-{width}", full_page=True)
    open_view(page, "compare")
    page.click("#compare-run")
    page.wait_for_selector("#compare-result tbody tr")
    assert fits_width(page) == (width, width), "compare"
    open_view(page, "upload")
    page.set_input_files("#file", str(wide_csv(tmp_path)))
    page.wait_for_selector("#preview-table tbody tr")
    assert fits_width(page) == (width, width), "upload preview"
    open_view(page, "reports")
    assert fits_width(page) == (width, width), "reports"
    assert not errors, errors


def serious_violations(page) -> list[str]:  # type: ignore[no-untyped-def]
    """axe-core's serious and critical violations on the page as it is now."""
    from axe_playwright_python.sync_playwright import Axe

    found = Axe().run(page).response["violations"]
    return [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}" for v in found
            if v["impact"] in ("serious", "critical")]  # fmt: skip


@pytest.mark.parametrize("width", [1280, 390])
def test_no_serious_accessibility_violations(browser, tmp_path, width):
    """axe-core finds no serious or critical violation on any view, at 1280 px and on a phone."""
    pytest.importorskip("axe_playwright_python", reason="needs axe-playwright-python (test extras)")
    page, errors = open_stub_project(browser, StubApi("p2"), "p2", viewport={"width": width, "height": 800})
    page.click("#more-alerts summary")
    found = {"overview": serious_violations(page)}
    open_view(page, "themes")
    page.click("#expand-all")
    found["themes"] = serious_violations(page)
    open_view(page, "theme/1")
    page.click("#edit-panel summary")
    page.wait_for_selector("#theme-segments li")
    found["theme"] = serious_violations(page)
    open_view(page, "compare")
    page.click("#compare-run")
    page.wait_for_selector("#compare-result tbody tr")
    found["compare"] = serious_violations(page)
    open_view(page, "upload")
    page.set_input_files("#file", str(wide_csv(tmp_path)))
    page.wait_for_selector("#preview-table tbody tr")
    found["upload"] = serious_violations(page)
    open_view(page, "reports")
    found["reports"] = serious_violations(page)
    assert not any(found.values()), found
    assert not errors, errors


def test_every_control_is_reachable_by_keyboard(browser):
    """Tab reaches every visible control of the overview and the tree, in order, and Enter on a category's bar opens it."""
    page, errors = open_stub_project(browser, StubApi("p2"), "p2")
    for view in ("overview", "themes"):
        open_view(page, view)
        controls = page.evaluate("""() => [...document.querySelectorAll('a[href], button, input, select, summary')]
            .filter((e) => e.checkVisibility() && !e.disabled)
            .map((e, i) => { e.dataset.control = String(i); return i; })""")  # fmt: skip
        page.evaluate("() => document.activeElement && document.activeElement.blur()")
        reached = set()
        for _ in range(2 * len(controls) + 5):
            page.keyboard.press("Tab")
            reached.add(page.evaluate("() => document.activeElement.dataset.control"))
        missed = page.evaluate("(missed) => missed.map((i) => document.querySelector(`[data-control='${i}']`).outerHTML)",
                               [i for i in controls if str(i) not in reached])  # fmt: skip
        assert not missed, (view, missed)
    open_view(page, "overview")
    page.locator("#category-chart li .bar-name").nth(1).focus()
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.feedbackThemes.theme && window.feedbackThemes.theme.id === 1000002")
    assert not errors, errors


def test_hostile_text_renders_literally_on_every_view(browser, tmp_path):
    """Markup, formulas, a 10,000-character comment, right-to-left text, emoji and escaped entities show exactly as
    typed on every view (names, keywords, alerts, comments, examples, compare, the upload preview), and nothing runs."""
    page, errors = open_stub_project(browser, StubApi("p2"), "p2")
    page.click("#more-alerts summary")
    assert page.text_content("#category-chart li >> nth=0").startswith(HOSTILE_NAMED[1_000_001])
    top = page.text_content("#top-themes")
    assert all(HOSTILE_NAMED[node] in top for node in range(1, 8)), "the largest themes"
    alerts, said = page.text_content("#alerts"), alert_texts()
    assert all(text in alerts for text in HOSTILE_BATTERY if any(text in t for t in said)), "alerts"
    assert any(text in alerts for text in HOSTILE_BATTERY)
    open_view(page, "themes")
    page.click("#expand-all")
    tree = page.text_content("#theme-tree")
    assert all(text in tree for text in HOSTILE_NAMED.values()), "tree"
    for node in HOSTILE_CARRIERS:  # every battery string in the comments and examples, literally
        open_view(page, f"theme/{node}")
        comments = page.text_content("#theme-comments")
        assert all(text in comments for text in HOSTILE_BATTERY), node
        long = page.locator(f"#theme-comments li[data-doc='{HOSTILE_DOCS[LONG_COMMENT]}'] .comment-text")
        assert long.text_content() == LONG_COMMENT
    open_view(page, f"theme/{HOSTILE_KEYWORDS_NODE}")
    assert page.locator("#theme-keywords li").all_text_contents()[: len(HOSTILE_KEYWORDS)] == HOSTILE_KEYWORDS
    assert page.get_attribute("#theme-keywords li >> nth=7", "dir") == "auto"  # right-to-left text flows its own way
    open_view(page, "compare")
    page.click("#compare-run")
    page.wait_for_selector("#compare-result tbody tr")
    shown = page.locator("#compare-result tbody th").all_text_contents()
    assert any(name in shown for name in HOSTILE_NAMED.values()), shown
    open_view(page, "upload")
    page.set_input_files("#file", str(wide_csv(tmp_path)))
    page.wait_for_selector("#preview-table tbody tr")
    assert page.locator("#preview-table tbody td:first-child").all_text_contents() == HOSTILE_BATTERY[:6]
    assert page.locator("main img, main script, main b, main i").count() == 0
    assert page.evaluate("() => window.__xss") is None
    assert not errors, errors


def alert_texts() -> list[str]:
    """What the stub's alerts say: titles, theme names and examples."""
    alerts = StubApi("p2").answer("GET", "/v1/projects/p2/alerts", "limit=20", None)[1]["alerts"]  # type: ignore[index]
    return [t for a in alerts for t in (a["title"], a["theme"]["name"], *(e["text"] for e in a["examples"][:2]))]


def test_theme_page_shows_what_the_data_has(browser):
    """A theme's page: figures, keywords, sub-themes, share per segment, trend, impact on rating; without ratings
    neither the rating nor the impact shows anywhere (not as dashes), and without dates no trend or change."""
    page, errors = open_stub_project(browser, StubApi("p2"), "p2")
    open_view(page, "theme/1")
    facts = page.text_content("#theme-facts")
    assert "Mean rating" in facts and "Impact on rating" in facts and "95% interval" in facts
    assert page.locator("#node-children li").count() == 3 and page.is_visible("#theme-trend svg")
    page.wait_for_selector("#theme-segments li")
    values = page.locator("#theme-segments li .bar-name").all_text_contents()
    assert values[:2] == ["United", "US Airways"] or len(values) >= 5, values
    page.select_option("#theme-segment-column", "channel")
    page.wait_for_function("() => document.querySelectorAll('#theme-segments li').length === 3")
    assert not dashes(page)
    shot(page, "web-theme", full_page=True)

    page, errors2 = open_stub_project(browser, StubApi("p2-no-ratings"), "p2")
    assert "rating" not in page.text_content("#headline").lower()
    open_view(page, "themes")
    assert "Rating" not in page.text_content("#tree-head") and "Change" in page.text_content("#tree-head")
    open_view(page, "theme/1")
    facts = page.text_content("#theme-facts")
    assert "rating" not in facts.lower() and not dashes(page)

    page, errors3 = open_stub_project(browser, StubApi(), "p1")  # no dates
    assert "Period" not in page.text_content("#headline") and page.is_hidden("#category-trend-panel")
    open_view(page, "theme/3", comments=False)
    assert page.is_hidden("#theme-trend-panel") and "Change" not in page.text_content("#theme-facts")
    assert not errors + errors2 + errors3


def dashes(page) -> list[str]:  # type: ignore[no-untyped-def]
    """The elements that show only a dash (a figure the data does not have, filled in instead of left out)."""
    return page.evaluate("""() => [...document.querySelectorAll('main *')].filter((e) => e.children.length === 0
        && ['—', '–', '-', 'n/a', 'NaN', 'null', 'undefined'].includes(e.textContent.trim())).map((e) => e.outerHTML)""")


def test_compare_two_segments_and_two_periods(browser):
    """Compare: a value against every other comment, then two periods; the significant differences by name."""
    stub = StubApi("p2")
    page, errors = open_stub_project(browser, stub, "p2")
    open_view(page, "compare")
    page.select_option("#a-column", "airline")
    page.select_option("#a-value", "Delta")
    stub.queries.clear()
    page.click("#compare-run")
    page.wait_for_selector("#compare-result tbody tr")
    (query,) = [q for _, path, q in stub.queries if path.endswith("/compare")]
    assert "a=airline%3DDelta" in query and "b=" not in query and "level=2" in query
    answer = stub.answer("GET", "/v1/projects/p2/compare", query, None)[1]
    significant = [r["name"] for r in answer["themes"] if r["significant"]]
    assert page.locator("#compare-result tbody th").all_text_contents() == significant[:15]
    assert page.text_content("#compare-summary").startswith("A: airline=Delta")
    shot(page, "web-compare", full_page=True)
    page.check("input[name=compare-kind][value=periods]")
    assert page.input_value("#a-to") == "2015-03-29" and page.input_value("#b-from") == "2015-02-02"
    stub.queries.clear()
    page.click("#compare-run")
    page.wait_for_function("() => document.getElementById('compare-summary').textContent.startsWith('A: from')")
    (query,) = [q for _, path, q in stub.queries if path.endswith("/compare")]
    assert "a_from=" in query and "b_to=" in query and "a=" not in query.replace("a_from", "")
    assert not errors, errors


@pytest.mark.parametrize("fails", [False, True])
def test_upload_preview_and_progress_in_view(browser, tmp_path, fails):
    """Upload: a 15-column file's preview fits the screen with the comment column first; the mapping is guessed;
    after "Upload" the progress is in view with named steps, counts and time left, and its last stage reads "Done"
    (or the failure, said plainly)."""
    stub = StubApi("p2", job_fails=fails)
    page, errors = open_stub_project(browser, stub, "p2", viewport={"width": 1280, "height": 800})
    open_view(page, "upload")
    assert page.input_value("#upload-target") == ""  # a new project, unless another is chosen
    page.select_option("#upload-target", "p2")
    page.set_input_files("#file", str(wide_csv(tmp_path)))
    page.wait_for_selector("#preview-table tbody tr")
    assert page.locator("#preview-table thead th").all_text_contents() == ["text", "id", "created", "channel", "store"]
    assert "not shown: region, agent" in page.text_content("#preview-caption")
    width = page.evaluate("() => [document.getElementById('preview-table').scrollWidth, document.getElementById('preview').clientWidth]")
    assert width[0] <= width[1], width
    assert [page.input_value(f"#map-{c}") for c in ("text", "rating", "date", "id")] == ["text", "rating", "created", "id"]
    shot(page, "web-upload-preview")
    page.evaluate("""() => { window.__stages = [];
        new MutationObserver(() => window.__stages.push(document.getElementById('job-stage').textContent + ' | ' +
          document.getElementById('job-detail').textContent))
          .observe(document.getElementById('job-stage'), {childList: true, characterData: true, subtree: true}); }""")
    page.click("#upload-button")
    page.wait_for_selector("#job:not([hidden])")
    assert in_view(page, "#job") and page.evaluate("() => document.activeElement.id") == "job"
    shot(page, "web-upload-progress")
    (_, form), *_ = [p for p in stub.posts if p[0] == "/v1/jobs"]
    assert form["text_column"] == "text" and form["date_column"] == "created" and form["project"] == "p2"
    if fails:
        page.wait_for_function("() => document.getElementById('upload-status').textContent.startsWith('The analysis failed')")
        assert page.text_content("#job-stage") == "Failed" and page.is_visible("#upload-view")
        return
    page.wait_for_function("() => !document.getElementById('overview').hidden && document.getElementById('done-notice').textContent")
    stages = page.evaluate("() => window.__stages")
    titles = [s.split(" | ")[0] for s in stages]
    assert titles[-1] == "Done" and "Reading the sentences" in titles and "Saving the results" in titles, stages
    assert any("14,640 comments" in s and "left" in s for s in stages), stages
    assert page.text_content("#job-stage") == "Done" and page.text_content("#done-notice").startswith("Done: 14,640 comments")
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
    scripts = sorted(path.name for path in (ROOT / "service" / "web" / "js").glob("*.js"))
    assert scripts and all(f'src="/static/js/{name}"' in page.text for name in scripts)  # each one loaded
    files = [(f"/static/js/{name}", "text/javascript") for name in scripts]
    for path, kind in (*files, ("/static/styles.css", "text/css"), ("/static/favicon.svg", "image/svg")):
        response = client.get(path)
        assert response.status_code == 200 and response.headers["content-type"].startswith(kind), path
    for path in ("/static/../routes_web.py", "/static/%2e%2e/api/app.py", "/static/nope.js", "/static/js/../../api/app.py"):
        assert client.get(path).status_code == 404, path
    for name in scripts:  # nothing is ever parsed as HTML or code
        script = client.get(f"/static/js/{name}").text
        assert "innerHTML" not in script and "insertAdjacentHTML" not in script and "eval(" not in script, name
        assert "outerHTML" not in script and "document.write" not in script and "new Function" not in script, name
    get_settings.cache_clear()


