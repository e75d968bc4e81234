// Live progress of a run page over the run's event stream (Server-Sent Events):
// the counts and the status update in place; the page never reloads by itself.
"use strict";
(function () {
  var live = document.getElementById("live");
  if (!live || !window.EventSource) { return; }
  var final = ["succeeded", "failed", "cancelled", "skipped", "inconclusive"];
  if (final.indexOf(live.dataset.status) >= 0) { return; }
  var source = new EventSource("/ui/runs/" + encodeURIComponent(live.dataset.run) + "/events");
  function text(id, value) {
    var el = document.getElementById(id);
    if (el) { el.textContent = String(value); }
  }
  function progress(p) {
    text("done", p.done); text("total", p.total); text("scored", p.scored); text("errored", p.errors);
    text("results", p.results_total);
    var bar = document.getElementById("progress");
    bar.max = Math.max(1, p.total);
    bar.value = p.done;
    live.dataset.done = String(p.done);
  }
  function status(s) {
    var el = document.getElementById("status");
    el.textContent = "";
    var badge = document.createElement("span");
    badge.className = "state state-run-" + s.status;
    badge.textContent = s.status;
    el.appendChild(badge);
    if (s.reason) { el.appendChild(document.createTextNode(" — " + s.reason)); }
    if (s.attempt) { text("attempt", s.attempt); }
    live.dataset.status = s.status;
    var controls = document.getElementById("controls");
    if (controls && final.indexOf(s.status) >= 0) { controls.remove(); }
    var pause = document.getElementById("pause"), resume = document.getElementById("resume");
    if (pause && resume) {
      pause.hidden = s.status === "paused";
      resume.hidden = s.status !== "paused";
    }
  }
  source.addEventListener("snapshot", function (e) {
    var snap = JSON.parse(e.data);
    progress(snap.position);
    status({status: snap.status, reason: snap.status_reason, attempt: snap.attempt});
  });
  source.addEventListener("progress", function (e) { progress(JSON.parse(e.data)); });
  source.addEventListener("status", function (e) { status(JSON.parse(e.data)); });
  source.addEventListener("end", function () {
    source.close();
    live.dataset.ended = "true";
    var finished = document.getElementById("finished");
    if (finished) { finished.hidden = false; }
  });
})();
