// Refresh the djtasks dashboard in place: fetch the server-rendered body every few seconds.
(function () {
  "use strict";
  function start() {
    var root = document.getElementById("djtasks-live");
    if (!root) { return; }
    var seconds = parseInt(root.getAttribute("data-refresh-seconds"), 10) || 5;
    function refresh() {
      if (document.hidden) { return; }
      fetch(root.getAttribute("data-url"), {credentials: "same-origin", headers: {"X-Requested-With": "fetch"}})
        .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
        .then(function (html) { root.innerHTML = html; root.removeAttribute("data-stale"); })
        .catch(function () { root.setAttribute("data-stale", "1"); });
    }
    window.setInterval(refresh, seconds * 1000);
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
}());
