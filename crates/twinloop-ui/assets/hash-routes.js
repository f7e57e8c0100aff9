// @ts-check
// The stock mlflow client prints links into MLflow's single-page UI, whose routes live in the
// fragment (http://host/#/experiments/1/runs/abc). A fragment never reaches the server, so this
// script, loaded before the page renders, sends such a link on to twinloop's own page. Only
// known shapes are mapped, always onto a same-origin path that starts with a fixed prefix.
(function () {
  "use strict";
  /**
   * @param {string} hash
   * @returns {string | null}
   */
  function target(hash) {
    var m = /^#\/experiments\/([^/?#]+)(?:\/runs\/([^/?#]+))?/.exec(hash);
    if (m) return "/experiments/" + m[1] + (m[2] ? "/runs/" + m[2] : "");
    m = /^#\/models\/([^/?#]+)(?:\/versions\/([^/?#]+))?/.exec(hash);
    if (m) return "/models/" + m[1] + (m[2] ? "/versions/" + m[2] : "");
    return null;
  }
  var to = target(window.location.hash);
  if (to) window.location.replace(to);
})();
