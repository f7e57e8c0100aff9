"""The web UI in a real browser: Debian's chromium driven by Playwright (no browser download).

Runs are logged with the stock client; the tests open twinloop's pages and check the DOM: the runs
table's rows and nesting, the filter giving the same run ids as ``mlflow.search_runs``, an invalid
filter showing the server's message while the page keeps working, the link the stock client prints
(``/#/experiments/E/runs/R``) opening the run, the pages with JavaScript off, no request leaving
the server and no CSP violation. Each page is saved as a PNG (1280x800) into a gallery with an
``index.html``: $TWINLOOP_UI_GALLERY, else /tmp/twinloop-ui-gallery. Each page saved with
JavaScript on is also checked by axe-core, which Playwright injects into every page (never part
of the binary; ``scripts/fetch-axe.sh`` fetches the pinned version, $TWINLOOP_AXE names the
file): no serious or critical violation.

Needs ``playwright`` (tests/compat/requirements.txt) and chromium (``apt-get install
--no-install-recommends chromium``; $TWINLOOP_CHROMIUM names another binary). Without either the
tests skip; only the sqlite twinloop server is exercised (the pages are twinloop's own).
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path

import mlflow
import pytest

from conftest import credentials, unique

sync_api = pytest.importorskip("playwright.sync_api")

GALLERY = Path(os.environ.get("TWINLOOP_UI_GALLERY") or "/tmp/twinloop-ui-gallery")
VIEWPORT = {"width": 1280, "height": 800}
REPO = Path(__file__).resolve().parents[2]


def _axe() -> Path | None:
    """axe-core's file: $TWINLOOP_AXE, else what scripts/fetch-axe.sh fetched (run here once)."""
    if os.environ.get("TWINLOOP_AXE"):
        return Path(os.environ["TWINLOOP_AXE"])
    try:
        out = subprocess.run(
            ["bash", str(REPO / "scripts" / "fetch-axe.sh")], capture_output=True, text=True, timeout=120, check=True
        )
    except (OSError, subprocess.SubprocessError):
        if os.environ.get("TWINLOOP_REQUIRE_ALL_BACKENDS"):
            raise
        return None
    return Path(out.stdout.strip().splitlines()[-1])


