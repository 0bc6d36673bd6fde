"""The web page in a real headless Chromium against the real service (``feedback-themes serve``: API + worker):
enter a key, upload a CSV, watch the bar reach 100%, explore themes and charts, open a theme, rename and merge.
Screenshots go to test-artifacts/ (gitignored)."""

from __future__ import annotations

import csv
import io
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

    # theme groups: each lists its themes; one opens the theme
    groups = page.locator("#groups-table tbody tr")
    assert groups.count() >= 2 and groups.first.locator(".theme-link").count() >= 2
    chip = groups.first.locator(".theme-link").first
    chip_label = page.locator(f"#themes-table tbody tr[data-theme='{chip.get_attribute('data-theme')}'] .theme-link")
    assert chip.text_content() == chip_label.text_content()
    chip.click()
    page.wait_for_selector("#theme-view:not([hidden]) #theme-comments li")
    assert page.text_content("#theme-title") == chip_label.text_content()
    page.click("#back")
    page.wait_for_selector("#explorer:not([hidden])")
    subs = page.locator("#subthemes-table tbody tr")  # sub-themes: each names the one theme it lies within
    assert subs.count() >= 1 and all(subs.nth(i).locator(".theme-link").count() == 1 for i in range(subs.count()))
    assert page.locator("#groups-table tbody tr[data-kind=sub_theme]").count() == 0
    parent = subs.first.locator(".theme-link")  # … and its theme's page lists it among the theme's sub-themes
    sub_label = subs.first.locator("td").first.text_content()
    parent.click()
    page.wait_for_selector("#theme-view:not([hidden]) #theme-subthemes li[data-group]")
    assert sub_label in page.locator("#theme-subthemes").text_content()
    page.click("#back")
    page.wait_for_selector("#explorer:not([hidden])")

    # the theme holding the injected comment: its text shows as text, nothing runs
    client = httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30)
    project = client.get("/v1/projects").json()["projects"][0]["id"]
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
    assert page.locator("#downloads button[data-report='span_themes.csv']").count() == 1
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
