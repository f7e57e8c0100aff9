// @ts-check
// The runs table at scale. The server renders the first page of rows, the total and where to
// fetch more (`data-rows-url`); this script keeps only the rows in view plus an overscan in the
// DOM, fetching windows of rows by position as they come near, so 100,000 runs cost the same
// DOM as 60. The first row in view lives in the URL as `#row=N`, so a view can be shared and a
// jump is a link. It also loads the column picker's keys when the picker opens, and a group's
// runs when the group is expanded. A parent's expander (▸) shows its child runs under it by
// reloading the windows of the view with the parent added to its `expand=` list (the server lays
// the tree out, so positions and the total stay the server's). Without JavaScript the page is
// paged by links instead, and an expander is a link to the page with the parent expanded.
(function () {
  "use strict";

  var OVERSCAN = 20;
  /**
   * Rows past which a table asks the server for a snapshot of its order when it mounts: a deep
   * window of a sorted or filtered view is then a slice of that order, not a sort of every run.
   */
  var SNAPSHOT_ROWS = 1000;
  /** Windows kept in memory (detached), beyond which the oldest are dropped. */
  var CACHED_WINDOWS = 30;

  /**
   * The rows [start, end) to keep in the DOM for a scroll position.
   * @param {number} scrollTop
   * @param {number} viewport height of the scroll box
   * @param {number} rowHeight
   * @param {number} total
   * @returns {{first: number, start: number, end: number}}
   */
  function windowFor(scrollTop, viewport, rowHeight, total) {
    var first = Math.min(Math.max(0, Math.floor(scrollTop / rowHeight)), Math.max(0, total - 1));
    var visible = Math.ceil(viewport / rowHeight) + 1;
    return {
      first: first,
      start: Math.max(0, first - OVERSCAN),
      end: Math.min(total, first + visible + OVERSCAN),
    };
  }

  /** @param {string} url @param {string} extra */
  function withParams(url, extra) {
    return url + (url.indexOf("?") < 0 ? "?" : "&") + extra;
  }

  /** @param {string} html @returns {HTMLTableRowElement[]} */
  function parseRows(html) {
    var t = document.createElement("template");
    t.innerHTML = "<table><tbody>" + html + "</tbody></table>";
    return Array.prototype.slice.call(t.content.querySelectorAll("tbody > tr"));
  }

  /**
   * `url` (path and query) with `id` added to or removed from its `expand` list.
   * @param {string} url @param {string} id @param {boolean} open
   */
  function withExpanded(url, id, open) {
    var u = new URL(url, "http://x");
    var list = u.searchParams.getAll("expand").filter(function (e) { return e !== id; });
    if (open) list.push(id);
    u.searchParams.delete("expand");
    list.forEach(function (e) { u.searchParams.append("expand", e); });
    return u.pathname + u.search;
  }

  /** @param {string} hash @returns {number | null} */
  function rowFromHash(hash) {
    var m = /(?:^#|&)row=(\d+)/.exec(hash);
    return m ? parseInt(m[1], 10) : null;
  }

  /** @param {HTMLElement} box */
  function mountTable(box) {
    if (box.dataset.mounted) return;
    box.dataset.mounted = "1";
    var total = parseInt(box.dataset.total || "0", 10);
    var page = parseInt(box.dataset.page || "100", 10);
    var offset = parseInt(box.dataset.offset || "0", 10);
    var url = box.dataset.rowsUrl || "";
    var table = /** @type {HTMLTableElement} */ (box.querySelector("table"));
    var tbody = table.tBodies[0];
    /** @type {Map<number, HTMLTableRowElement[]>} */
    var windows = new Map();
    /** @type {Map<number, Promise<void>>} */
    var loading = new Map();
    windows.set(Math.floor(offset / page), Array.prototype.slice.call(tbody.rows));
    var first = tbody.rows[0];
    // Whole pixels: scrollTop is one, so row p starts exactly at p * rowHeight.
    var rowHeight = (first && Math.round(first.getBoundingClientRect().height)) || 28;
    var top = document.createElement("div"), bottom = document.createElement("div");
    top.className = bottom.className = "vpad";
    box.insertBefore(top, table);
    box.appendChild(bottom);
    box.classList.add("virtual");
    var pager = box.parentElement && box.parentElement.parentElement &&
      box.parentElement.parentElement.querySelector(".pager");
    if (pager) pager.classList.add("virtual");
    var wanted = -1, scheduled = false, hashTimer = 0;
    /** The snapshot of the order the server read the last window from (x-rows-snapshot). */
    var snap = box.dataset.snapshot || "";
    /** Bumped when the view changes (a parent expanded): windows of the old view are dropped. */
    var generation = 0;
    /** @type {Promise<unknown>} the snapshot being taken; windows wait for it rather than take another */
    var ready = Promise.resolve();

    /** @param {string} query */
    function rows(query) {
      return fetch(withParams(url, query + (snap ? "&snap=" + snap : "")), { credentials: "same-origin" })
        .then(function (r) {
          if (!r.ok) throw new Error("rows " + r.status);
          snap = r.headers.get("x-rows-snapshot") || (snap === "new" ? "" : snap);
          if (snap) box.dataset.snapshot = snap;
          var rowsTotal = r.headers.get("x-rows-total");
          if (rowsTotal) {
            total = parseInt(rowsTotal, 10);
            box.dataset.total = rowsTotal;
            var shown = document.getElementById("row-total");
            if (shown) shown.textContent = rowsTotal;
          }
          return r.text();
        });
    }

    /** @param {number} w */
    function load(w) {
      var pending = loading.get(w);
      if (pending) return pending;
      var gen = generation;
      var p = ready
        .then(function () { return rows("offset=" + w * page + "&limit=" + page); })
        .then(function (html) {
          if (gen !== generation) return;
          windows.set(w, parseRows(html));
          if (windows.size > CACHED_WINDOWS) {
            var cur = Math.floor(wanted / page);
            var far = Array.from(windows.keys()).sort(function (a, b) { return Math.abs(b - cur) - Math.abs(a - cur); });
            for (var i = 0; i < far.length && windows.size > CACHED_WINDOWS; i++) windows.delete(far[i]);
          }
          loading.delete(w);
          schedule();
        }, function (e) {
          loading.delete(w);
          box.dataset.error = String(e);
        });
      loading.set(w, p);
      return p;
    }

    function render() {
      scheduled = false;
      var win = windowFor(box.scrollTop, box.clientHeight, rowHeight, total);
      wanted = win.first;
      var rows = [], complete = true;
      for (var p = win.start; p < win.end; p++) {
        var w = Math.floor(p / page), got = windows.get(w);
        if (!got) {
          complete = false;
          load(w);
          continue;
        }
        var row = got[p - w * page];
        if (!row) continue;
        row.dataset.pos = String(p);
        rows.push(row);
      }
      // Rows still loading keep their space, so the scrollbar and the rows in view stay put.
      var shownFrom = rows.length ? parseInt(rows[0].dataset.pos || "0", 10) : win.start;
      top.style.height = shownFrom * rowHeight + "px";
      bottom.style.height = Math.max(0, total - shownFrom - rows.length) * rowHeight + "px";
      tbody.replaceChildren.apply(tbody, rows);
      box.dataset.first = String(win.first);
      if (complete) {
        box.dataset.visible = String(win.first);
        performance.mark("rows:visible");
      }
      clearTimeout(hashTimer);
      hashTimer = window.setTimeout(function () {
        var hash = win.first > 0 ? "#row=" + win.first : "";
        if (location.hash !== hash && (hash || rowFromHash(location.hash) !== null)) {
          history.replaceState(history.state, "", location.pathname + location.search + hash);
        }
      }, 250);
    }

    function schedule() {
      if (scheduled) return;
      scheduled = true;
      requestAnimationFrame(render);
    }

    /**
     * Shows or hides a parent's children: the window holding the parent is read again with the
     * new `expand=` list, then replaces every window, as every later row has moved.
     * @param {HTMLAnchorElement} link
     */
    function toggle(link) {
      var id = link.dataset.expand || "";
      var open = link.getAttribute("aria-expanded") !== "true";
      var tr = /** @type {HTMLElement} */ (link.closest("tr"));
      var pos = parseInt(tr.dataset.pos || "0", 10);
      url = withExpanded(url, id, open);
      box.dataset.rowsUrl = url;
      history.replaceState(history.state, "", withExpanded(location.pathname + location.search, id, open) + location.hash);
      // The server's sort, paging and group links to this view keep the open parents too; the
      // rows' own expanders come back from the server with the new list.
      document.querySelectorAll("a[href]").forEach(function (a) {
        if (tbody.contains(a)) return;
        var u = new URL(/** @type {HTMLAnchorElement} */ (a).href, location.href);
        if (u.origin !== location.origin || u.pathname !== location.pathname) return;
        a.setAttribute("href", withExpanded(u.pathname + u.search, id, open) + u.hash);
      });
      // The search form carries the open parents to a new filter or order.
      var form = document.getElementById("runs-search");
      if (form) {
        form.querySelectorAll("input[name=expand]").forEach(function (el) {
          if (/** @type {HTMLInputElement} */ (el).value === id) el.remove();
        });
        if (open) {
          var keep = document.createElement("input");
          keep.type = "hidden";
          keep.name = "expand";
          keep.value = id;
          form.appendChild(keep);
        }
      }
      generation++;
      loading.clear();
      var gen = generation, w = Math.floor(pos / page);
      box.dataset.expanding = id;
      var p = ready
        .then(function () { return rows("offset=" + w * page + "&limit=" + page); })
        .then(function (html) {
          if (gen !== generation) return;
          windows.clear();
          windows.set(w, parseRows(html));
          loading.delete(w);
          delete box.dataset.expanding;
          schedule();
        }, function (e) {
          loading.delete(w);
          box.dataset.error = String(e);
        });
      loading.set(w, p);
    }

    tbody.addEventListener("click", function (ev) {
      var link = ev.target instanceof Element && ev.target.closest("a.expander");
      if (!link || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
      ev.preventDefault();
      toggle(/** @type {HTMLAnchorElement} */ (link));
    });
    box.addEventListener("scroll", schedule, { passive: true });
    window.addEventListener("resize", schedule);
    window.addEventListener("hashchange", function () {
      var r = rowFromHash(location.hash);
      if (r !== null) box.scrollTop = r * rowHeight;
    });
    var start = rowFromHash(location.hash);
    if (start === null) start = offset;
    // Size the scrollbar for every row before scrolling, or the jump would be clamped.
    top.style.height = offset * rowHeight + "px";
    bottom.style.height = Math.max(0, total - offset - tbody.rows.length) * rowHeight + "px";
    if (total > SNAPSHOT_ROWS && !snap) {
      // The server answers with no snapshot where it needs none (the default order).
      snap = "new";
      ready = rows("offset=0&limit=1").catch(function () { snap = ""; });
    }
    box.scrollTop = start * rowHeight;
    render();
  }

  /** @param {HTMLDetailsElement} picker */
  function mountPicker(picker) {
    if (picker.dataset.mounted) return;
    picker.dataset.mounted = "1";
    var url = picker.dataset.keysUrl || "";
    var q = /** @type {HTMLInputElement} */ (picker.querySelector(".picker-q"));
    var kind = /** @type {HTMLSelectElement} */ (picker.querySelector(".picker-kind"));
    var list = /** @type {HTMLElement} */ (picker.querySelector(".picker-keys"));
    var status = /** @type {HTMLElement} */ (picker.querySelector(".picker-status"));
    var seq = 0, timer = 0;

    function chosen() {
      /** @type {Set<string>} */
      var s = new Set();
      picker.querySelectorAll("#picker-chosen input[type=checkbox]").forEach(function (el) {
        var i = /** @type {HTMLInputElement} */ (el);
        s.add(i.name + "\u0000" + i.value);
      });
      return s;
    }

    function search() {
      var mine = ++seq, k = kind.value;
      var t0 = performance.now();
      fetch(withParams(url, "kind=" + encodeURIComponent(k) + "&limit=200&q=" + encodeURIComponent(q.value)), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(new Error("keys " + r.status)); })
        .then(function (answer) {
          if (mine !== seq) return;
          var have = chosen();
          var items = [];
          for (var i = 0; i < answer.keys.length; i++) {
            var key = answer.keys[i];
            if (have.has(k + "\u0000" + key.key)) continue;
            var li = document.createElement("li"), label = document.createElement("label");
            var box = document.createElement("input");
            box.type = "checkbox";
            box.setAttribute("form", list.dataset.form || "");
            box.name = k;
            box.value = key.key;
            var name = document.createElement("span");
            name.className = "mono";
            name.textContent = key.key;
            var runs = document.createElement("span");
            runs.className = "muted";
            runs.textContent = " " + key.runs + " runs";
            label.append(box, " ", name, runs);
            li.append(label);
            items.push(li);
          }
          list.replaceChildren.apply(list, items);
          status.textContent = answer.total > answer.keys.length
            ? "First " + answer.keys.length + " of " + answer.total + " keys; search to narrow."
            : answer.total + " keys";
          picker.dataset.loaded = "1";
          performance.measure("picker:search", { start: t0 });
        })
        .catch(function (e) { if (mine === seq) status.textContent = String(e.message || e); });
    }

    picker.addEventListener("toggle", function () {
      if (picker.open && !picker.dataset.loaded) search();
    });
    q.addEventListener("input", function () {
      clearTimeout(timer);
      timer = window.setTimeout(search, 120);
    });
    kind.addEventListener("change", search);
    if (picker.open) search();
  }

  /** @param {HTMLAnchorElement} link */
  function mountGroup(link) {
    if (link.dataset.mounted) return;
    link.dataset.mounted = "1";
    var group = /** @type {HTMLElement} */ (link.closest("tbody.group"));
    var members = /** @type {HTMLElement} */ (group.querySelector("table.members-table tbody"));
    var loaded = false;
    link.addEventListener("click", function (ev) {
      if (ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
      ev.preventDefault();
      var open = group.classList.toggle("collapsed") === false;
      link.setAttribute("aria-expanded", String(open));
      if (open && !loaded) {
        loaded = true;
        group.dataset.loading = "1";
        fetch(withParams(link.dataset.rowsUrl || "", "offset=0&limit=100"), { credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.text() : Promise.reject(new Error("rows " + r.status)); })
          .then(function (html) {
            members.replaceChildren.apply(members, parseRows(html));
            delete group.dataset.loading;
            group.dataset.loaded = "1";
          })
          .catch(function () { loaded = false; delete group.dataset.loading; });
      }
    });
  }

  /** @param {Element | Document} root */
  function scan(root) {
    root.querySelectorAll("div.vtable[data-rows-url]").forEach(function (el) { mountTable(/** @type {HTMLElement} */ (el)); });
    root.querySelectorAll("details.picker[data-keys-url]").forEach(function (el) { mountPicker(/** @type {HTMLDetailsElement} */ (el)); });
    root.querySelectorAll("#groups a.expand[data-rows-url]").forEach(function (el) { mountGroup(/** @type {HTMLAnchorElement} */ (el)); });
  }

  if (typeof document === "undefined") {
    // Loaded by node --test for the pure helpers.
    // @ts-ignore
    module.exports = { windowFor: windowFor, rowFromHash: rowFromHash, withParams: withParams, withExpanded: withExpanded };
    return;
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", function () { scan(document); });
  else scan(document);
  // htmx swaps new bodies in on boosted navigation; their tables mount the same way.
  document.addEventListener("htmx:load", function (e) { scan(/** @type {any} */ (e).detail.elt); });
})();