def _chromium() -> str | None:
    return os.environ.get("TWINLOOP_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    path = _chromium()
    if not path:
        pytest.skip("no chromium on PATH (apt-get install --no-install-recommends chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def axe_script():
    return _axe()


@pytest.fixture(scope="module")
def gallery():
    if GALLERY.exists():
        shutil.rmtree(GALLERY)
    GALLERY.mkdir(parents=True)
    shots: list[tuple[str, str]] = []
    yield shots
    items = "\n".join(
        f'<figure><img src="{html.escape(f)}" width="640"><figcaption>{html.escape(t)}</figcaption></figure>'
        for f, t in shots
    )
    (GALLERY / "index.html").write_text(
        f"<!doctype html><meta charset=utf-8><title>twinloop UI gallery</title>"
        f"<style>figure{{display:inline-block;margin:8px}}img{{border:1px solid #ccc}}</style>{items}\n"
    )


@pytest.fixture
def ui_server(server):
    if server.target != "twinloop" or server.backend != "sqlite":
        pytest.skip("the web UI is twinloop's; one backend is enough")
    return server


@pytest.fixture
def page_for(browser, ui_server, gallery, axe_script):
    """Opens a fresh page (JavaScript on or off) that fails the test on any request to another
    host and records console errors (CSP violations among them). With JavaScript on, axe-core
    is injected into every document the page opens (as Playwright's init script, which the
    pages' CSP does not apply to)."""
    host = urllib.parse.urlparse(ui_server).netloc
    opened = []

    def make(javascript: bool = True):
        context = browser.new_context(
            viewport=VIEWPORT,
            device_scale_factor=1,
            java_script_enabled=javascript,
            extra_http_headers=credentials(ui_server),
        )
        if javascript and axe_script:
            context.add_init_script(path=str(axe_script))
        page = context.new_page()
        page.javascript = javascript
        page.outside = []
        page.console_errors = []
        page.failed_loads = []

        def route(r):
            if urllib.parse.urlparse(r.request.url).netloc != host:
                page.outside.append(r.request.url)
                r.abort()
            else:
                r.continue_()

        page.route("**/*", route)
        page.on(
            "console",
            # A page answering 4xx (a 404 page, a refused filter) logs "Failed to load resource";
            # the response check below covers those.
            lambda m: m.type == "error"
            and not m.text.startswith("Failed to load resource")
            and page.console_errors.append(m.text),
        )
        # What may fail is a page the test asked for, never what a page loads.
        page.on(
            "response",
            lambda r: r.status >= 400
            and r.request.resource_type not in ("document", "xhr", "fetch")
            and page.failed_loads.append(f"{r.status} {r.url}"),
        )
        opened.append((context, page))
        return page

    yield make
    for context, page in opened:
        assert page.outside == [], f"requests left the server: {page.outside}"
        assert page.console_errors == [], f"console errors: {page.console_errors}"
        assert page.failed_loads == [], f"failed loads: {page.failed_loads}"
        context.close()


def shot(page, gallery, name: str, title: str) -> None:
    file = f"{len(gallery):02d}-{name}.png"
    page.screenshot(path=str(GALLERY / file), full_page=False)
    gallery.append((file, title))
    check_accessibility(page, name)


def check_accessibility(page, name: str) -> None:
    """axe-core over the whole page: no serious or critical violation. Frames (sandboxed
    artifact previews, whose content is the user's) are left out."""
    if not getattr(page, "javascript", False) or not page.evaluate("() => typeof axe === 'object'"):
        return
    found = page.evaluate(
        """() => axe.run(document, {iframes: false, resultTypes: ['violations']}).then(r =>
            r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical').map(v =>
                v.impact + ' ' + v.id + ': ' + v.help + ' @ ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | ')
                + ' (' + v.nodes[0].failureSummary + ')'))"""
    )
    assert found == [], f"accessibility ({name}): {found}"


def _log_sweep():
    """A parent run with three nested trials and one unrelated run, as a user logs them."""
    exp_id = mlflow.create_experiment(unique("ui"))
    mlflow.set_experiment(experiment_id=exp_id)
    with mlflow.start_run(run_name="sweep") as parent:
        mlflow.log_param("optimizer", "adam")
        for i, (lr, acc) in enumerate([(0.1, 0.95), (0.01, 0.7), (0.001, 0.3)]):
            with mlflow.start_run(run_name=f"trial-{i}", nested=True):
                mlflow.log_params({"lr": lr, "optimizer": "adam" if i < 2 else "sgd"})
                for step in range(5):
                    mlflow.log_metric("acc", acc * (step + 1) / 5, step=step)
                    mlflow.log_metric("loss", 1 - acc * (step + 1) / 5 + (0.5 if step == 2 else 0), step=step)
    with mlflow.start_run(run_name="<script>alert(1)</script>") as other:
        mlflow.set_tag("mlflow.source.git.repoURL", "javascript:alert(1)")
        mlflow.log_metric("acc", 0.99)
    return exp_id, parent.info.run_id, other.info.run_id


def _row_ids(page) -> list[str]:
    return page.locator("#runs tbody tr").evaluate_all("rows => rows.map(r => r.dataset.runId)")


def test_runs_table_filter_and_run_page(ui_server, page_for, gallery):
    exp_id, parent_id, hostile_id = _log_sweep()
    all_ids = {r.info.run_id for r in mlflow.search_runs([exp_id], output_format="list")}
    page = page_for()

    page.goto(f"{ui_server}/")
    sync_api.expect(page.locator("#experiments")).to_be_visible()
    shot(page, gallery, "experiments", "Experiments list")

    page.goto(f"{ui_server}/experiments/{exp_id}")
    # Top-level runs only; the parent's expander shows its trials under it, indented.
    assert set(_row_ids(page)) == {parent_id, hostile_id}
    page.click(f'tr[data-run-id="{parent_id}"] a.expander')
    sync_api.expect(page.locator("#runs td.depth-1")).to_have_count(3)
    assert set(_row_ids(page)) == all_ids
    assert page.locator("#runs td.depth-1").count() == 3
    ids = _row_ids(page)
    assert ids.index(parent_id) < min(ids.index(i) for i in all_ids - {parent_id, hostile_id})
    # The hostile name is text, and no script ran.
    sync_api.expect(page.locator(f'tr[data-run-id="{hostile_id}"] td.name a')).to_have_text(
        "<script>alert(1)</script>"
    )
    shot(page, gallery, "runs", "Runs table: nested trials, metric last and min-max")

    # The filter in the form gives what mlflow.search_runs gives.
    query = "metrics.acc > 0.5 and params.optimizer = 'adam'"
    page.fill("input[name=filter]", query)
    page.click("form.bar button[type=submit]")
    page.wait_for_url(re.compile(r".*filter=.*"))
    expected = {r.info.run_id for r in mlflow.search_runs([exp_id], filter_string=query, output_format="list")}
    assert expected and set(_row_ids(page)) == expected
    shot(page, gallery, "runs-filtered", f"Runs filtered: {query}")

    # An invalid filter: the server's message, the form keeps what was typed, and it recovers.
    page.fill("input[name=filter]", "metrics.acc >> 1")
    page.click("form.bar button[type=submit]")
    sync_api.expect(page.locator("#search-error")).to_be_visible()
    sync_api.expect(page.locator("input[name=filter]")).to_have_value("metrics.acc >> 1")
    shot(page, gallery, "runs-bad-filter", "Runs: an invalid filter shows the server's message")
    page.fill("input[name=filter]", "")
    page.click("form.bar button[type=submit]")
    sync_api.expect(page.locator("#search-error")).to_have_count(0)
    assert set(_row_ids(page)) == all_ids

    # Sorting by the minimum of a metric through the column header.
    # The trials are nested, so they are ranked under their parent.
    page.goto(
        f"{ui_server}/experiments/{exp_id}?metric=loss&order=metrics.%60loss%60.min%20ASC&expand={parent_id}"
    )
    runs = [r for r in mlflow.search_runs([exp_id], output_format="list") if "loss" in r.data.metrics]
    client = mlflow.MlflowClient()
    smallest = min(runs, key=lambda r: min(m.value for m in client.get_metric_history(r.info.run_id, "loss")))
    trial_ids = {r.info.run_id for r in runs}
    assert [i for i in _row_ids(page) if i in trial_ids][0] == smallest.info.run_id

    # The run page, reached by clicking its row.
    page.goto(f"{ui_server}/experiments/{exp_id}")
    page.click(f'tr[data-run-id="{parent_id}"] td.name a:not(.expander)')
    page.wait_for_url(f"**/experiments/{exp_id}/runs/{parent_id}")
    sync_api.expect(page.locator("h1")).to_contain_text("sweep")
    assert page.locator("#children tbody tr").count() == 3
    shot(page, gallery, "run", "Run page: overview, params, children")

    page.goto(f"{ui_server}/experiments/{exp_id}/runs/{hostile_id}")
    assert page.locator('a[href^="javascript:"]').count() == 0
    sync_api.expect(page.locator("#overview")).to_contain_text("javascript:alert(1)")


def test_the_link_the_stock_client_prints_opens_the_run(ui_server, page_for, gallery):
    exp_id = mlflow.create_experiment(unique("ui-link"))
    with mlflow.start_run(experiment_id=exp_id, run_name="printed") as run:
        mlflow.log_metric("m", 1.0)
    # What mlflow prints after a run ("View run printed at: …").
    printed = f"{ui_server}/#/experiments/{exp_id}/runs/{run.info.run_id}"
    page = page_for()
    page.goto(printed)
    page.wait_for_url(f"**/experiments/{exp_id}/runs/{run.info.run_id}")
    sync_api.expect(page.locator("h1")).to_contain_text("printed")
    page.goto(f"{ui_server}/#/experiments/{exp_id}")
    page.wait_for_url(f"**/experiments/{exp_id}")
    sync_api.expect(page.locator("#runs")).to_be_visible()


def test_pages_work_without_javascript(ui_server, page_for, gallery):
    exp_id, parent_id, _ = _log_sweep()
    page = page_for(javascript=False)
    page.goto(f"{ui_server}/experiments/{exp_id}")
    assert parent_id in _row_ids_static(page)
    page.fill("input[name=filter]", "params.optimizer = 'sgd'")
    page.click("form.bar button[type=submit]")
    page.wait_for_url(re.compile(r".*filter=.*"))
    expected = {
        r.info.run_id
        for r in mlflow.search_runs([exp_id], filter_string="params.optimizer = 'sgd'", output_format="list")
    }
    assert set(_row_ids_static(page)) == expected
    page.click("#runs td.name a")
    sync_api.expect(page.locator("#metrics")).to_be_visible()
    shot(page, gallery, "run-no-js", "Run page with JavaScript off")
    page.goto(f"{ui_server}/experiments/424242")
    sync_api.expect(page.locator("h1")).to_have_text("Not found")
    shot(page, gallery, "not-found", "404 page")


def _row_ids_static(page) -> list[str]:
    # evaluate() needs JavaScript in the page; with it off, read the attributes one by one.
    rows = page.locator("#runs tbody tr")
    return [rows.nth(i).get_attribute("data-run-id") for i in range(rows.count())]


def _canvas_ink(page, selector: str) -> int:
    """Pixels of a chart's canvas that are not background: 0 for a blank chart."""
    return page.locator(selector).first.evaluate(
        """c => {
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && (d[i] < 240 || d[i + 1] < 240 || d[i + 2] < 240)) n++;
            return n;
        }"""
    )


def test_charts_draw_bands_and_zoom_requeries(ui_server, page_for, gallery):
    exp_id = mlflow.create_experiment(unique("ui-charts"))
    client = mlflow.MlflowClient()
    with mlflow.start_run(experiment_id=exp_id, run_name="long") as run:
        run_id = run.info.run_id
        metrics = [
            mlflow.entities.Metric("loss", 50.0 if step == 3210 else 1.0 / (1 + step / 500), 0, step)
            for step in range(6000)
        ]
        for i in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[i : i + 1000])
        mlflow.log_metric("acc", 0.5, step=0)
    page = page_for()
    page.goto(f"{ui_server}/experiments/{exp_id}/runs/{run_id}")
    sync_api.expect(page.locator('figure.chart[data-key="loss"][data-ready="1"]')).to_have_count(1)
    assert _canvas_ink(page, 'figure.chart[data-key="loss"] canvas') > 500
    page.locator("#charts-title").scroll_into_view_if_needed()
    shot(page, gallery, "run-charts", "Run page: chart cards (line = last, band = min-max)")

    # The metric page: buckets by default, the spike inside the drawn band.
    page.goto(f"{ui_server}/experiments/{exp_id}/runs/{run_id}/metrics/loss")
    fig = page.locator("figure.chart.wide")
    sync_api.expect(fig).to_have_attribute("data-ready", "1")
    assert fig.get_attribute("data-raw") == "0"
    top = page.evaluate(
        "() => { const c = document.querySelector('figure.chart.wide canvas'); return c.height; }"
    )
    assert top > 0
    shot(page, gallery, "metric", "Metric page: 6,000 steps in buckets, the spike at 3,210 kept by the band")

    # Drag-zoom: the range goes into the URL and comes back raw.
    over = page.locator("figure.chart.wide .u-over")
    box = over.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.50, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.52, y, steps=5)
    page.mouse.up()
    page.wait_for_url(re.compile(r".*from=\d+&to=\d+"))
    sync_api.expect(fig).to_have_attribute("data-raw", "1")
    shot(page, gallery, "metric-zoomed", "Metric page zoomed: raw points re-queried")
    # The zoomed URL opens zoomed.
    page.goto(page.url)
    sync_api.expect(page.locator("figure.chart.wide")).to_have_attribute("data-raw", "1")


