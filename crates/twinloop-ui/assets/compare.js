// @ts-check
// Brushing on the compare page's parallel coordinates. The server draws the SVG (each run a
// polyline whose data-pos holds its position on every axis) and renders a brushed URL already
// filtered; this script lets a drag along an axis set that axis's brush, then dims the lines
// and scatter dots of the runs it leaves out, hides their rows in the runs table, and writes the
// brushes into the URL (`brush=COLUMN:LO:HI`) and into the page's form, so the next view the form
// asks for keeps them. Lines and dots name their run by its place in the runs table (`data-i`).
// The rule itself is ui-lib.js's `passes`.
(function () {
  "use strict";

  var lib = window.TwinloopUI;

  /**
   * The y of a pointer event in the SVG's own coordinates.
   * @param {SVGSVGElement} svg
   * @param {PointerEvent} e
   */
  function svgY(svg, e) {
    var m = svg.getScreenCTM();
    if (!m) return 0;
    var p = svg.createSVGPoint();
    p.x = e.clientX;
    p.y = e.clientY;
    return p.matrixTransform(m.inverse()).y;
  }

  /** @param {SVGSVGElement} svg */
  function init(svg) {
    if (svg.dataset.brushing) return;
    svg.dataset.brushing = "1";
    var top = Number(svg.dataset.top), bottom = Number(svg.dataset.bottom);
    var axes = /** @type {SVGGElement[]} */ (Array.prototype.slice.call(svg.querySelectorAll("g.pc-axis")));
    var columns = axes.map(function (a) { return a.dataset.col || ""; });
    var lines = Array.prototype.slice.call(svg.querySelectorAll("polyline[data-i]")).map(function (/** @type {SVGElement} */ el) {
      return { el: el, run: el.dataset.i || "", pos: lib.positionsOf(el.dataset.pos || "", columns) };
    });
    var brushes = lib.brushesFrom(window.location.search).filter(function (/** @type {any} */ b) {
      return columns.indexOf(b.column) >= 0;
    });
    /** @param {number} f */
    function y(f) { return bottom - f * (bottom - top); }

    /** @param {boolean} write whether to record the brushes in the URL */
    function apply(write) {
      /** @type {Record<string, boolean>} */
      var keep = {};
      var kept = 0;
      lines.forEach(function (/** @type {any} */ l) {
        var ok = lib.passes(l.pos, brushes);
        l.el.classList.toggle("dim", !ok);
        if (ok) { keep[l.run] = true; kept++; }
      });
      document.querySelectorAll("#compare-runs tbody tr[data-run-id]").forEach(function (tr, i) {
        /** @type {HTMLElement} */ (tr).hidden = !keep[String(i)];
      });
      document.querySelectorAll("#scatter circle[data-i]").forEach(function (c) {
        c.classList.toggle("dim", !keep[/** @type {SVGElement} */ (c).dataset.i || ""]);
      });
      var count = document.getElementById("brush-kept");
      if (count) count.textContent = String(kept);
      axes.forEach(function (a) {
        var rect = a.querySelector("rect.brush");
        if (!rect) return;
        var b = brushes.find(function (/** @type {any} */ o) { return o.column === a.dataset.col; });
        rect.classList.toggle("off", !b);
        if (b) {
          rect.setAttribute("y", String(y(b.hi)));
          rect.setAttribute("height", String(Math.max(1, y(b.lo) - y(b.hi))));
        }
      });
      if (write) {
        var s = lib.withParams(window.location.search, { brush: brushes.map(lib.encodeBrush) });
        history.replaceState(history.state, "", window.location.pathname + s);
        formBrushes();
      }
    }

    /** The page form's brushes, as this script holds them. */
    function formBrushes() {
      var form = document.getElementById("view");
      if (!form) return;
      form.querySelectorAll('input[name="brush"]').forEach(function (el) { el.remove(); });
      brushes.forEach(function (/** @type {any} */ b) {
        var el = document.createElement("input");
        el.type = "hidden";
        el.name = "brush";
        el.value = lib.encodeBrush(b);
        form.appendChild(el);
      });
    }

    // A brush holds positions on its axis, which a change of scale moves: switching an axis to
    // or from log drops its brush.
    document.querySelectorAll('#log-axes input[name="plog"]').forEach(function (box) {
      box.addEventListener("change", function () {
        brushes = lib.setBrush(brushes, /** @type {HTMLInputElement} */ (box).value, null);
        apply(true);
      });
    });

    axes.forEach(function (a) {
      var area = /** @type {SVGRectElement | null} */ (a.querySelector("rect.brush-area"));
      var column = a.dataset.col || "";
      if (!area) return;
      /** @type {number | null} */
      var start = null;
      area.addEventListener("pointerdown", function (e) {
        start = lib.axisFraction(svgY(svg, e), top, bottom);
        area.setPointerCapture(e.pointerId);
        e.preventDefault();
      });
      area.addEventListener("pointermove", function (e) {
        if (start == null) return;
        brushes = lib.setBrush(brushes, column, { lo: start, hi: lib.axisFraction(svgY(svg, e), top, bottom) });
        apply(false);
      });
      /** @param {PointerEvent} e */
      function end(e) {
        if (start == null) return;
        var f = lib.axisFraction(svgY(svg, e), top, bottom);
        // A click (no real drag) clears the axis's brush.
        brushes = lib.setBrush(brushes, column, Math.abs(f - start) < 0.01 ? null : { lo: start, hi: f });
        start = null;
        apply(true);
      }
      area.addEventListener("pointerup", end);
      area.addEventListener("pointercancel", end);
    });
    apply(false);
    svg.dataset.brushReady = "1";
  }

  /** @param {ParentNode} root */
  function scan(root) {
    if (!root.querySelectorAll) return;
    root.querySelectorAll("svg#parallel").forEach(function (svg) { init(/** @type {SVGSVGElement} */ (svg)); });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", function () { scan(document); });
  else scan(document);
  document.addEventListener("htmx:load", function (e) { scan(/** @type {any} */ (e).detail.elt); });
})();
