// @ts-check
// The UI scripts' pure parts, with no DOM: decoding the series endpoint's buckets, smoothing,
// scales, the URL state and the parallel coordinates' brushing. The browser loads this file as
// a classic script before chart.js and compare.js (it sets `window.TwinloopUI`); `node --test`
// loads the same file with require() (crates/twinloop-ui/assets/test/). No build step, no
// module loader: the server names assets by content hash, so ES module imports by name would
// not resolve, and the CSP allows no inline script to wire modules together.
(function (root, factory) {
  "use strict";
  var lib = factory();
  if (typeof module === "object" && module.exports) module.exports = lib;
  else /** @type {any} */ (root).TwinloopUI = lib;
})(this, function () {
  "use strict";

  /** The most buckets a chart asks for, whatever its width. */
  var MAX_BUCKETS = 4000;
  /** The fewest: a narrow card still gets a readable line. */
  var MIN_BUCKETS = 10;
  /**
   * Buckets a chart of several runs asks for in all. A pixel each per run made 100 runs of
   * 10,000 steps a 4.9 MB answer read from raw rows (a bucket under 16 steps has no rollup),
   * while 100 overlaid lines show no more at 500 buckets than at 1,280.
   */
  var CHART_BUCKETS = 50000;

  /**
   * How many buckets to ask for per run: one per device pixel of the plot, fewer when many runs
   * share it, so that the whole chart stays near CHART_BUCKETS values.
   * @param {number} width CSS pixels
   * @param {number} [dpr] devicePixelRatio
   * @param {number} [runs] runs drawn in the chart
   */
  function bucketCount(width, dpr, runs) {
    var n = Math.round(width * (dpr || 1));
    if (runs && runs > 1) n = Math.min(n, Math.floor(CHART_BUCKETS / runs));
    if (!(n >= MIN_BUCKETS)) return MIN_BUCKETS;
    return Math.min(MAX_BUCKETS, n);
  }

  /**
   * Exponential moving average with TensorBoard's debiasing, so the first points are not
   * pulled towards zero. Gaps (null, NaN) stay gaps and do not reset the average.
   * @param {(number | null)[]} ys
   * @param {number} weight 0 (none) … <1
   * @returns {(number | null)[]}
   */
  function smooth(ys, weight) {
    if (!(weight > 0 && weight < 1)) return ys;
    var out = new Array(ys.length), acc = 0, n = 0;
    for (var i = 0; i < ys.length; i++) {
      var y = ys[i];
      if (y == null || !isFinite(y)) { out[i] = y; continue; }
      acc = acc * weight + (1 - weight) * y;
      n++;
      out[i] = acc / (1 - Math.pow(weight, n));
    }
    return out;
  }

  /**
   * Where bucket `index` is drawn: the middle of its share of the range. Bucket i spans
   * [origin + i * width, origin + (i + 1) * width - 1], clipped to [from, to].
   * @param {number} origin
   * @param {number} width
   * @param {number} index
   * @param {number} from
   * @param {number} to
   */
  function bucketX(origin, width, index, from, to) {
    var lo = origin + index * width;
    return Math.floor((Math.max(lo, from) + Math.min(lo + width - 1, to)) / 2);
  }

  /**
   * One run of a series answer as chart columns [x, line, min, max]: raw points as they are
   * (the band collapses onto the line), buckets at their middles with `last` as the line.
   * @param {any} answer the whole answer (origin, bucket_width, from, to)
   * @param {any} run one element of answer.runs
   * @param {number} weight smoothing of the line
   * @returns {any[][]}
   */
  function columns(answer, run, weight) {
    if (run.raw || !run.buckets) {
      var p = run.points || { x: [], value: [] };
      return [p.x, smooth(p.value, weight), p.value, p.value];
    }
    var b = run.buckets, xs = new Array(b.index.length);
    for (var i = 0; i < xs.length; i++) {
      xs[i] = bucketX(answer.origin, answer.bucket_width, b.index[i], answer.from, answer.to);
    }
    return [xs, smooth(b.last, weight), b.min, b.max];
  }

  /**
   * Whether every value is above zero, so a log scale can show them all; else the chart uses
   * asinh, which is log-like and takes zero and negatives.
   * @param {any[][]} parts chart columns per run ([x, line, min, max])
   */
  function allPositive(parts) {
    for (var r = 0; r < parts.length; r++) {
      var mins = parts[r][2];
      for (var i = 0; i < mins.length; i++) if (!(mins[i] > 0)) return false;
    }
    return true;
  }

  /**
   * uPlot's y scale: linear, log (distr 3) or asinh (distr 4).
   * @param {boolean} log
   * @param {boolean} positive
   */
  function yScale(log, positive) {
    if (!log) return {};
    return positive ? { distr: 3 } : { distr: 4 };
  }

  /**
   * A query string with some names set (string), replaced by several values (array) or removed
   * (null); the others keep their order.
   * @param {string} search "?a=1&b=2" or "a=1"
   * @param {Record<string, string | string[] | null>} changes
   */
  function withParams(search, changes) {
    var q = new URLSearchParams(search);
    Object.keys(changes).forEach(function (k) {
      var v = changes[k];
      q.delete(k);
      if (v == null) return;
      (Array.isArray(v) ? v : [v]).forEach(function (one) { if (one !== "") q.append(k, one); });
    });
    var s = q.toString();
    return s ? "?" + s : "";
  }

  /**
   * A zoomed x range in the URL (`from`, `to`), or none.
   * @param {string} search
   * @returns {{from: number, to: number} | null}
   */
  function zoomFrom(search) {
    var q = new URLSearchParams(search);
    var from = Number(q.get("from")), to = Number(q.get("to"));
    if (q.get("from") == null || q.get("to") == null || !isFinite(from) || !isFinite(to) || from > to) return null;
    return { from: from, to: to };
  }

  /**
   * @typedef {{column: string, lo: number, hi: number}} Brush
   * A brush keeps the runs whose position on the column's axis lies in [lo, hi], positions
   * running from 0 (bottom) to 1 (top). Positions depend only on the compared runs, which the
   * URL names too, so a brushed URL opens the same selection.
   */

  /** Decimals of a brush bound in the URL: finer than a pixel of the axis. */
  var BRUSH_DECIMALS = 3;

  /**
   * `brush=COLUMN:LO:HI`; the column may itself hold colons, the bounds never do.
   * @param {Brush} b
   */
  function encodeBrush(b) {
    return b.column + ":" + b.lo.toFixed(BRUSH_DECIMALS) + ":" + b.hi.toFixed(BRUSH_DECIMALS);
  }

  /**
   * The brush a URL value names, bounds ordered and clamped to [0, 1]; null for nonsense.
   * @param {string} text
   * @returns {Brush | null}
   */
  function decodeBrush(text) {
    var j = text.lastIndexOf(":"), i = j > 0 ? text.lastIndexOf(":", j - 1) : -1;
    if (i <= 0) return null;
    var a = Number(text.slice(i + 1, j)), b = Number(text.slice(j + 1));
    if (text.slice(i + 1, j) === "" || text.slice(j + 1) === "" || !isFinite(a) || !isFinite(b)) return null;
    var clamp = function (/** @type {number} */ v) { return Math.min(1, Math.max(0, v)); };
    return { column: text.slice(0, i), lo: clamp(Math.min(a, b)), hi: clamp(Math.max(a, b)) };
  }

  /**
   * Every brush in a query string, one per column (a later one wins).
   * @param {string} search
   * @returns {Brush[]}
   */
  function brushesFrom(search) {
    /** @type {Brush[]} */
    var out = [];
    new URLSearchParams(search).getAll("brush").forEach(function (v) {
      var b = decodeBrush(v);
      if (!b) return;
      var at = out.findIndex(function (o) { return o.column === b.column; });
      if (at >= 0) out[at] = b; else out.push(b);
    });
    return out;
  }

  /**
   * A brush set with one column's brush replaced (or removed, for null).
   * @param {Brush[]} brushes
   * @param {string} column
   * @param {{lo: number, hi: number} | null} range
   * @returns {Brush[]}
   */
  function setBrush(brushes, column, range) {
    var out = brushes.filter(function (b) { return b.column !== column; });
    if (range) out.push({ column: column, lo: Math.min(range.lo, range.hi), hi: Math.max(range.lo, range.hi) });
    return out;
  }

  /** Slack on a bound, so a value drawn exactly on a brush's edge is inside it. */
  var EDGE = 5e-4;

  /**
   * Whether a run passes every brush. `positions` maps a column to the run's position on its
   * axis, or null where the run has no value: a run without a value fails a brush on that axis.
   * @param {Record<string, number | null>} positions
   * @param {Brush[]} brushes
   */
  function passes(positions, brushes) {
    for (var i = 0; i < brushes.length; i++) {
      var b = brushes[i], p = positions[b.column];
      if (p == null || !(p >= b.lo - EDGE && p <= b.hi + EDGE)) return false;
    }
    return true;
  }

  /**
   * A run's positions from the parallel coordinates' `data-pos` (comma-separated, one per
   * axis, empty where missing) and the axes' columns in order.
   * @param {string} text
   * @param {string[]} columns
   * @returns {Record<string, number | null>}
   */
  function positionsOf(text, columns) {
    var parts = text.split(","), out = /** @type {Record<string, number | null>} */ ({});
    columns.forEach(function (c, i) {
      var s = parts[i];
      out[c] = s == null || s === "" || !isFinite(Number(s)) ? null : Number(s);
    });
    return out;
  }

  /**
   * The position (0 at the bottom, 1 at the top) of a y coordinate on an axis drawn from
   * `top` to `bottom` (SVG y grows downwards), clamped to the axis.
   * @param {number} y
   * @param {number} top
   * @param {number} bottom
   */
  function axisFraction(y, top, bottom) {
    if (!(bottom > top)) return 0.5;
    return Math.min(1, Math.max(0, (bottom - y) / (bottom - top)));
  }

  return {
    MAX_BUCKETS: MAX_BUCKETS,
    bucketCount: bucketCount,
    smooth: smooth,
    bucketX: bucketX,
    columns: columns,
    allPositive: allPositive,
    yScale: yScale,
    withParams: withParams,
    zoomFrom: zoomFrom,
    encodeBrush: encodeBrush,
    decodeBrush: decodeBrush,
    brushesFrom: brushesFrom,
    setBrush: setBrush,
    passes: passes,
    positionsOf: positionsOf,
    axisFraction: axisFraction,
  };
});