def test_compare_selected_runs(ui_server, page_for, gallery):
    exp_id, parent_id, hostile_id = _log_sweep()
    trials = [
        r.info.run_id
        for r in mlflow.search_runs([exp_id], output_format="list")
        if r.info.run_id not in (parent_id, hostile_id)
    ]
    page = page_for()
    # The trials are nested runs: shown under their parent, expanded.
    page.goto(f"{ui_server}/experiments/{exp_id}?expand={parent_id}")
    for run_id in trials:
        page.check(f'tr[data-run-id="{run_id}"] input[type=checkbox]')
    page.click("#compare-button")
    page.wait_for_url(re.compile(r".*/compare\?.*run="))
    sync_api.expect(page.locator("h1")).to_have_text("Compare 3 runs")
    differing = page.locator("#params-diff tr.differs td:first-child").all_inner_texts()
    assert sorted(differing) == ["lr", "optimizer"]
    # Overlays: one card per metric, three runs each, drawn.
    sync_api.expect(page.locator('figure.chart[data-key="loss"]')).to_have_attribute("data-ready", "1")
    assert len(page.locator("div.charts").get_attribute("data-runs").split(",")) == 3
    assert _canvas_ink(page, 'figure.chart[data-key="loss"] canvas') > 200
    assert page.locator("#scatter circle").count() == 3
    assert page.locator("#parallel polyline").count() == 3
    shot(page, gallery, "compare", "Compare: params diff, metrics, overlays")
    page.locator("#scatter").scroll_into_view_if_needed()
    shot(page, gallery, "compare-scatter", "Compare: scatter and parallel coordinates")


