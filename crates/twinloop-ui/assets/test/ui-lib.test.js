// The UI scripts' pure helpers (ui-lib.js), under node's own test runner: no npm, no browser.
//   node --test crates/twinloop-ui/assets/test/
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");

const lib = require(path.join(__dirname, "..", "ui-lib.js"));

/** 7 significant digits, rounded as the series endpoint rounds: min down, max up, last nearest. */
function digits7(v, toward) {
  if (v === 0 || !isFinite(v)) return v;
  const e = Math.floor(Math.log10(Math.abs(v))) - 6;
  const scaled = v / Math.pow(10, e);
  const r = toward === "down" ? Math.floor(scaled) : toward === "up" ? Math.ceil(scaled) : Math.round(scaled);
  return Number((r * Math.pow(10, e)).toPrecision(7));
}

/** A series answer as the server writes one, bucketed by brute force from raw points. */
function answerOf(points, from, to, origin, width) {
  const byIndex = new Map();
  for (const [x, y] of points) {
    if (x < from || x > to) continue;
    const i = Math.floor((x - origin) / width);
    const b = byIndex.get(i) || { min: Infinity, max: -Infinity, last: NaN, lastX: -Infinity, count: 0 };
    b.min = Math.min(b.min, y);
    b.max = Math.max(b.max, y);
    if (x >= b.lastX) { b.last = y; b.lastX = x; }
    b.count++;
    byIndex.set(i, b);
  }
  const index = [...byIndex.keys()].sort((a, b) => a - b);
  return {
    bucket_width: width,
    from,
    to,
    key: "loss",
    origin,
    x: "step",
    runs: [{
      run_id: "r1",
      raw: false,
      buckets: {
        index,
        count: index.map((i) => byIndex.get(i).count),
        min: index.map((i) => digits7(byIndex.get(i).min, "down")),
        max: index.map((i) => digits7(byIndex.get(i).max, "up")),
        last: index.map((i) => digits7(byIndex.get(i).last, "nearest")),
      },
    }],
  };
}

test("buckets decode to x inside their own span, clipped to the range", () => {
  const points = [];
  for (let x = 0; x < 1000; x++) points.push([x, x === 654 ? 50.123456789 : Math.sin(x / 37) * 1e-3]);
  // The range starts inside bucket 0 (origin 95, from 100), as a zoomed query does.
  const answer = answerOf(points, 100, 990, 95, 64);
  const [xs, line, min, max] = lib.columns(answer, answer.runs[0], 0);
  const b = answer.runs[0].buckets;
  assert.equal(xs.length, b.index.length);
  assert.equal(b.index[0], 0);
  for (let k = 0; k < xs.length; k++) {
    const lo = Math.max(answer.origin + b.index[k] * answer.bucket_width, answer.from);
    const hi = Math.min(answer.origin + (b.index[k] + 1) * answer.bucket_width - 1, answer.to);
    assert.ok(xs[k] >= lo && xs[k] <= hi, `bucket ${b.index[k]}: x ${xs[k]} outside [${lo}, ${hi}]`);
    assert.ok(min[k] <= line[k] && line[k] <= max[k], `bucket ${b.index[k]}: last outside its band`);
  }
  assert.deepEqual(xs.slice().sort((a, c) => a - c), xs, "x increases");
  // Every raw point lies inside the band of the bucket that holds it: the spike is never lost.
  for (const [x, y] of points) {
    if (x < answer.from || x > answer.to) continue;
    const k = b.index.indexOf(Math.floor((x - answer.origin) / answer.bucket_width));
    assert.ok(k >= 0 && min[k] <= y && y <= max[k], `point ${x}`);
  }
  assert.ok(Math.max(...max) >= 50.123456789);
  // Values pass through exactly as the wire wrote them (7 significant digits).
  assert.equal(max[b.index.indexOf(Math.floor((654 - 95) / 64))], 50.12346);
});

test("raw answers are points, with the band on the line", () => {
  const run = { run_id: "r", raw: true, points: { x: [1, 2, 3], value: [3, 1, 2], step: [1, 2, 3], timestamp: [0, 0, 0] } };
  const [xs, line, min, max] = lib.columns({ origin: null, bucket_width: null }, run, 0);
  assert.deepEqual(xs, [1, 2, 3]);
  assert.deepEqual(line, [3, 1, 2]);
  assert.deepEqual(min, line);
  assert.deepEqual(max, line);
});

test("smoothing is debiased and keeps gaps", () => {
  assert.deepEqual(lib.smooth([1, 2, 3], 0), [1, 2, 3]);
  const s = lib.smooth([4, null, 4, NaN, 4], 0.9);
  assert.equal(s[0], 4, "the first point is not pulled towards zero");
  assert.equal(s[1], null);
  assert.ok(Number.isNaN(s[3]));
  assert.ok(Math.abs(s[4] - 4) < 1e-12);
  const step = lib.smooth([0, 0, 0, 10, 10, 10], 0.6);
  for (let i = 4; i < step.length; i++) assert.ok(step[i] > step[i - 1] && step[i] < 10);
  assert.deepEqual(lib.smooth([1, 2], 1.5), [1, 2], "a weight of 1 or more is no smoothing");
});

