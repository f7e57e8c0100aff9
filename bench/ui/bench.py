#!/usr/bin/env python3
"""Web UI benchmark: twinloop's UI and MLflow 3.17.2's (``mlflow server``) on the same data, in
headless Chromium driven by Playwright (Debian's chromium, no browser download).

Both servers start here on free loopback ports with fresh SQLite stores. The runs are written
straight into each store (``tests/compat/ui_seed.py``: the same runs, params and metrics in each
schema), since logging 100,000 runs through the client would take longer than everything measured.
The 1,000,000-point metric is logged to twinloop through the client (log_batch, 1,000 points a
call: its summaries and rollups are kept by the writes) and written into MLflow's metrics table.

Measured (median of --repeats fresh page loads each):
  runs table, time to first rows, 1,000 and 100,000 runs   twinloop: the ``rows:visible`` mark;
                                                           MLflow: the newest run's name shown
  jump to row 90,000 (scroll box set there -> rows shown)  twinloop
  1,000,000-point metric, time to first chart               twinloop: ``chart:ready``; MLflow: the
                                                           run page's metric chart drawn
  zoom re-query (drag -> the zoomed range drawn)            twinloop
  runs table sorted by a metric's min: the first jump to row 90,000 right after the page loaded
  (it waits for the order's snapshot) and later jumps                                 twinloop
  one chart of 100 runs x 10,000 steps and of 1,000 runs x 50 steps (the compare page, its
  first card scrolled into view once the page is parsed): chart drawn since navigation, the
  series answer's bytes and time, drawing after it, and the compare page's HTML bytes  twinloop
  assets, uncompressed bytes a runs page loads             both
  server time p95 per page (``Server-Timing`` total)       twinloop, --repeats x 5 requests a page

Budgets: tests/ui/budgets.toml, applied as they are (the CI tier checks 3x in test_ui_runs.py).
Prints a table with ratios; --markdown FILE appends it. Exit status 1 when a budget is missed.
"""

from __future__ import annotations

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")

import argparse
import concurrent.futures
import datetime
import importlib.util
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.parse
from pathlib import Path

import requests

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tests" / "compat"))
from ui_seed import BASE_TIME, seed_mlflow, seed_twinloop  # noqa: E402


def _tracking_bench():
    """bench/tracking's server runner (start on a free port, wait for /health, stop the group)."""
    spec = importlib.util.spec_from_file_location("tracking_bench", REPO / "bench" / "tracking" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TB = _tracking_bench()
BUDGETS = tomllib.loads((REPO / "tests" / "ui" / "budgets.toml").read_text())

JUMP = """async (pos) => {
    const box = document.getElementById('runs-box');
    const rh = Math.round(box.querySelector('tbody tr').getBoundingClientRect().height);
    const t0 = performance.now();
    box.scrollTop = pos * rh;
    while (box.dataset.visible !== String(pos)) await new Promise(r => requestAnimationFrame(r));
    return performance.now() - t0;
}"""


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def p95(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))] if xs else float("nan")


def sqlite_path(workdir: Path, name: str) -> str:
    return str(workdir / f"{name}.db")