def _visible_compare_rows(page) -> list[str]:
    return page.locator("#compare-runs tbody tr:not([hidden])").evaluate_all(
        "rows => rows.map(r => r.dataset.runId)"
    )


def test_compare_brushing_box_plot_and_hostile_names(ui_server, page_for, gallery):
    exp_id, parent_id, hostile_id = _log_sweep()
    runs = {r.info.run_name: r.info.run_id for r in mlflow.search_runs([exp_id], output_format="list")}
    chosen = [runs["trial-0"], runs["trial-1"], runs["trial-2"], hostile_id]
    url = f"{ui_server}/experiments/{exp_id}/compare?runs={','.join(chosen)}"
    page = page_for()
    page.goto(url)
    # The hostile run's name is text wherever it shows.
    sync_api.expect(page.locator(f'#compare-runs tr[data-run-id="{hostile_id}"] a')).to_have_text(
        "<script>alert(1)</script>"
    )
    sync_api.expect(page.locator("#params-diff thead")).to_contain_text("<script>alert(1)</script>")
    assert page.locator('a[href^="javascript:"]').count() == 0

    # Drag along the lr axis from its top to its middle: lr 0.1 sits at the top, 0.01 and 0.001
    # near the bottom, and the hostile run has no lr, so one run is left.
    svg = page.locator("svg#parallel[data-brush-ready='1']")
    svg.scroll_into_view_if_needed()
    area = page.locator('g.pc-axis[data-col="params.lr"] rect.brush-area')
    box = area.bounding_box()
    x = box["x"] + box["width"] / 2
    page.mouse.move(x, box["y"] + 2)
    page.mouse.down()
    page.mouse.move(x, box["y"] + box["height"] / 2, steps=6)
    page.mouse.up()
    page.wait_for_url(re.compile(r".*brush=params\.lr%3A"))
    assert _visible_compare_rows(page) == [runs["trial-0"]]
    sync_api.expect(page.locator("#brush-kept")).to_have_text("1")
    assert page.locator("svg#parallel polyline.dim").count() == 3
    shot(page, gallery, "compare-brushed", "Compare: the lr axis brushed, the table down to the runs inside")

    # The brushed URL opens brushed, rendered by the server (JavaScript or not).
    brushed = page.url
    page.goto(brushed)
    assert _visible_compare_rows(page) == [runs["trial-0"]]
    no_js = page_for(javascript=False)
    no_js.goto(brushed)
    rows = no_js.locator("#compare-runs tbody tr")
    visible = [rows.nth(i).get_attribute("data-run-id") for i in range(rows.count()) if rows.nth(i).is_visible()]
    assert visible == [runs["trial-0"]]
    # A click on the axis clears its brush.
    area = page.locator('g.pc-axis[data-col="params.lr"] rect.brush-area')
    area.scroll_into_view_if_needed()
    area.click()
    sync_api.expect(page.locator("#brush-kept")).to_have_text("4")
    assert "brush=" not in page.url

    # The box plot of a metric grouped by a param: adam, sgd and the run without one.
    page.goto(f"{url}&box=metrics.acc&by=params.optimizer")
    groups = page.locator("#box-plot g.box").evaluate_all("gs => gs.map(g => g.dataset.group)")
    assert sorted(groups) == ["(none)", "adam", "sgd"]
    page.locator("#box-plot").scroll_into_view_if_needed()
    shot(page, gallery, "compare-box", "Compare: box plot of acc by optimizer")


