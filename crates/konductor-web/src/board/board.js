
(function () {
  "use strict";
  function openTarget() {
    var id;
    try { id = decodeURIComponent(location.hash.slice(1)); } catch (e) { return; }
    var el = id && document.getElementById(id);
    var d = el && el.querySelector("details");
    if (d) { d.open = true; }
  }
  window.addEventListener("hashchange", openTarget);
  openTarget();
  var tools = document.getElementById("tools");
  if (tools) {
    tools.hidden = false;
    tools.addEventListener("click", function (ev) {
      var act = ev.target && ev.target.getAttribute && ev.target.getAttribute("data-act");
      if (!act) { return; }
      document.querySelectorAll("section.train > details").forEach(function (d) {
        d.open = act === "open";
      });
    });
  }
  var t = document.querySelector("time[data-epoch]");
  var out = document.getElementById("age");
  if (t && out) {
    var s = Math.floor(Date.now() / 1000) - Number(t.getAttribute("data-epoch"));
    var txt = s < 90 ? "just now" : s < 5400 ? Math.round(s / 60) + " min ago" :
      s < 172800 ? Math.round(s / 3600) + " h ago" : Math.round(s / 86400) + " days ago";
    out.textContent = "(" + txt + ")";
    if (s > 3600) { out.className = "stale"; out.title = "this snapshot is old"; }
  }
})();