class Setup:
    """Both servers and the ids of what was written to each."""

    def __init__(self, args, tmp: Path):
        self.args = args
        binary = args.twinloop_bin or os.environ.get("TWINLOOP_BIN")
        self.twinloop = TB.Server("twinloop", TB.twinloop_argv_for(binary), tmp / "twinloop", 60)
        self.mlflow = None
        (tmp / "twinloop").mkdir()
        if args.only in ("both", "mlflow"):
            (tmp / "mlflow").mkdir()
            self.mlflow = TB.Server("mlflow", TB.mlflow_argv_for(), tmp / "mlflow", 240)
        self.ids: dict[str, dict[str, str]] = {}

    def start(self):
        self.twinloop.start()
        if self.mlflow:
            self.mlflow.start()

    def stop(self):
        for s in (self.twinloop, self.mlflow):
            if s:
                s.stop()

    def servers(self):
        return [("twinloop", self.twinloop, "twinloop")] + ([("mlflow", self.mlflow, "mlflow")] if self.mlflow else [])

    def seed(self):
        sizes = {"1k": 1_000, "100k": self.args.runs}
        for name, server, kind in self.servers():
            client = MlflowClient(server.url)
            db = sqlite_path(server.workdir, kind)
            ids = {}
            for label, n in sizes.items():
                exp = client.create_experiment(f"ui-bench-{label}")
                seed = seed_twinloop if kind == "twinloop" else seed_mlflow
                t0 = time.perf_counter()
                seed(
                    db,
                    exp,
                    n,
                    params=lambda i: {"optimizer": ("adam", "sgd", "rmsprop")[i % 3], "lr": str(10 ** -(1 + i % 4))},
                    metrics=lambda i: {"loss": 1.0 / (1 + i % 997), "acc": (i * 37 % 100) / 100},
                )
                print(f"  {name}: {n} runs written in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
                ids[f"exp_{label}"] = exp
            exp = client.create_experiment("ui-bench-series")
            run = client.create_run(exp, run_name="million")
            ids["exp_series"], ids["run_series"] = exp, run.info.run_id
            t0 = time.perf_counter()
            self.log_series(server, client, db, kind, run.info.run_id)
            client.set_terminated(run.info.run_id)
            print(f"  {name}: {self.args.points} points written in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            if kind == "twinloop":
                for label, runs, steps in (("overlay", 100, self.args.overlay_steps), ("many", 1_000, 50)):
                    t0 = time.perf_counter()
                    ids[f"exp_{label}"], ids[f"runs_{label}"] = self.log_overlay(client, label, runs, steps)
                    print(f"  {name}: {runs} runs x {steps} steps written in {time.perf_counter() - t0:.1f} s",
                          file=sys.stderr)
            self.ids[name] = ids

    @staticmethod
    def log_overlay(client, label, runs, steps):
        """`runs` runs of `steps` points of `loss` each, through the client, so rollups are kept."""
        exp = client.create_experiment(f"ui-bench-{label}")

        def one(i):
            run = client.create_run(exp, run_name=f"{label}-{i}")
            points = [Metric("loss", 1.0 / (1 + s / 100) + (i % 10) / 100, BASE_TIME + s, s) for s in range(steps)]
            for lo in range(0, steps, 1000):
                client.log_batch(run.info.run_id, metrics=points[lo : lo + 1000])
            return run.info.run_id

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            return exp, list(pool.map(one, range(runs)))

    def log_series(self, server, client, db, kind, run_id):
        n = self.args.points
        spike = min(654_321, n - 1)

        def value(step):
            return 50.0 if step == spike else 1.0 / (1 + step / 1000)

        if kind == "twinloop":
            for lo in range(0, n, 1000):
                batch = [Metric("loss", value(s), BASE_TIME + s, s) for s in range(lo, min(n, lo + 1000))]
                client.log_batch(run_id, metrics=batch)
            return
        con = sqlite3.connect(db, timeout=120)
        with con:
            con.executemany(
                "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES ('loss', ?, ?, ?, ?, 0)",
                ((value(s), BASE_TIME + s, run_id, s) for s in range(n)),
            )
            con.execute(
                "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES ('loss', ?, ?, ?, 0, ?)",
                (value(n - 1), BASE_TIME + n - 1, n - 1, run_id),
            )
        con.close()


def fresh_page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(120_000)
    return context, page


def since_navigation(page) -> float:
    return page.evaluate("() => performance.now()")


def twinloop_first_rows(browser, url: str, repeats: int):
    times, doms = [], []
    for _ in range(repeats):
        context, page = fresh_page(browser)
        page.goto(url)
        page.wait_for_selector("#runs-box[data-visible='0']", state="attached")
        times.append(page.evaluate("() => performance.getEntriesByName('rows:visible')[0].startTime"))
        doms.append(page.evaluate("() => document.querySelectorAll('#runs tbody tr').length"))
        context.close()
    return median(times), max(doms)


def twinloop_jump(browser, url: str, target: int, repeats: int, sorted_view: bool = False):
    """Median jump, DOM rows, longest task; and for a sorted view the first jump made as soon as
    the rows show, which waits for the order's snapshot (later jumps are slices of it)."""
    first = None
    if sorted_view:
        context, page = fresh_page(browser)
        page.goto(url)
        page.wait_for_selector("#runs-box[data-visible='0']", state="attached")
        first = page.evaluate(JUMP, target)
        context.close()
    context, page = fresh_page(browser)
    page.goto(url)
    page.wait_for_selector("#runs-box[data-visible='0']", state="attached")
    if sorted_view:
        page.wait_for_selector("#runs-box[data-snapshot]", state="attached")
    page.evaluate(
        "() => { window.__long = [0]; new PerformanceObserver(l => l.getEntries()"
        ".forEach(e => window.__long.push(e.duration))).observe({ type: 'longtask' }); }"
    )
    times, doms = [], []
    for i in range(repeats):
        page.evaluate(JUMP, 0)
        times.append(page.evaluate(JUMP, target - 100 * i))
        doms.append(page.evaluate("() => document.querySelectorAll('#runs tbody tr').length"))
    # Then scrolling through 5 s of wheel steps, as a user would.
    box = page.locator("#runs-box").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        page.mouse.wheel(0, 2000)
        page.wait_for_timeout(50)
    doms.append(page.evaluate("() => document.querySelectorAll('#runs tbody tr').length"))
    longest = page.evaluate("() => Math.max(...window.__long)")
    context.close()
    return median(times), max(doms), longest, first


def twinloop_compare_chart(browser, url: str, repeats: int):
    """The compare page's first chart card: scrolled into view once the page is parsed; chart
    drawn since navigation (median), the series answer's bytes, its time and drawing after it, and
    the page's own HTML bytes."""
    firsts, sizes, fetches, draws, pages = [], [], [], [], []
    for _ in range(repeats):
        context, page = fresh_page(browser)
        page.goto(url, wait_until="domcontentloaded")
        page.evaluate("() => document.querySelector('figure.chart').scrollIntoView()")
        page.wait_for_selector("figure.chart[data-ready='1']", state="attached")
        ready, size, start, end, html_bytes = page.evaluate(
            "() => { const e = performance.getEntriesByType('resource').filter(r => r.name.includes('/metrics/series'))[0];"
            " return [performance.getEntriesByName('chart:ready')[0].startTime, e.decodedBodySize, e.startTime, e.responseEnd,"
            " performance.getEntriesByType('navigation')[0].decodedBodySize]; }"
        )
        pages.append(html_bytes)
        firsts.append(ready)
        sizes.append(size)
        fetches.append(end - start)
        draws.append(ready - end)
        context.close()
    return median(firsts), max(sizes), median(fetches), median(draws), max(pages)


def mlflow_first_rows(browser, url: str, newest: str, repeats: int):
    times = []
    for _ in range(repeats):
        context, page = fresh_page(browser)
        page.goto(url)
        page.get_by_text(newest, exact=True).first.wait_for(state="visible")
        times.append(since_navigation(page))
        context.close()
    return median(times)


def twinloop_chart(browser, url: str, repeats: int):
    firsts, zooms = [], []
    for _ in range(repeats):
        context, page = fresh_page(browser)
        page.goto(url)
        page.wait_for_selector("figure.chart.wide[data-ready='1']", state="attached")
        firsts.append(page.evaluate("() => performance.getEntriesByName('chart:ready')[0].startTime"))
        over = page.locator("figure.chart.wide .u-over")
        box = over.bounding_box()
        y = box["y"] + box["height"] / 2
        page.mouse.move(box["x"] + box["width"] * 0.60, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.66, y, steps=4)
        marks = page.evaluate("() => performance.getEntriesByName('chart:ready').length")
        t0 = since_navigation(page)
        page.mouse.up()
        page.wait_for_function(f"() => performance.getEntriesByName('chart:ready').length > {marks}")
        zooms.append(page.evaluate("() => performance.getEntriesByName('chart:ready').pop().startTime") - t0)
        context.close()
    return median(firsts), median(zooms)


def mlflow_chart(browser, url: str, repeats: int):
    """The run page's chart of the metric: drawn once its plot has a line path."""
    times = []
    for _ in range(repeats):
        context, page = fresh_page(browser)
        page.goto(url)
        page.wait_for_selector(".js-plotly-plot path.js-line, canvas", state="attached")
        times.append(since_navigation(page))
        context.close()
    return median(times)


def assets_bytes(browser, url: str) -> int:
    """Decoded bytes of every script, style sheet and image the page loaded."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    context, page = fresh_page(browser)
    # MLflow's runs page polls the server, so its network may never go idle; its bundle's lazy
    # chunks have loaded long before 30 s.
    try:
        page.goto(url, wait_until="networkidle", timeout=30_000)
    except PlaywrightTimeout:
        page.wait_for_load_state("load")
    total = page.evaluate(
        "() => performance.getEntriesByType('resource')"
        ".filter(e => ['script', 'link', 'css', 'img'].includes(e.initiatorType))"
        ".reduce((n, e) => n + e.decodedBodySize, 0)"
    )
    context.close()
    return total


def server_p95(base: str, paths: list[str], n: int):
    out = {}
    with requests.Session() as s:
        for path in paths:
            totals = []
            for _ in range(n):
                r = s.get(base + path, timeout=60)
                r.raise_for_status()
                timing = r.headers.get("server-timing", "")
                total = [p for p in timing.split(",") if p.strip().startswith("total;dur=")]
                totals.append(float(total[0].split("=")[1]))
            out[path] = p95(totals)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=("both", "twinloop", "mlflow"), default="both")
    ap.add_argument("--twinloop-bin")
    ap.add_argument("--runs", type=int, default=100_000, help="runs of the large experiment")
    ap.add_argument("--points", type=int, default=1_000_000, help="points of the long metric")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--overlay-steps", type=int, default=10_000, help="steps of each of the overlay's 100 runs")
    ap.add_argument("--markdown", help="append the result table to this file")
    ap.add_argument("--quick", action="store_true", help="10,000 runs, 100,000 points, 3 repeats")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.points, args.repeats, args.overlay_steps = 10_000, 100_000, 3, 1_000
    if args.only == "mlflow":
        args.only = "both"  # twinloop's side is what the ratios divide by
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("TWINLOOP_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        sys.exit("no chromium on PATH (apt-get install --no-install-recommends chromium)")
    tmp = Path(tempfile.mkdtemp(prefix="tl-bench-ui-"))
    setup = Setup(args, tmp)
    rows = []
    failed = []

    def row(what, twinloop, mlflow_value=None, unit="ms", budget=None):
        ratio = mlflow_value / twinloop if mlflow_value and twinloop else None
        verdict = ""
        if budget is not None:
            ok = twinloop <= budget
            verdict = "ok" if ok else "MISSED"
            if not ok:
                failed.append(what)
        rows.append((what, unit, twinloop, mlflow_value, ratio, budget, verdict))

    try:
        print(f"servers in {tmp}", file=sys.stderr)
        setup.start()
        setup.seed()
        tl = setup.ids["twinloop"]
        base = setup.twinloop.url
        big = BUDGETS["runs_table"]
        charts = BUDGETS["charts"]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            ml = setup.ids.get("mlflow")
            for label, n in (("1k", 1_000), ("100k", args.runs)):
                t, dom = twinloop_first_rows(browser, f"{base}/experiments/{tl['exp_' + label]}", args.repeats)
                m = None
                if ml:
                    m = mlflow_first_rows(
                        browser, f"{setup.mlflow.url}/#/experiments/{ml['exp_' + label]}/runs", f"run-{n - 1}", args.repeats
                    )
                row(f"runs table, first rows, {n:,} runs", t, m, budget=big["first_rows_ms"])
                row(f"runs table, <tr> in the DOM, {n:,} runs", dom, unit="rows", budget=big["max_dom_rows"])
            target = min(90_000, args.runs * 9 // 1000 * 100)
            t, dom, longest, _ = twinloop_jump(browser, f"{base}/experiments/{tl['exp_100k']}", target, args.repeats)
            row(f"runs table, jump to row {target:,} of {args.runs:,}", t, budget=big["jump_ms"])
            row("runs table, <tr> in the DOM after jumps and 5 s of scrolling", dom, unit="rows",
                budget=big["max_dom_rows"])
            row("runs table, longest task while jumping and scrolling", longest, budget=big["long_task_ms"])
            by_min = f"{base}/experiments/{tl['exp_100k']}?order=" + urllib.parse.quote("metrics.`loss`.min ASC")
            t, dom, longest, first_jump = twinloop_jump(browser, by_min, target, args.repeats, sorted_view=True)
            row(f"sorted by min, first jump to row {target:,} (with snapshot)", first_jump)
            row(f"sorted by min, jump to row {target:,}", t, budget=big["jump_ms"])
            row("sorted by min, longest task while jumping and scrolling", longest)
            for label, what, budget_ms, budget_bytes in (
                ("overlay", f"100 runs x {args.overlay_steps:,} steps", "overlay_ms", "overlay_bytes"),
                ("many", "1,000 runs x 50 steps", "many_runs_ms", "many_runs_bytes"),
            ):
                url = f"{base}/experiments/{tl['exp_' + label]}/compare?runs=" + ",".join(tl["runs_" + label])
                ready, size, fetched, drawn, html_bytes = twinloop_compare_chart(browser, url, args.repeats)
                row(f"compare page of {what}, HTML", html_bytes, unit="bytes")
                row(f"chart of {what}, drawn since navigation", ready, budget=charts[budget_ms])
                row(f"chart of {what}, series answer", size, unit="bytes", budget=charts[budget_bytes])
                row(f"chart of {what}, series request", fetched)
                row(f"chart of {what}, drawing after the answer", drawn)
            first, zoom = twinloop_chart(
                browser, f"{base}/experiments/{tl['exp_series']}/runs/{tl['run_series']}/metrics/loss", args.repeats
            )
            m = None
            if ml:
                m = mlflow_chart(
                    browser,
                    f"{setup.mlflow.url}/#/experiments/{ml['exp_series']}/runs/{ml['run_series']}/model-metrics",
                    args.repeats,
                )
            row(f"metric of {args.points:,} points, time to first chart", first, m, budget=charts["first_chart_ms"])
            row("metric zoom, re-query drawn", zoom, budget=charts["zoom_ms"])
            a = assets_bytes(browser, f"{base}/experiments/{tl['exp_1k']}")
            m = assets_bytes(browser, f"{setup.mlflow.url}/#/experiments/{ml['exp_1k']}/runs") if ml else None
            row("assets a runs page loads (uncompressed)", a, m, unit="bytes", budget=BUDGETS["pages"]["assets_bytes"])
            browser.close()
        e1k, e100k, es, rs = tl["exp_1k"], tl["exp_100k"], tl["exp_series"], tl["run_series"]
        # The 50 ms budget is for pages of quickstart-sized data; the large experiment's pages
        # are shown beside them without one.
        pages = [
            ("/experiments", "/experiments", True),
            ("runs table, 1,000 runs", f"/experiments/{e1k}", True),
            (f"runs table, {args.runs:,} runs", f"/experiments/{e100k}", False),
            (f"rows at {target:,}", f"/experiments/{e100k}/rows?offset={target}&limit=100", False),
            ("grouped, 1,000 runs", f"/experiments/{e1k}?group=optimizer", True),
            (f"grouped, {args.runs:,} runs", f"/experiments/{e100k}?group=optimizer", False),
            ("run page", f"/experiments/{es}/runs/{rs}", True),
            ("metric page", f"/experiments/{es}/runs/{rs}/metrics/loss", True),
        ]
        p95s = server_p95(base, [p for _, p, _ in pages], args.repeats * 5)
        for label, path, budgeted in pages:
            row(f"server time p95, {label}", p95s[path], budget=BUDGETS["pages"]["server_p95_ms"] if budgeted else None)
    finally:
        setup.stop()

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    load = os.getloadavg()
    head = (
        f"bench/ui run of {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, git {commit}, "
        f"{platform.machine()} {os.cpu_count()} cores, load average {load[0]:.1f}/{load[1]:.1f}, "
        f"{args.runs:,} runs, {args.points:,} points, median of {args.repeats}"
    )
    lines = [
        head,
        "",
        f"{'measure':58} {'unit':6} {'twinloop':>10} {'mlflow':>10} {'mlflow/twinloop':>15} {'budget':>8}",
    ]
    for what, unit, t, m, ratio, budget, verdict in rows:
        fmt = (lambda v: f"{v:10.0f}") if unit in ("bytes", "rows") else (lambda v: f"{v:10.1f}")
        lines.append(
            f"{what:58} {unit:6} {fmt(t)} {fmt(m) if m is not None else ' ' * 10} "
            f"{(f'{ratio:14.1f}x' if ratio else ' ' * 15)} {budget if budget is not None else '':>8} {verdict}"
        )
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, "a") as f:
            f.write("\n```\n" + text + "\n```\n")
    shutil.rmtree(tmp, ignore_errors=True)
    if failed:
        print("budgets missed: " + ", ".join(failed), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