def test_compare_scatter_colour_and_log_axes(ui_server, page_for, gallery):
    exp_id, parent_id, hostile_id = _log_sweep()
    runs = {r.info.run_name: r.info.run_id for r in mlflow.search_runs([exp_id], output_format="list")}
    chosen = [runs["trial-0"], runs["trial-1"], runs["trial-2"], hostile_id]
    base = f"{ui_server}/experiments/{exp_id}/compare?runs={','.join(chosen)}"
    page = page_for()
    page.goto(base)
    # Colour by a number, through the page's one form: the scale and its legend.
    page.select_option("#scatter-form select[name=sx]", "params.lr")
    page.select_option("#scatter-form select[name=sy]", "metrics.loss")
    page.select_option("#scatter-form select[name=sc]", "metrics.acc")
    page.click("#scatter-form button")
    page.wait_for_url(re.compile(r".*sc=metrics\.acc"))
    assert page.url.count("runs=") == 1
    sync_api.expect(page.locator("#scatter-legend rect.ramp")).to_have_count(1)
    fills = page.locator("#scatter circle").evaluate_all("cs => cs.map(c => c.getAttribute('fill'))")
    assert len(fills) == 3 and len(set(fills)) == 3 and all(f.startswith("#") for f in fills)
    page.locator("#scatter").scroll_into_view_if_needed()
    shot(page, gallery, "compare-colour-scale", "Compare: scatter coloured by acc (a scale)")
    # By text: one colour per optimizer, named in the legend; the run without one is grey.
    page.goto(f"{base}&sx=params.lr&sy=metrics.acc&sc=params.optimizer")
    legend = page.locator("#scatter-legend text").evaluate_all("ts => ts.map(t => t.textContent)")
    assert "adam" in legend and "sgd" in legend, legend
    page.locator("#scatter").scroll_into_view_if_needed()
    shot(page, gallery, "compare-colour-text", "Compare: scatter coloured by optimizer (a palette)")

    # A log axis: lr spans three decades, so its runs sit evenly apart (linear, two crowd the
    # bottom); the hostile run has no lr and is not on that axis.
    page.goto(base)
    page.check('#log-axes input[value="params.lr"]')
    page.click("#log-axes button")
    page.wait_for_url(re.compile(r".*plog=params\.lr"))
    sync_api.expect(page.locator('g.pc-axis[data-col="params.lr"]')).to_have_attribute("data-log", "1")
    lr = page.locator("#parallel polyline").evaluate_all(
        "ls => ls.map(l => l.dataset.pos.split(',')[0]).filter(p => p !== '').map(Number).sort()"
    )
    assert lr == [0.0, 0.5, 1.0], lr
    page.locator("#parallel").scroll_into_view_if_needed()
    shot(page, gallery, "compare-log-axis", "Compare: parallel coordinates with lr on a log axis")
    # Without JavaScript the same URL draws the same axis.
    no_js = page_for(javascript=False)
    no_js.goto(page.url)
    assert no_js.locator('g.pc-axis[data-col="params.lr"] text.axis-label').text_content() == "params.lr (log)"
    # A value at or below zero cannot go on a log axis: it sits at the foot, and the page says so.
    with mlflow.start_run(experiment_id=exp_id, run_name="zero-lr") as zero:
        mlflow.log_params({"lr": 0, "optimizer": "adam"})
        mlflow.log_metric("acc", 0.5)
    page.goto(f"{base},{zero.info.run_id}&plog=params.lr")
    sync_api.expect(page.locator('.log-note[data-col="params.lr"]')).to_contain_text("(1 of 5 runs) cannot go on a log scale")
    assert "≤ 0" in page.locator('g.pc-axis[data-col="params.lr"]').text_content()