test("bucket counts follow the plot's pixels within bounds", () => {
  assert.equal(lib.bucketCount(600, 1), 600);
  assert.equal(lib.bucketCount(600, 2), 1200);
  assert.equal(lib.bucketCount(3000, 2), lib.MAX_BUCKETS);
  assert.equal(lib.bucketCount(0, 1), 10);
  assert.equal(lib.bucketCount(NaN), 10);
  // Many runs share the chart's values: 100 runs get 500 buckets each, 1,000 runs 50.
  assert.equal(lib.bucketCount(1280, 1, 1), 1280);
  assert.equal(lib.bucketCount(1280, 1, 10), 1280);
  assert.equal(lib.bucketCount(1280, 1, 100), 500);
  assert.equal(lib.bucketCount(1280, 2, 1000), 50);
  assert.equal(lib.bucketCount(1280, 1, 100000), 10);
});

test("a log scale only when every value is positive, else asinh", () => {
  assert.equal(lib.allPositive([[[1], [1], [0.5], [2]]]), true);
  assert.equal(lib.allPositive([[[1], [1], [0.5], [2]], [[1], [0], [0], [0]]]), false);
  assert.deepEqual(lib.yScale(false, true), {});
  assert.deepEqual(lib.yScale(true, true), { distr: 3 });
  assert.deepEqual(lib.yScale(true, false), { distr: 4 });
});

test("URL state: set, repeat and remove parameters, keep the rest in order", () => {
  assert.equal(lib.withParams("?runs=a%2Cb&from=1&to=2", { from: null, to: null }), "?runs=a%2Cb");
  assert.equal(lib.withParams("runs=a", { from: "5", to: "9" }), "?runs=a&from=5&to=9");
  assert.equal(lib.withParams("?brush=x&runs=a", { brush: ["p:0.100:0.200", "q:0.000:1.000"] }), "?runs=a&brush=p%3A0.100%3A0.200&brush=q%3A0.000%3A1.000");
  assert.equal(lib.withParams("?a=1", { a: null }), "");
  assert.deepEqual(lib.zoomFrom("?from=10&to=20"), { from: 10, to: 20 });
  assert.equal(lib.zoomFrom("?from=20&to=10"), null);
  assert.equal(lib.zoomFrom("?from=x&to=10"), null);
  assert.equal(lib.zoomFrom("?to=10"), null);
});

test("brushes round-trip through the URL, columns with colons included", () => {
  const brushes = [
    { column: "params.model", lo: 0.25, hi: 0.75 },
    { column: "metrics.val:acc", lo: 0, hi: 0.5 },
  ];
  const search = lib.withParams("?runs=a,b", { brush: brushes.map(lib.encodeBrush) });
  assert.deepEqual(lib.brushesFrom(search), brushes);
  assert.deepEqual(lib.decodeBrush("params.lr:0.9:0.1"), { column: "params.lr", lo: 0.1, hi: 0.9 });
  assert.deepEqual(lib.decodeBrush("params.lr:-1:2"), { column: "params.lr", lo: 0, hi: 1 });
  for (const bad of ["", "params.lr", "params.lr:0.1", ":0:1", "p:x:1", "p::1", "p:0:"]) {
    assert.equal(lib.decodeBrush(bad), null, bad);
  }
  // One brush per column: the later one wins.
  assert.deepEqual(lib.brushesFrom("?brush=p:0:0.5&brush=p:0.5:1"), [{ column: "p", lo: 0.5, hi: 1 }]);
});

test("brushing keeps the runs inside every brush", () => {
  const columns = ["params.opt", "params.lr", "metrics.loss"];
  const runs = {
    a: lib.positionsOf("0,0.2,1", columns),
    b: lib.positionsOf("0.5,0.8,0.4", columns),
    c: lib.positionsOf("1,,0", columns),
  };
  const keep = (brushes) => Object.keys(runs).filter((id) => lib.passes(runs[id], brushes));
  assert.deepEqual(keep([]), ["a", "b", "c"]);
  let brushes = lib.setBrush([], "metrics.loss", { lo: 0.5, hi: 0.3 });
  assert.deepEqual(brushes, [{ column: "metrics.loss", lo: 0.3, hi: 0.5 }]);
  assert.deepEqual(keep(brushes), ["b"]);
  brushes = lib.setBrush(brushes, "metrics.loss", { lo: 0, hi: 1 });
  assert.deepEqual(keep(brushes), ["a", "b", "c"]);
  // A run with no value on a brushed axis is out.
  brushes = lib.setBrush(brushes, "params.lr", { lo: 0, hi: 1 });
  assert.deepEqual(keep(brushes), ["a", "b"]);
  // A categorical value exactly on the brush's edge is in.
  brushes = lib.setBrush(brushes, "params.opt", { lo: 0.5, hi: 0.9 });
  assert.deepEqual(keep(brushes), ["b"]);
  assert.deepEqual(keep(lib.setBrush(brushes, "params.opt", null)), ["a", "b"]);
});

test("a y coordinate on an axis is a position from the bottom", () => {
  assert.equal(lib.axisFraction(310, 40, 310), 0);
  assert.equal(lib.axisFraction(40, 40, 310), 1);
  assert.equal(lib.axisFraction(175, 40, 310), 0.5);
  assert.equal(lib.axisFraction(0, 40, 310), 1);
  assert.equal(lib.axisFraction(999, 40, 310), 0);
  assert.equal(lib.axisFraction(5, 10, 10), 0.5);
});
