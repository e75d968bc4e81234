// The trend chart: uPlot (vendored, see static/LICENSES.md) over the page's JSON.
// Scheduled runs are a line with a 95% band; manual runs are separate points;
// alerts, recoveries and baseline resets are marks drawn as DOM elements over
// the plot (so they can be counted, focused and read by assistive tech).
"use strict";
(function () {
  var holder = document.getElementById("chart");
  var data = JSON.parse(document.getElementById("trend-data").textContent);
  var rows = data.scheduled, manual = data.manual;
  var xs = [];
  rows.forEach(function (r) { xs.push(r[0]); });
  manual.forEach(function (m) { xs.push(m[0]); });
  xs = Array.from(new Set(xs)).sort(function (a, b) { return a - b; });
  var at = {};
  xs.forEach(function (x, i) { at[x] = i; });
  function column(source, index) {
    var out = xs.map(function () { return null; });
    source.forEach(function (r) { out[at[r[0]]] = r[index]; });
    return out;
  }
  var score = column(rows, 1), low = column(rows, 2), high = column(rows, 3);
  var man = column(manual, 1);
  var info = {};
  rows.forEach(function (r) { info[r[0]] = {run: r[4], n: r[5], errors: r[6], score: r[1], kind: "scheduled"}; });
  manual.forEach(function (m) { info[m[0]] = {run: m[2], n: m[3], errors: m[4], score: m[1], kind: "manual"}; });

  var tip = document.createElement("div");
  tip.className = "tip";
  tip.setAttribute("role", "status");
  holder.appendChild(tip);

  function overlay(u) {
    holder.querySelectorAll(".mark, .reset").forEach(function (el) { el.remove(); });
    var over = u.over;
    data.resets.forEach(function (t) {
      var el = document.createElement("div");
      el.className = "reset";
      el.style.left = u.valToPos(t, "x") + "px";
      el.title = "baseline reset";
      over.appendChild(el);
    });
    data.marks.forEach(function (m) {
      var el = document.createElement("a");
      el.className = "mark mark-" + m[1];
      el.href = "/ui/runs/" + encodeURIComponent(m[2]);
      el.style.left = u.valToPos(m[0], "x") + "px";
      el.title = m[1] + " in run " + m[2];
      el.setAttribute("aria-label", m[1] + " in run " + m[2]);
      over.appendChild(el);
    });
    holder.dataset.points = String(rows.length);
    holder.dataset.manual = String(manual.length);
    holder.dataset.marks = String(data.marks.length);
  }

  function hover(u) {
    var i = u.cursor.idx;
    if (i == null || info[xs[i]] === undefined) { tip.hidden = true; return; }
    var p = info[xs[i]];
    tip.hidden = false;
    tip.textContent = p.kind + " run " + p.run + " · score " +
      (p.score == null ? "—" : p.score.toFixed(3)) + " · n " + p.n + " · errors " + p.errors;
  }

  function size() {
    return {width: Math.max(280, holder.clientWidth), height: 300};
  }
  if (!xs.length) {
    holder.textContent = "No runs in this range.";
    holder.dataset.points = "0";
    holder.dataset.marks = "0";
    return;
  }
  var opts = Object.assign(size(), {
    scales: {x: {time: true}},
    // ISO dates on the axis, like the tables (uPlot's default is month/day).
    axes: [
      {space: 90, values: function (u, splits) {
        return splits.map(function (v) { return new Date(v * 1e3).toISOString().slice(0, 10); });
      }},
      {}
    ],
    // The axis in UTC, as every time on the page is, whatever the browser's zone.
    tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
    series: [
      {},
      {label: "band low", stroke: "transparent", points: {show: false}},
      {label: "band high", stroke: "transparent", points: {show: false}},
      {label: "score", stroke: "#1f4e99", width: 2, points: {show: true, size: 5}, spanGaps: true},
      {label: "manual", stroke: "transparent", points: {show: true, size: 8, fill: "#8a4b00", stroke: "#8a4b00"}}
    ],
    bands: [{series: [2, 1], fill: "rgba(31, 78, 153, 0.15)"}],
    legend: {show: false},
    hooks: {draw: [overlay], setCursor: [hover]}
  });
  var plot = new uPlot(opts, [xs, low, high, score, man], holder);
  window.addEventListener("resize", function () { plot.setSize(size()); });
})();