def test_version_page_sets_offline_beside_online(ui_server, page_for, gallery, tmp_path):
    """A registered ONNX model deployed on the tracking server, watched by a monitor whose first
    window has closed: the version page shows the source run's accuracy beside the monitor's, the
    model page's versions table its online figure; a version served nowhere says so."""
    import requests

    serving_fixtures = pytest.importorskip("serving_fixtures")
    case = serving_fixtures.make_lr_case()
    exp_id = mlflow.create_experiment(unique("ui-online"))
    name = unique("ui-online-model")
    X, y = serving_fixtures._iris()
    reference = tmp_path / "reference.csv"
    reference.write_text("f0,f1,f2,f3,label\n" + "".join(",".join(map(str, [*x, int(c)])) + "\n" for x, c in zip(X, y)))
    with mlflow.start_run(experiment_id=exp_id, run_name="train") as run:
        mlflow.log_metric("accuracy", 0.97)
        mlflow.log_metric("train_loss", 0.1)
        mlflow.log_artifact(str(reference))
        mlflow.onnx.log_model(case.onnx_model, name="model", registered_model_name=name)
    with mlflow.start_run(experiment_id=exp_id, run_name="unserved"):
        mlflow.onnx.log_model(case.onnx_model, name="model", registered_model_name=name)
    api = f"{ui_server}/api/twinloop/v1"
    deployment = f"d-{uuid_hex()}"
    r = requests.post(f"{api}/deployments", json={"name": deployment, "routes": [{"model": name, "version": "1"}]}, timeout=60)
    if r.status_code >= 500 and "onnx" in r.text.lower():
        pytest.skip(f"the server cannot load ONNX models here: {r.text[:200]}")
    assert r.ok, r.text
    monitor = f"m-{uuid_hex()}"
    spec = {
        "name": monitor,
        "deployment": deployment,
        "reference": f"runs:/{run.info.run_id}/reference.csv",
        "window": {"rows": 30},
        "features": {"features": ["f0", "f1", "f2", "f3"]},
        "prediction": "label",
    }
    r = requests.post(f"{api}/monitors", json=spec, timeout=30)
    assert r.ok, r.text
    labels = []
    for i in range(30):
        rid = f"{monitor}-{i}"
        body = {"id": rid, "inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32", "data": X[i * 5].tolist()}]}
        r = requests.post(f"{ui_server}/v2/models/{deployment}/infer", json=body, timeout=30)
        assert r.ok, r.text
        predicted = next(o for o in r.json()["outputs"] if o["name"] == "label")["data"][0]
        # The prediction is right but one time in ten: a live accuracy of 0.9, against 0.97 offline.
        labels.append({"request_id": rid, "label": predicted if i % 10 else (predicted + 1) % 3})
    assert requests.post(f"{api}/labels", json=labels, timeout=30).ok
    # The prediction log is flushed every 10 s by default, then the monitor's tick closes the window.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        status = requests.get(f"{api}/monitors/{monitor}", timeout=30).json()
        if status.get("state", {}).get("windows", 0) >= 1:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"the monitor closed no window: {status}")

    page = page_for()
    page.goto(f"{ui_server}/models/{urllib.parse.quote(name)}/versions/1")
    row = page.locator('#offline-online tr[data-metric="accuracy"]')
    sync_api.expect(row).to_have_class(re.compile("matched"))
    cells = row.locator("td").all_inner_texts()
    assert cells[0] == "accuracy" and cells[1] == "0.97", cells
    assert abs(float(cells[2]) - 0.9) < 1e-9, cells
    sync_api.expect(page.locator("#online-deployments")).to_contain_text(f"{deployment} (100% of its traffic)")
    assert page.locator('#offline-online tr[data-metric="train_loss"] td').nth(2).inner_text() == ""
    page.locator("#offline-online-heading").scroll_into_view_if_needed()
    shot(page, gallery, "version-offline-online", "Model version: offline metrics beside the monitor's live ones")
    # Version 2 is served nowhere.
    page.goto(f"{ui_server}/models/{urllib.parse.quote(name)}/versions/2")
    sync_api.expect(page.locator("#online-none")).to_contain_text("No deployment serves this version")
    # The model page's versions table, with JavaScript off: v1's live accuracy, nothing for v2.
    no_js = page_for(javascript=False)
    no_js.goto(f"{ui_server}/models/{urllib.parse.quote(name)}?metric=accuracy")
    online = no_js.locator("#versions tbody tr td.online").all_inner_texts()
    assert online[0] == "" and online[1].startswith("accuracy 0.9"), online
    assert requests.delete(f"{api}/monitors/{monitor}", timeout=30).ok
    assert requests.delete(f"{api}/deployments/{deployment}", timeout=30).ok


def uuid_hex() -> str:
    import uuid

    return uuid.uuid4().hex[:8]


# A 1x1 PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf0000000301010018dd8db00000000049454e44ae426082"
)


def test_artifact_previews(ui_server, page_for, gallery, tmp_path):
    exp_id = mlflow.create_experiment(unique("ui-artifacts"))
    with mlflow.start_run(experiment_id=exp_id, run_name="with files") as run:
        mlflow.log_text("hello <script>alert(1)</script>\n" * 3, "notes/readme.txt")
        mlflow.log_dict({"a": 1, "b": [1, 2]}, "config.json")
        rows = "id,name\n" + "".join(f"{i},row-{i}\n" for i in range(150))
        mlflow.log_text(rows, "data/table.csv")
        (tmp_path / "pixel.png").write_bytes(PNG)
        mlflow.log_artifact(str(tmp_path / "pixel.png"))
        mlflow.log_text(
            "<p id=r>report</p><script>"
            "try { parent.document.title = 'pwned'; document.getElementById('r').textContent = 'reached parent'; }"
            " catch (e) { document.getElementById('r').textContent = 'blocked'; }</script>",
            "report.html",
        )
    run_id = run.info.run_id
    base = f"{ui_server}/experiments/{exp_id}/runs/{run_id}"
    page = page_for()
    page.goto(base)
    sync_api.expect(page.locator("#artifact-tree")).to_contain_text("table.csv")
    page.click("#artifact-tree a:text('readme.txt')")
    page.wait_for_url(re.compile(r".*/artifacts\?path=notes%2Freadme.txt"))
    sync_api.expect(page.locator("#artifact-preview pre")).to_contain_text("<script>alert(1)</script>")
    shot(page, gallery, "artifact-text", "Artifacts: text preview, escaped")

    page.goto(f"{base}/artifacts?path=data%2Ftable.csv")
    assert page.locator("#artifact-table tbody tr").count() == 100
    sync_api.expect(page.locator("#artifact-table thead")).to_contain_text("name")
    shot(page, gallery, "artifact-csv", "Artifacts: CSV, first 100 rows read server-side")

    page.goto(f"{base}/artifacts?path=pixel.png")
    img = page.locator("#artifact-preview img")
    sync_api.expect(img).to_be_visible()
    assert page.evaluate("() => document.querySelector('#artifact-preview img').naturalWidth") == 1

    page.goto(f"{base}/artifacts?path=report.html")
    frame = page.frame_locator("#artifact-preview iframe")
    sync_api.expect(frame.locator("#r")).to_have_text("blocked")
    assert page.title() != "pwned"
    shot(page, gallery, "artifact-html", "Artifacts: HTML in a sandboxed frame, parent unreachable")


