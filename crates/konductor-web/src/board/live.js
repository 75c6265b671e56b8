(function () {
  "use strict";
  // The live board of `konductor serve`: the server sends the board's sections again
  // (Server-Sent Events, event `board`) whenever a train changed; swap them in place and
  // keep which trains were expanded. Without this script the page is a complete snapshot.
  var live = document.getElementById("live");
  var state = document.getElementById("live-state");
  if (!live || !window.EventSource) { return; }
  var es = new EventSource(live.getAttribute("data-events"));
  es.addEventListener("board", function (ev) {
    if (ev.lastEventId && ev.lastEventId === live.getAttribute("data-version")) { return; }
    var open = {};
    live.querySelectorAll("section.train > details").forEach(function (d) {
      open[d.parentNode.id] = d.open;
    });
    live.innerHTML = ev.data;
    live.querySelectorAll("section.train > details").forEach(function (d) {
      var was = open[d.parentNode.id];
      if (was !== undefined) { d.open = was; }
    });
    var tools = document.getElementById("tools");
    if (tools) { tools.hidden = false; }
    live.setAttribute("data-version", ev.lastEventId);
    if (state) { state.textContent = "live · updated " + new Date().toISOString().slice(11, 19) + " UTC"; }
  });
  es.addEventListener("open", function () { if (state) { state.textContent = "live"; } });
  es.addEventListener("error", function () { if (state) { state.textContent = "reconnecting…"; } });
})();
