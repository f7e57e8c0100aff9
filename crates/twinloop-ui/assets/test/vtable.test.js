// The runs table's window math and URL state (vtable.js), under node's own test runner.
//   node --test crates/twinloop-ui/assets/test/
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");

const vt = require(path.join(__dirname, "..", "vtable.js"));

test("the window covers the rows in view plus the overscan, clipped to the table", () => {
  // 800 px of 28 px rows at row 90,000 of 100,000.
  assert.deepEqual(vt.windowFor(90000 * 28, 800, 28, 100000), { first: 90000, start: 89980, end: 90050 });
  assert.deepEqual(vt.windowFor(0, 800, 28, 100000), { first: 0, start: 0, end: 50 });
  assert.deepEqual(vt.windowFor(0, 800, 28, 7), { first: 0, start: 0, end: 7 });
  // Scrolled past the end (a shrunk table): the last row, never a negative window.
  assert.deepEqual(vt.windowFor(1e9, 800, 28, 10), { first: 9, start: 0, end: 10 });
  assert.deepEqual(vt.windowFor(0, 800, 28, 0), { first: 0, start: 0, end: 0 });
  // At most 200 rows in the DOM for any viewport up to 4,000 px.
  for (const vh of [300, 800, 1600, 4000]) {
    const w = vt.windowFor(50000 * 28, vh, 28, 100000);
    assert.ok(w.end - w.start <= 200, `${vh}: ${w.end - w.start}`);
  }
});

test("the row in the URL fragment", () => {
  assert.equal(vt.rowFromHash("#row=90000"), 90000);
  assert.equal(vt.rowFromHash("#x=1&row=12"), 12);
  assert.equal(vt.rowFromHash("#row=-3"), null);
  assert.equal(vt.rowFromHash("#narrow=5"), null);
  assert.equal(vt.rowFromHash(""), null);
});

test("window parameters join the page's query", () => {
  assert.equal(vt.withParams("/experiments/3/rows", "offset=100"), "/experiments/3/rows?offset=100");
  assert.equal(vt.withParams("/experiments/3/rows?filter=a", "offset=100"), "/experiments/3/rows?filter=a&offset=100");
});

test("expanding a parent adds it to the view's expand list, collapsing removes it", () => {
  const url = "/experiments/3/rows?order=metrics.%60loss%60.min%20ASC&expand=a";
  assert.equal(vt.withExpanded(url, "b", true), "/experiments/3/rows?order=metrics.%60loss%60.min+ASC&expand=a&expand=b");
  assert.equal(vt.withExpanded(url, "a", false), "/experiments/3/rows?order=metrics.%60loss%60.min+ASC");
  assert.equal(vt.withExpanded("/experiments/3", "a", true), "/experiments/3?expand=a");
  // Expanding twice lists the parent once.
  assert.equal(vt.withExpanded(url, "a", true), "/experiments/3/rows?order=metrics.%60loss%60.min+ASC&expand=a");
});