def test_model_version_page_sets_an_alias(ui_server, page_for, gallery):
    name = unique("ui-model")
    client = mlflow.MlflowClient()
    exp_id = mlflow.create_experiment(unique("ui-registry"))
    versions = []
    for auc in (0.81, 0.86):
        with mlflow.start_run(experiment_id=exp_id) as run:
            mlflow.log_metric("auc", auc)
            # As PyYAML writes MLflow's MLmodel: the signature's JSON folded inside single quotes.
            mlflow.log_text(
                "flavors: {}\nsignature:\n  inputs: '[{\"type\": \"double\", \"name\": \"<x>\", \"required\": true},\n"
                "    {\"type\": \"tensor\", \"tensor-spec\": {\"dtype\": \"float32\", \"shape\": [-1, 4]}, \"name\": \"t\"}]'\n"
                "  outputs: null\n",
                "model/MLmodel",
            )
        versions.append(mlflow.register_model(f"runs:/{run.info.run_id}/model", name).version)
    client.set_registered_model_alias(name, "champion", versions[0])
    client.set_model_version_tag(name, versions[1], "note", "<script>alert(1)</script>")
    client.update_model_version(name, versions[1], description="javascript:alert(1)")
    client.set_registered_model_tag(name, "note", "<script>document.title='pwned'</script>")
    page = page_for()
    page.goto(f"{ui_server}/models")
    sync_api.expect(page.locator("#models")).to_contain_text(name)
    sync_api.expect(page.locator("#models")).to_contain_text("@champion → v1")
    shot(page, gallery, "models", "Registered models with aliases and latest version")
    page.click(f"#models a:text('{name}')")
    sync_api.expect(page.locator("#versions tbody tr")).to_have_count(2)
    sync_api.expect(page.locator("#metric-over-versions circle")).to_have_count(2)
    shot(page, gallery, "model", "Model: versions, aliases, metric over versions")

    # The link MLflow prints for a version opens its page.
    page.goto(f"{ui_server}/#/models/{urllib.parse.quote(name)}/versions/{versions[1]}")
    page.wait_for_url(f"**/models/{urllib.parse.quote(name)}/versions/{versions[1]}")
    sync_api.expect(page.locator("#source-run")).to_be_visible()
    page.fill("#alias-form input[name=alias]", "champion")
    page.click("#alias-form button")
    sync_api.expect(page.locator("#alias-change")).to_contain_text("from version 1 to version 2")
    shot(page, gallery, "alias-confirm", "Moving an alias asks for confirmation")
    page.click("#alias-confirm button")
    page.wait_for_url(f"**/models/{urllib.parse.quote(name)}/versions/{versions[1]}")
    sync_api.expect(page.locator("#version-aliases")).to_contain_text("@champion")
    assert client.get_model_version_by_alias(name, "champion").version == versions[1]
    sync_api.expect(page.locator("#signature-inputs tbody tr")).to_have_count(2)
    sync_api.expect(page.locator("#signature-inputs tbody tr").first).to_contain_text("<x>")
    sync_api.expect(page.locator("#signature-inputs")).to_contain_text("tensor<float32>")
    sync_api.expect(page.locator("#signature-inputs")).to_contain_text("(-1, 4)")
    # Hostile tags and descriptions are text, and no javascript: link is followed.
    sync_api.expect(page.locator("#version-tags")).to_contain_text("<script>alert(1)</script>")
    sync_api.expect(page.locator("#version")).to_contain_text("javascript:alert(1)")
    assert page.locator('a[href^="javascript:"]').count() == 0
    assert page.title() != "pwned"
    shot(page, gallery, "version", "Model version: source run, aliases, signature")
    page.click("#source-run")
    sync_api.expect(page.locator("#overview")).to_be_visible()


