// @ts-check
// Metric charts. The server renders each chart as a <figure class="chart"> whose data-*
// attributes (for the runs, its grid's) say what to draw (runs, key, x axis, log y, smoothing,
// zoom); this script draws it with uPlot from GET /api/twinloop/v1/metrics/series, which
// answers per bucket the min, max and last value. `last` is the line and [min, max] a band behind it, so a spike squeezed into
// a bucket still shows. A chart is fetched only once its card scrolls into view, and on the
// metric page (data-zoom) a dragged selection re-queries the zoomed range, which comes back raw once it
// holds few enough points, and is written into the URL. The pure parts (bucket decoding,
// smoothing, scales, URL state) are ui-lib.js's, tested under node.
(function () {
  "use strict";

  var lib = window.TwinloopUI;
  /** Same order as the .c0 … .c9 legend swatches in ui.css. */
  var COLORS = ["#2059c5", "#d9480f", "#2b8a3e", "#ae3ec9", "#e67700", "#0b7285", "#c2255c", "#5c7cfa", "#74b816", "#495057"];
  /**
   * Runs up to which a bucketed run gets its min–max band. Past that the bands of the runs
   * cover each other, and each would cost two more uPlot series.
   */
  var BAND_RUNS = 10;

  /**
   * @param {string} hex
   * @param {number} alpha
   */
  function rgba(hex, alpha) {
    var n = parseInt(hex.slice(1), 16);
    return "rgba(" + (n >> 16) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + alpha + ")";
  }

  /**
   * @param {HTMLElement} fig
   * @param {number | null} from
   * @param {number | null} to
   * @param {number} width
   */
  function url(fig, from, to, width) {
    var d = fig.dataset;
    var q = new URLSearchParams();
    // A grid of cards names its runs once, on itself.
    var named = /** @type {HTMLElement | null} */ (fig.closest("[data-runs]"));
    var runs = (named && named.dataset.runs) || "";
    q.set("run_ids", runs);
    q.set("key", d.key || "");
    q.set("x", d.x || "step");
    q.set("buckets", String(lib.bucketCount(width, window.devicePixelRatio, runs.split(",").length)));
    if (from != null) q.set("from", String(Math.floor(from)));
    if (to != null) q.set("to", String(Math.ceil(to)));
    return "/api/twinloop/v1/metrics/series?" + q.toString();
  }

  /**
   * The answer as uPlot's table. A raw run is its line alone: its band would lie on the line,
   * and three series per run made a 1,000-run chart three times slower to draw. So is every run
   * of a chart of more than BAND_RUNS runs.
   * @param {HTMLElement} fig
   * @param {any} answer
   * @returns {{data: any[], banded: boolean[], positive: boolean}}
   */
  function table(fig, answer) {
    var weight = parseFloat(fig.dataset.smooth || "0");
    var parts = answer.runs.map(function (/** @type {any} */ r) { return lib.columns(answer, r, weight); });
    var positive = lib.allPositive(parts);
    var few = answer.runs.length <= BAND_RUNS;
    var banded = answer.runs.map(function (/** @type {any} */ r) { return few && !(r.raw || !r.buckets); });
    var tables = parts.map(function (/** @type {any[][]} */ p, /** @type {number} */ i) { return banded[i] ? p : [p[0], p[1]]; });
    var data = tables.length === 1 ? tables[0] : window.uPlot.join(tables);
    return { data: data, banded: banded, positive: positive };
  }

  /**
   * @param {HTMLElement} fig
   * @param {boolean[]} banded per run, whether it has a min and a max series after its line
   * @param {boolean} positive
   * @param {number} width
   * @param {number} height
   */
  function options(fig, banded, positive, width, height) {
    var d = fig.dataset, x = d.x || "step";
    /** @type {any[]} */
    var series = [{}];
    /** @type {any[]} */
    var bands = [];
    for (var i = 0; i < banded.length; i++) {
      var c = COLORS[i % COLORS.length];
      series.push({ stroke: c, width: 1.5, spanGaps: true, points: { show: false } });
      if (!banded[i]) continue;
      series.push({ stroke: rgba(c, 0.35), width: 0.5, spanGaps: true, points: { show: false } });
      series.push({ stroke: rgba(c, 0.35), width: 0.5, spanGaps: true, points: { show: false } });
      bands.push({ series: [series.length - 1, series.length - 2], fill: rgba(c, 0.15) });
    }
    var log = d.log === "1";
    return {
      width: width,
      height: height,
      ms: 1,
      series: series,
      bands: bands,
      legend: { show: false },
      cursor: {
        // A drag only selects; the selection's range is fetched again (see onSelect).
        drag: { x: d.zoom === "1", y: false, setScale: false },
        bind: { dblclick: function () { return null; } },
      },
      scales: {
        x: { time: x === "time" },
        y: lib.yScale(log, positive),
      },
      axes: [
        {
          label: x === "time" ? "" : x === "relative" ? "seconds since the first point" : "step",
          values: x === "relative"
            ? function (/** @type {any} */ _u, /** @type {number[]} */ vals) { return vals.map(function (v) { return String(v / 1000); }); }
            : undefined,
        },
        { size: 60 },
      ],
    };
  }

  /**
   * @param {HTMLElement} fig
   * @param {string} text
   */
  function note(fig, text) {
    var p = fig.querySelector(".chart-note");
    if (p) p.textContent = text;
  }

  /** @param {HTMLElement} fig */
  function mount(fig) {
    if (fig.dataset.mounted) return;
    fig.dataset.mounted = "1";
    var box = /** @type {HTMLElement} */ (fig.querySelector(".plot"));
    if (!box) return;
    var width = Math.max(200, box.clientWidth || 400);
    var height = fig.dataset.zoom === "1" ? 420 : 220;
    var from = fig.dataset.from ? Number(fig.dataset.from) : null;
    var to = fig.dataset.to ? Number(fig.dataset.to) : null;
    /** @type {any} */
    var plot = null;
    var drawn = "";
    var asked = 0;

    /**
     * @param {number | null} lo
     * @param {number | null} hi
     */
    function load(lo, hi) {
      var mine = ++asked;
      return fetch(url(fig, lo, hi, width), { headers: { accept: "application/json" } })
        .then(function (r) {
          if (!r.ok) return r.json().then(function (e) { throw new Error(e.message || r.statusText); });
          return r.json();
        })
        .then(function (answer) {
          if (mine !== asked) return;
          var t = table(fig, answer);
          var raw = answer.runs.every(function (/** @type {any} */ r) { return r.raw; });
          fig.dataset.raw = raw ? "1" : "0";
          var band = answer.runs.length <= BAND_RUNS ? ", band = min–max." : " (min–max bands up to " + BAND_RUNS + " runs).";
          note(fig, answer.from == null ? "No points." : raw ? "All points." : "Buckets of " + answer.bucket_width + ": line = last" + band);
          // A zoom can turn buckets into raw points, which changes the series: draw anew.
          var shape = t.banded.join();
          if (plot && shape !== drawn) { plot.destroy(); plot = null; }
          drawn = shape;
          if (!plot) {
            var opts = options(fig, t.banded, t.positive, width, height);
            opts.hooks = { setSelect: [onSelect] };
            plot = new window.uPlot(opts, t.data, box);
            if (lo != null && hi != null) plot.setScale("x", { min: lo, max: hi });
            if (fig.dataset.zoom === "1") {
              plot.over.addEventListener("dblclick", function () { zoom(null, null); });
            }
          } else {
            plot.setData(t.data, lo == null && hi == null);
            if (lo != null && hi != null) plot.setScale("x", { min: lo, max: hi });
          }
          fig.dataset.ready = "1";
          if (window.performance && performance.mark) performance.mark("chart:ready");
        })
        .catch(function (e) {
          fig.dataset.ready = "error";
          note(fig, "Could not load the series: " + e.message);
        });
    }

    /**
     * @param {number | null} lo
     * @param {number | null} hi
     */
    function zoom(lo, hi) {
      var s = lo == null || hi == null
        ? lib.withParams(window.location.search, { from: null, to: null })
        : lib.withParams(window.location.search, { from: String(Math.floor(lo)), to: String(Math.ceil(hi)) });
      history.replaceState(history.state, "", window.location.pathname + s);
      load(lo, hi);
    }

    /**
     * The end of a drag: zoom to the selected range by fetching it. uPlot's scale hooks fire
     * for every change, ours included, so the selection is the only sign of the user's zoom.
     * @param {any} u
     */
    function onSelect(u) {
      if (fig.dataset.zoom !== "1" || u.select.width < 2) return;
      var lo = u.posToVal(u.select.left, "x");
      var hi = u.posToVal(u.select.left + u.select.width, "x");
      u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
      zoom(lo, hi);
    }

    load(from, to);
  }

  /** @param {ParentNode} root */
  function scan(root) {
    var figs = root.querySelectorAll ? root.querySelectorAll("figure.chart") : [];
    if (!figs.length) return;
    if (!("IntersectionObserver" in window)) {
      figs.forEach(function (f) { mount(/** @type {HTMLElement} */ (f)); });
      return;
    }
    var seen = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) {
        if (e.isIntersecting) {
          seen.unobserve(e.target);
          mount(/** @type {HTMLElement} */ (e.target));
        }
      });
    }, { rootMargin: "200px" });
    figs.forEach(function (f) { seen.observe(f); });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", function () { scan(document); });
  else scan(document);
  // htmx swaps new bodies in on boosted navigation; their charts mount the same way.
  document.addEventListener("htmx:load", function (e) { scan(/** @type {any} */ (e).detail.elt); });
})();