def test_alias_deletion_and_the_registry_timeline(ui_server, page_for, gallery):
    """Deleting an alias goes through a confirmation and works with JavaScript off; the model's
    page lists its registry events newest first, hostile values as text, paged by id."""
    name = unique("ui-timeline")
    client = mlflow.MlflowClient()
    client.create_registered_model(name)
    versions = [client.create_model_version(name, f"mlflow-artifacts:/t/{i}").version for i in range(2)]
    client.set_registered_model_alias(name, "champion", versions[0])
    client.set_registered_model_alias(name, "champion", versions[1])
    client.set_registered_model_alias(name, "challenger", versions[0])
    client.set_model_version_tag(name, versions[0], "note", "<script>document.title='pwned'</script>")
    client.transition_model_version_stage(name, versions[1], "Staging")

    page = page_for(javascript=False)
    quoted = urllib.parse.quote(name)
    page.goto(f"{ui_server}/models/{quoted}/versions/{versions[1]}")
    page.click("#version-aliases a.remove-alias[aria-label='Delete alias @champion']")
    sync_api.expect(page.locator("#alias-change")).to_contain_text(f"It names version {versions[1]} now")
    page.click("#alias-confirm button")
    page.wait_for_url(f"**/models/{quoted}/versions/{versions[1]}")
    sync_api.expect(page.locator("#version-aliases")).not_to_contain_text("@champion")
    with pytest.raises(mlflow.exceptions.MlflowException):
        client.get_model_version_by_alias(name, "champion")
    assert client.get_model_version_by_alias(name, "challenger").version == versions[0]

    page = page_for()
    page.goto(f"{ui_server}/models/{quoted}")
    kinds = page.locator("#events tbody tr").evaluate_all("rows => rows.map(r => r.dataset.kind)")
    assert kinds == [
        "ALIAS_DELETED",
        "STAGE_CHANGED",
        "VERSION_TAG_SET",
        "ALIAS_SET",
        "ALIAS_SET",
        "ALIAS_SET",
        "VERSION_CREATED",
        "VERSION_CREATED",
        "MODEL_CREATED",
    ], kinds
    first = page.locator("#events tbody tr").first
    sync_api.expect(first).to_contain_text("@champion deleted")
    sync_api.expect(page.locator("#events")).to_contain_text("<script>document.title='pwned'</script>")
    sync_api.expect(page.locator("#events")).to_contain_text("stage None → Staging")
    assert page.title() != "pwned"
    shot(page, gallery, "model-events", "Model: registry event timeline, newest first")

    # Older pages by id: more events than a page (50) than fit.
    for i in range(55):
        client.set_model_version_tag(name, versions[0], f"t{i}", str(i))
    page.goto(f"{ui_server}/models/{quoted}")
    sync_api.expect(page.locator("#events tbody tr")).to_have_count(50)
    sync_api.expect(page.locator("#events tbody tr").first).to_contain_text("t54")
    page.click("#events-pager a[rel=next]")
    rows = page.locator("#events tbody tr")
    sync_api.expect(rows).to_have_count(55 + 9 - 50)
    sync_api.expect(rows.first).to_contain_text("t4")
    sync_api.expect(rows.last).to_contain_text("Model created")
    assert page.locator("#events-pager a[rel=next]").count() == 0


def test_compare_diffs_a_text_artifact_of_two_runs(ui_server, page_for, gallery):
    """The compare page diffs one path in two runs server-side, with JavaScript off: changed
    lines marked and numbered, hostile text inert, a file over the cap named, not read."""
    exp_id = mlflow.create_experiment(unique("ui-diff"))
    ids = []
    for i, lr in enumerate(("0.1", "0.2")):
        with mlflow.start_run(experiment_id=exp_id, run_name=f"cfg-{i}") as run:
            lines = [f"line {n}" for n in range(1, 30)]
            lines[9] = f"lr: {lr}"
            if i == 1:
                lines.insert(20, "<script>document.title='pwned'</script>")
            mlflow.log_text("\n".join(lines) + "\n", "conf/train.yaml")
            mlflow.log_text("x" * (600 * 1024 + i), "big.txt")
        ids.append(run.info.run_id)
    page = page_for(javascript=False)
    page.goto(f"{ui_server}/experiments/{exp_id}/compare?runs={','.join(ids)}")
    page.fill("#diff-form input[name=diff]", "conf/train.yaml")
    page.click("#diff-form button")
    page.wait_for_url(re.compile(r".*diff=conf%2Ftrain\.yaml.*"))
    sync_api.expect(page.locator("#diff-summary")).to_contain_text("−1")
    sync_api.expect(page.locator("#diff-summary")).to_contain_text("+2")
    deleted = page.locator("table.diff tr.del")
    sync_api.expect(deleted).to_have_count(1)
    sync_api.expect(deleted.locator("td.code")).to_have_text("lr: 0.1")
    sync_api.expect(deleted.locator("td.ln").first).to_have_text("10")
    added = page.locator("table.diff tr.add td.code").all_inner_texts()
    assert added == ["lr: 0.2", "<script>document.title='pwned'</script>"], added
    assert page.title() != "pwned"
    # Swapping the runs swaps the sides.
    page.select_option("#diff-form select[name=da]", ids[1])
    page.select_option("#diff-form select[name=db]", ids[0])
    page.click("#diff-form button")
    sync_api.expect(page.locator("table.diff tr.add td.code")).to_have_text(["lr: 0.1"])
    page.fill("#diff-form input[name=diff]", "big.txt")
    page.click("#diff-form button")
    sync_api.expect(page.locator("#artifact-diff")).to_contain_text("was not read")
    page.fill("#diff-form input[name=diff]", "nope.txt")
    page.click("#diff-form button")
    sync_api.expect(page.locator("#artifact-diff")).to_contain_text("has no file nope.txt")

    page = page_for()
    page.goto(f"{ui_server}/experiments/{exp_id}/compare?runs={','.join(ids)}&diff=conf/train.yaml")
    sync_api.expect(page.locator("table.diff tr.del")).to_have_count(1)
    page.locator("#artifact-diff").scroll_into_view_if_needed()
    shot(page, gallery, "compare-diff", "Compare: a text artifact diffed between two runs")
